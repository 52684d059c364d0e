//! A guard against tar header bombs, placed between a layer's decompressor
//! and the `tar` crate.
//!
//! The `tar` crate reads a GNU long name (`L`), long link (`K`) or PAX
//! extended header (`x`) whole into memory before the entry it describes,
//! whatever size the header claims, and has no option to limit it: a 1 MB
//! gzip layer holding a 1 GiB PAX header of zeros costs 1 GiB of RAM. Go's
//! `archive/tar` (and so Docker, containerd, umoci) caps these "special
//! files" at 1 MiB (`maxSpecialFileSize`); ocipack refuses the same.
//!
//! The guard follows the tar stream exactly as `tar` 0.4 walks it (header
//! blocks, PAX `size` overrides, GNU sparse extension blocks), inspects each
//! 512-byte header before handing it on, and fails the read with a
//! [`HeaderGuard::violation`] when a special header is over the cap: the
//! `tar` crate never starts reading its data. Where `tar` itself would stop
//! (end-of-archive block, bad checksum, malformed header) the guard stops
//! inspecting and passes bytes through.

use std::io::{self, Read};

use tar::{GnuExtSparseHeader, Header, PaxExtensions};

/// Largest GNU long name/link or PAX header accepted (Go's limit).
pub const MAX_SPECIAL_HEADER: u64 = 1 << 20;

const BLOCK: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The next block at `next` is a tar header.
    Header,
    /// The next block at `next` is a GNU sparse extension block.
    SparseExt,
    /// `tar` has stopped (or will error): nothing more to inspect.
    Done,
}

