//! A layer from a directory at each compression setting: what `--level`
//! costs in time and buys in size, against the uncompressed floor.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{mb_s, r2, Budget};
use crate::error::{Error, Result};
use crate::layer::gzip::ParallelGzip;
use crate::layer::{layer_from_dir, LayerOptions};
use crate::layout::Layout;
use crate::manifest::Compression;

#[derive(Debug, Clone, Serialize)]
pub struct DirRow {
    /// `none`, `gzip`, `zstd`.
    pub compression: &'static str,
    pub level: Option<i32>,
    /// Seconds for the whole layer: measured for `none`; for a codec, the
    /// tar's size over the codec's measured speed (it may have timed a
    /// prefix only, see `bytes_in`).
    pub seconds: f64,
    /// Uncompressed MB/s.
    pub mb_s: f64,
    /// Blob size (for a codec: its ratio on the bytes timed, applied to the
    /// whole tar).
    pub size: u64,
    /// size / tar size.
    pub size_ratio: f64,
    /// seconds / the uncompressed layer's seconds.
    pub ratio_to_floor: f64,
    /// Tar bytes the codec was timed on.
    pub bytes_in: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirReport {
    pub dir: String,
    pub entries: u64,
    /// The uncompressed layer (tar) size.
    pub tar_bytes: u64,
    pub threads: usize,
    /// The floor: the uncompressed layer built from DIR (walk, tar, diff_id,
    /// written and synced), then each setting.
    pub rows: Vec<DirRow>,
}

/// The settings `bench dir` times: every gzip level 1-9 (libdeflate) and a
/// few zstd levels.
pub const GZIP_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;
pub const ZSTD_LEVELS: [i32; 4] = [1, 3, 9, 19];

/// Tar bytes each codec setting is timed on, unless `--bytes` says.
pub const DEFAULT_SAMPLE: u64 = 128 << 20;

/// Counts what it is given and throws it away.
#[derive(Default)]
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Builds the uncompressed layer from `dir` in a temporary layout (removed
/// on return), then compresses its tar at each setting with `threads`,
/// each for at most `budget`. `progress` hears each setting's name.
pub fn bench_dir(
    dir: &Path,
    threads: usize,
    budget: Budget,
    progress: &mut dyn FnMut(&str),
) -> Result<DirReport> {
    let threads = threads.max(1);
    let scratch = crate::atomic::scratch_dir()?;
    let layout = Layout::open_or_create(scratch.path().join("layout"))?;
    let opts = LayerOptions {
        compression: Compression::None,
        threads,
        source_date_epoch: Some(0),
        cache: None,
        reuse_layers: false,
        ..LayerOptions::default()
    };
    progress("none");
    let started = Instant::now();
    let built = layer_from_dir(dir, "/", None, &layout, &opts)?;
    let floor_s = started.elapsed().as_secs_f64();
    let tar_bytes = built.descriptor.size();
    let tar_path = layout.blob_path(built.descriptor.digest())?;
    let mut rows = vec![DirRow {
        compression: "none",
        level: None,
        seconds: r2(floor_s),
        mb_s: r2(mb_s(tar_bytes, floor_s)),
        size: tar_bytes,
        size_ratio: 1.0,
        ratio_to_floor: 1.0,
        bytes_in: tar_bytes,
    }];
    // Every setting compresses the same leading bytes of the tar, so their
    // sizes compare; the time budget only cuts a slow setting short.
    let sample = Budget {
        seconds: budget.seconds,
        bytes: Some(budget.bytes.unwrap_or(DEFAULT_SAMPLE).min(tar_bytes).max(1)),
    };
    let settings = GZIP_LEVELS
        .map(|l| (Compression::Gzip, l as i32))
        .chain(ZSTD_LEVELS.iter().map(|&l| (Compression::Zstd, l)));
    for (c, level) in settings {
        let name = match c {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        };
        progress(&format!("{name} {level}"));
        let (bytes_in, out, secs) = compress_timed(&tar_path, c, level, threads, sample)
            .map_err(|e| Error::from_io(&tar_path, e))?;
        let speed = mb_s(bytes_in, secs);
        let whole_s = if speed > 0.0 {
            tar_bytes as f64 / 1e6 / speed
        } else {
            0.0
        };
        let ratio = if bytes_in > 0 {
            out as f64 / bytes_in as f64
        } else {
            1.0
        };
        rows.push(DirRow {
            compression: name,
            level: Some(level),
            seconds: r2(whole_s),
            mb_s: r2(speed),
            size: (tar_bytes as f64 * ratio).round() as u64,
            size_ratio: (ratio * 1000.0).round() / 1000.0,
            ratio_to_floor: if floor_s > 0.0 {
                r2(whole_s / floor_s)
            } else {
                0.0
            },
            bytes_in,
        });
    }
    Ok(DirReport {
        dir: dir.display().to_string(),
        entries: built.entries,
        tar_bytes,
        threads,
        rows,
    })
}

/// Compresses the tar at `path` with the layer writer's encoders until the
/// budget is spent: (bytes in, bytes out, seconds).
fn compress_timed(
    path: &Path,
    c: Compression,
    level: i32,
    threads: usize,
    budget: Budget,
) -> io::Result<(u64, u64, f64)> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut bytes_in = 0u64;
    let mut feed = |w: &mut dyn Write| -> io::Result<()> {
        loop {
            if bytes_in > 0 && budget.exhausted(started, bytes_in) {
                return Ok(());
            }
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            w.write_all(&buf[..n])?;
            bytes_in += n as u64;
        }
    };
    let out = match c {
        Compression::Gzip => {
            let mut z = ParallelGzip::new(Sink::default(), level as u32, threads)?;
            feed(&mut z)?;
            z.finish()?.0
        }
        Compression::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(Sink::default(), level)?;
            z.multithread(threads.clamp(1, 256) as u32)?;
            feed(&mut z)?;
            z.finish()?.0
        }
        Compression::None => {
            let mut s = Sink::default();
            feed(&mut s)?;
            s.0
        }
    };
    Ok((bytes_in, out, started.elapsed().as_secs_f64()))
}
