//! Parallel, deterministic gzip.
//!
//! The input is cut into fixed 1 MiB blocks; each block becomes one
//! complete gzip member (RFC 1952 allows concatenated members; Go's
//! `compress/gzip`, zlib's `gunzip`, Python and ocipack's own reader read
//! them all) compressed by libdeflate, which is about twice as fast as zlib
//! at a better ratio. A block depends on nothing but its own bytes, so the
//! output is the same for 1 or 64 threads: the thread count only decides
//! how many blocks are compressed at once. The block size is part of the
//! output format and must never change (it would change every digest).
//!
//! Memory: at most `2 * threads` blocks in flight, each 1 MiB in and at
//! most ~1 MiB out.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Uncompressed bytes per gzip member. Frozen: part of the output format.
pub const BLOCK_SIZE: usize = 1 << 20;

/// Default libdeflate level. Level 2 (greedy parsing) compresses a
/// realistic rootfs about 1.8x faster than `umoci insert` (pgzip at Go's
/// default level) into a slightly smaller blob; 6 is ~4% smaller and about
/// 1.5x slower. See BENCHMARKS.md. Changing it changes digests.
pub const DEFAULT_LEVEL: u32 = 2;

type Job = (u64, Vec<u8>);
type Done = (u64, Vec<u8>, io::Result<Vec<u8>>);

struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A gzip encoder that compresses blocks on `threads` worker threads.
pub struct ParallelGzip<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Used when `threads <= 1`: compress on the caller's thread.
    inline: Option<Compressor>,
    pool: Option<Pool>,
    next_seq: u64,
    next_write: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    spare: Vec<Vec<u8>>,
    wrote_any: bool,
}

fn lvl(level: u32) -> io::Result<CompressionLvl> {
    CompressionLvl::new(level as i32).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level} (0-12)"),
        )
    })
}

fn compress_block(c: &mut Compressor, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; c.gzip_compress_bound(input.len())];
    let n = c
        .gzip_compress(input, &mut out)
        .map_err(|e| io::Error::other(format!("libdeflate: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

impl<W: Write> ParallelGzip<W> {
    /// `level` is libdeflate's (1-12); `threads` worker threads (1: none).
    pub fn new(out: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = lvl(level)?;
        let (inline, pool) = if threads <= 1 {
            (Some(Compressor::new(level)), None)
        } else {
            let (jtx, jrx) = mpsc::sync_channel::<Job>(threads);
            let (rtx, rrx) = mpsc::channel::<Done>();
            let jrx = Arc::new(Mutex::new(jrx));
            let mut workers = Vec::with_capacity(threads);
            for i in 0..threads {
                let jrx = Arc::clone(&jrx);
                let rtx = rtx.clone();
                let h = std::thread::Builder::new()
                    .name(format!("gzip-{i}"))
                    .spawn(move || {
                        let mut c = Compressor::new(level);
                        loop {
                            let job = match jrx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok((seq, input)) = job else { return };
                            let r = compress_block(&mut c, &input);
                            if rtx.send((seq, input, r)).is_err() {
                                return;
                            }
                        }
                    })?;
                workers.push(h);
            }
            (
                None,
                Some(Pool {
                    jobs: Some(jtx),
                    results: rrx,
                    workers,
                    in_flight: 0,
                    max_in_flight: 2 * threads,
                }),
            )
        };
        Ok(ParallelGzip {
            out,
            buf: Vec::with_capacity(BLOCK_SIZE),
            inline,
            pool,
            next_seq: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            spare: Vec::new(),
            wrote_any: false,
        })
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
        let input = std::mem::replace(&mut self.buf, fresh);
        self.wrote_any = true;
        if let Some(c) = self.inline.as_mut() {
            let out = compress_block(c, &input)?;
            self.out.write_all(&out)?;
            let mut input = input;
            input.clear();
            self.spare.push(input);
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let full = {
            let pool = self
                .pool
                .as_mut()
                .ok_or_else(|| io::Error::other("gzip pool gone"))?;
            let tx = pool
                .jobs
                .as_ref()
                .ok_or_else(|| io::Error::other("gzip finished"))?;
            tx.send((seq, input))
                .map_err(|_| io::Error::other("gzip worker exited"))?;
            pool.in_flight += 1;
            pool.in_flight >= pool.max_in_flight
        };
        if full {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Waits for one finished block and writes whatever is now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let pool = self
            .pool
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip pool gone"))?;
        let (seq, mut input, r) = pool
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip worker exited"))?;
        pool.in_flight -= 1;
        input.clear();
        self.spare.push(input);
        self.pending.insert(seq, r?);
        while let Some(out) = self.pending.remove(&self.next_write) {
            self.out.write_all(&out)?;
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || !self.wrote_any {
            self.dispatch()?;
        }
        if let Some(pool) = self.pool.as_mut() {
            pool.jobs = None;
        }
        while self.pool.as_ref().is_some_and(|p| p.in_flight > 0) {
            self.collect_one()?;
        }
        drop(self.pool.take());
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK_SIZE {
                self.dispatch()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are fixed-size; a flush must not cut one short.
        Ok(())
    }
}

impl Drop for Pool {
    /// Closing the job queue ends the workers (results go to an unbounded
    /// channel, so none can block).
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b"the quick brown fox "[i % 20]
                }
            })
            .collect()
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), DEFAULT_LEVEL, threads).unwrap();
        for c in data.chunks(chunk) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_write_pattern() {
        let data = sample(5 * BLOCK_SIZE + 12_345);
        let one = gz(&data, 1, 1 << 16);
        assert_eq!(gz(&data, 2, 4096), one);
        assert_eq!(gz(&data, 8, 3 * BLOCK_SIZE), one);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn empty_input_is_a_valid_gzip() {
        let out = gz(b"", 4, 1);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn dropping_without_finish_stops_workers() {
        let mut w = ParallelGzip::new(Vec::new(), 1, 4).unwrap();
        w.write_all(&sample(3 * BLOCK_SIZE)).unwrap();
        drop(w);
    }
}