/// See the module docs.
pub struct HeaderGuard<R> {
    inner: R,
    /// Offset of the next byte handed out.
    pos: u64,
    /// Offset of the next header or sparse extension block.
    next: u64,
    expect: Expect,
    /// The block being handed out (header or extension), and how much of
    /// it was.
    block: [u8; BLOCK as usize],
    block_len: usize,
    block_off: usize,
    /// Data of a PAX `x` header being read: [start, end) and the bytes.
    pax_window: Option<(u64, u64)>,
    pax_data: Vec<u8>,
    /// PAX records that apply to the next file entry.
    pending_pax: Option<Vec<u8>>,
    /// Data size of the entry whose sparse extension blocks are being read.
    sparse_size: u64,
    violation: Option<String>,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            pos: 0,
            next: 0,
            expect: Expect::Header,
            block: [0; BLOCK as usize],
            block_len: 0,
            block_off: 0,
            pax_window: None,
            pax_data: Vec::new(),
            pending_pax: None,
            sparse_size: 0,
            violation: None,
        }
    }

    /// Why the stream was refused, if it was.
    pub fn violation(&self) -> Option<&str> {
        self.violation.as_deref()
    }

    /// Reads the whole block at `self.next` into `self.block`.
    fn fill_block(&mut self) -> io::Result<()> {
        self.block_len = 0;
        self.block_off = 0;
        while self.block_len < self.block.len() {
            match self.inner.read(&mut self.block[self.block_len..]) {
                Ok(0) => break,
                Ok(n) => self.block_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn refuse(&mut self, msg: String) -> io::Error {
        self.violation = Some(msg.clone());
        self.expect = Expect::Done;
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    /// Decides what the block just read means, as `tar` will.
    fn inspect(&mut self) -> io::Result<()> {
        if self.block_len < self.block.len() {
            // End of stream (or a short block `tar` refuses).
            self.expect = Expect::Done;
            return Ok(());
        }
        let at = self.next;
        if self.expect == Expect::SparseExt {
            let mut ext = GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&self.block);
            self.next += BLOCK;
            if !ext.is_extended() {
                self.finish_entry(self.sparse_size)?;
            }
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            // End-of-archive: `tar` reads no further.
            self.expect = Expect::Done;
            return Ok(());
        }
        let h = Header::from_byte_slice(&self.block);
        let sum = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .fold(0u32, |a, &b| a + u32::from(b))
            + 8 * 32;
        if h.cksum().ok() != Some(sum) {
            self.expect = Expect::Done;
            return Ok(());
        }
        let et = h.entry_type();
        let Ok(mut size) = h.entry_size() else {
            self.expect = Expect::Done;
            return Ok(());
        };
        let special = et.is_gnu_longname()
            || et.is_gnu_longlink()
            || et.is_pax_local_extensions()
            || et.is_pax_global_extensions();
        if special && size > MAX_SPECIAL_HEADER {
            let what = match et.as_byte() {
                b'L' => "GNU long name",
                b'K' => "GNU long link name",
                b'x' => "PAX extended header",
                _ => "PAX global header",
            };
            let name = String::from_utf8_lossy(&h.path_bytes()).into_owned();
            return Err(self.refuse(format!(
                "tar entry at offset {at} ({name:?}): {what} of {size} bytes exceeds the \
                 {MAX_SPECIAL_HEADER} byte cap (Go's archive/tar refuses the same)"
            )));
        }
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let folded = recognized
            && (et.is_gnu_longname() || et.is_gnu_longlink() || et.is_pax_local_extensions());
        if !special {
            if let Some(p) = &self.pending_pax {
                if let Some(s) = pax_size(p) {
                    size = s;
                }
            }
        }
        self.next += BLOCK;
        if folded {
            if et.is_pax_local_extensions() {
                if self.pending_pax.is_some() {
                    // `tar` refuses two PAX headers for one entry.
                    self.expect = Expect::Done;
                    return Ok(());
                }
                self.pax_window = Some((self.next, self.next + size));
                self.pax_data = Vec::with_capacity(size as usize);
                if size == 0 {
                    self.pending_pax = Some(Vec::new());
                    self.pax_window = None;
                }
            }
            return self.skip_data(size);
        }
        // A real entry: the PAX records were its own.
        self.pending_pax = None;
        if et.is_gnu_sparse() {
            match h.as_gnu() {
                Some(g) if g.is_extended() => {
                    self.sparse_size = size;
                    self.expect = Expect::SparseExt;
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    self.expect = Expect::Done;
                    return Ok(());
                }
            }
        }
        self.finish_entry(size)
    }

    fn finish_entry(&mut self, size: u64) -> io::Result<()> {
        self.expect = Expect::Header;
        self.skip_data(size)
    }

    fn skip_data(&mut self, size: u64) -> io::Result<()> {
        let padded = size
            .checked_add(BLOCK - 1)
            .map(|s| s & !(BLOCK - 1))
            .and_then(|s| self.next.checked_add(s));
        match padded {
            Some(n) => self.next = n,
            None => self.expect = Expect::Done,
        }
        Ok(())
    }

    /// Keeps the bytes of a PAX header's data as they pass.
    fn note_pax(&mut self, start: u64, bytes: &[u8]) {
        let Some((from, to)) = self.pax_window else {
            return;
        };
        let end = start + bytes.len() as u64;
        let lo = from.max(start);
        let hi = to.min(end);
        if lo < hi {
            self.pax_data
                .extend_from_slice(&bytes[(lo - start) as usize..(hi - start) as usize]);
        }
        if end >= to {
            self.pending_pax = Some(std::mem::take(&mut self.pax_data));
            self.pax_window = None;
        }
    }
}

/// The `size` record of PAX data, read exactly as `tar` reads it (the first
/// malformed record ends the search).
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse::<u64>().ok();
    }
    None
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(v) = &self.violation {
            return Err(io::Error::new(io::ErrorKind::InvalidData, v.clone()));
        }
        if self.block_off < self.block_len {
            let n = (self.block_len - self.block_off).min(out.len());
            out[..n].copy_from_slice(&self.block[self.block_off..self.block_off + n]);
            self.block_off += n;
            self.pos += n as u64;
            return Ok(n);
        }
        if self.expect != Expect::Done && self.pos == self.next {
            self.fill_block()?;
            self.inspect()?;
            return self.read(out);
        }
        let want = if self.expect == Expect::Done {
            out.len()
        } else {
            usize::try_from(self.next - self.pos)
                .unwrap_or(usize::MAX)
                .min(out.len())
        };
        let n = self.inner.read(&mut out[..want])?;
        let start = self.pos;
        self.pos += n as u64;
        if n > 0 && self.pax_window.is_some() {
            self.note_pax(start, &out[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: u64) -> Vec<u8> {
        let mut h = Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn pad(v: &mut Vec<u8>) {
        v.resize(v.len().div_ceil(512) * 512, 0);
    }

    /// Reads `bytes` through the guard and the tar crate, returning entry
    /// paths or the guard's violation.
    fn read(bytes: &[u8]) -> Result<Vec<String>, String> {
        let mut a = tar::Archive::new(HeaderGuard::new(bytes));
        let mut names = Vec::new();
        let r: io::Result<()> = (|| {
            for e in a.entries()? {
                let mut e = e?;
                names.push(e.path()?.display().to_string());
                io::copy(&mut e, &mut io::sink())?;
            }
            Ok(())
        })();
        let g = a.into_inner();
        match (g.violation(), r) {
            (Some(v), _) => Err(v.to_string()),
            (None, Err(e)) => Err(format!("tar: {e}")),
            (None, Ok(())) => Ok(names),
        }
    }

    fn pax_record(k: &str, v: &[u8]) -> Vec<u8> {
        let body = 1 + k.len() + 1 + v.len() + 1;
        let mut n = body + 1;
        while format!("{n}").len() + body != n {
            n += 1;
        }
        let mut r = format!("{n} {k}=").into_bytes();
        r.extend_from_slice(v);
        r.push(b'\n');
        r
    }

    #[test]
    fn ordinary_tars_pass_unchanged() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("d/{}", "n".repeat(300));
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "short", &b"hi"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        assert_eq!(read(&bytes).unwrap(), [long, "short".to_string()]);
        // Through the guard, bytes are unchanged.
        let mut out = Vec::new();
        HeaderGuard::new(&bytes[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn pax_records_below_the_cap_pass_and_their_size_is_followed() {
        // A 300 KiB xattr, then a file whose size only PAX states.
        let mut pax = pax_record("SCHILY.xattr.user.big", &vec![b'v'; 300 << 10]);
        pax.extend(pax_record("size", b"5"));
        let mut t = header("PaxHeaders/f", b'x', pax.len() as u64);
        t.extend(&pax);
        pad(&mut t);
        t.extend(header("f", b'0', 0));
        t.extend(b"hello");
        pad(&mut t);
        // Data that looks like a bomb header must be seen as data.
        let fake = header("fake", b'x', 1 << 40);
        t.extend(header("g", b'0', 512));
        t.extend(&fake);
        t.extend(vec![0; 1024]);
        assert_eq!(read(&t).unwrap(), ["f", "g"]);
    }

    #[test]
    fn oversized_special_headers_are_refused_before_tar_reads_them() {
        for (kind, what) in [
            (b'x', "PAX extended header"),
            (b'L', "GNU long name"),
            (b'K', "GNU long link"),
            (b'g', "PAX global header"),
        ] {
            let mut t = header("././@LongLink", kind, MAX_SPECIAL_HEADER + 1);
            // Only the header: the stream would go on for a GiB.
            t.extend(vec![b'a'; 4096]);
            let err = read(&t).unwrap_err();
            assert!(err.contains(what) && err.contains("1048577 bytes"), "{err}");
        }
        // At the cap exactly: fine (then an ordinary file).
        let mut t = header("././@LongLink", b'L', MAX_SPECIAL_HEADER);
        let mut name = vec![b'n'; MAX_SPECIAL_HEADER as usize - 1];
        name.push(0);
        t.extend(&name);
        t.extend(header("x", b'0', 0));
        t.extend(vec![0; 1024]);
        let names = read(&t).unwrap();
        assert_eq!(names[0].len(), MAX_SPECIAL_HEADER as usize - 1);
    }

    #[test]
    fn a_bomb_after_a_pax_size_override_is_found() {
        // PAX says the next entry holds 1024 bytes though its header says
        // 0: the bomb header sits after those bytes.
        let pax = pax_record("size", b"1024");
        let mut t = header("PaxHeaders/a", b'x', pax.len() as u64);
        t.extend(&pax);
        pad(&mut t);
        t.extend(header("a", b'0', 0));
        t.extend(vec![b'z'; 1024]);
        t.extend(header("bomb", b'L', 1 << 30));
        let err = read(&t).unwrap_err();
        assert!(err.contains("GNU long name"), "{err}");
    }
}
