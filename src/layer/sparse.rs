//! GNU tar's PAX sparse files (`tar --sparse --format=posix`), which Go's
//! `archive/tar` (so umoci, containerd, Docker) expands into regular files
//! and the `tar` crate does not: without this, such an entry would land as
//! `GNUSparseFile.NNN/NAME` holding the sparse map and the packed data.
//!
//! Formats (GNU tar manual, "Storing Sparse Files"): 0.0 (repeated
//! `GNU.sparse.offset`/`GNU.sparse.numbytes` records), 0.1 (`GNU.sparse.map`)
//! and 1.0 (the map in decimal lines at the start of the data, padded to a
//! 512-byte block). The old GNU format's typeflag `S` is handled by the
//! `tar` crate itself.

use std::io::{self, Read};
use std::path::PathBuf;

/// What the PAX records say about a sparse entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxSparse {
    /// The file's real name (the header's name is a placeholder).
    pub name: Option<PathBuf>,
    /// The expanded size.
    pub real_size: u64,
    /// The map (offset, length) when the records hold it (0.0 and 0.1);
    /// `None` for 1.0, where it starts the data.
    pub map: Option<Vec<(u64, u64)>>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn num(v: &[u8], what: &str) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(format!("PAX sparse file: {what} is not a number")))
}

/// Reads the PAX sparse records of an entry; `None` when it is not one.
pub fn pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<PaxSparse>> {
    let Some(exts) = entry.pax_extensions()? else {
        return Ok(None);
    };
    let (mut major, mut minor, mut name, mut real) = (None, None, None, None);
    let (mut map01, mut offs, mut lens) = (None, Vec::new(), Vec::new());
    for ext in exts {
        let ext = ext?;
        let v = ext.value_bytes();
        match ext.key_bytes() {
            b"GNU.sparse.major" => major = Some(num(v, "GNU.sparse.major")?),
            b"GNU.sparse.minor" => minor = Some(num(v, "GNU.sparse.minor")?),
            b"GNU.sparse.name" => {
                use std::os::unix::ffi::OsStrExt;
                name = Some(PathBuf::from(std::ffi::OsStr::from_bytes(v)));
            }
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                real = Some(num(v, "GNU.sparse.realsize")?)
            }
            b"GNU.sparse.map" => map01 = Some(v.to_vec()),
            b"GNU.sparse.offset" => offs.push(num(v, "GNU.sparse.offset")?),
            b"GNU.sparse.numbytes" => lens.push(num(v, "GNU.sparse.numbytes")?),
            _ => {}
        }
    }
    let Some(real_size) = real else {
        return Ok(None);
    };
    let map = match (major, minor) {
        (Some(1), Some(0)) => None,
        (Some(1), _) | (Some(2..), _) => {
            return Err(bad(format!(
                "PAX sparse file format {}.{} is not supported (GNU tar writes 1.0)",
                major.unwrap_or(0),
                minor.unwrap_or(0)
            )))
        }
        _ => Some(match map01 {
            Some(m) => {
                let nums: Vec<u64> = m
                    .split(|&b| b == b',')
                    .filter(|p| !p.is_empty())
                    .map(|p| num(p, "GNU.sparse.map"))
                    .collect::<io::Result<_>>()?;
                if !nums.len().is_multiple_of(2) {
                    return Err(bad("PAX sparse file: odd GNU.sparse.map"));
                }
                nums.chunks(2).map(|c| (c[0], c[1])).collect()
            }
            None => {
                if offs.len() != lens.len() {
                    return Err(bad("PAX sparse file: unpaired offset/numbytes records"));
                }
                offs.into_iter().zip(lens).collect()
            }
        }),
    };
    Ok(Some(PaxSparse {
        name,
        real_size,
        map,
    }))
}

/// Expands a sparse entry's packed data into the file's bytes (holes read
/// as zeros), streaming.
pub struct SparseReader<R> {
    inner: R,
    map: Vec<(u64, u64)>,
    idx: usize,
    pos: u64,
    real_size: u64,
}

impl<R: Read> SparseReader<R> {
    /// `info.map` or, for format 1.0, the map read from the data's start.
    pub fn new(mut inner: R, info: &PaxSparse) -> io::Result<Self> {
        let map = match &info.map {
            Some(m) => m.clone(),
            None => read_map_1_0(&mut inner)?,
        };
        let mut end = 0u64;
        for &(off, len) in &map {
            let stop = off
                .checked_add(len)
                .filter(|&s| off >= end && s <= info.real_size)
                .ok_or_else(|| bad("PAX sparse file: map out of order or beyond its size"))?;
            end = stop;
        }
        Ok(SparseReader {
            inner,
            map,
            idx: 0,
            pos: 0,
            real_size: info.real_size,
        })
    }
}

/// Format 1.0: decimal lines (count, then offset and length per chunk) at
/// the start of the data, padded to 512 bytes.
fn read_map_1_0(r: &mut impl Read) -> io::Result<Vec<(u64, u64)>> {
    let mut consumed = 0u64;
    let mut line = |r: &mut dyn Read| -> io::Result<u64> {
        let mut s = Vec::new();
        loop {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)
                .map_err(|_| bad("PAX sparse file: map cut short"))?;
            consumed += 1;
            if b[0] == b'\n' {
                break;
            }
            if s.len() > 20 {
                return Err(bad("PAX sparse file: map number too long"));
            }
            s.push(b[0]);
        }
        num(&s, "map entry")
    };
    let n = line(r)?;
    let mut map = Vec::new();
    for _ in 0..n {
        // No preallocation from `n`: the data bounds the map, not the count.
        let off = line(r)?;
        let len = line(r)?;
        map.push((off, len));
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut r.take(pad), &mut io::sink())?;
    Ok(map)
}

impl<R: Read> Read for SparseReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.real_size {
            return Ok(0);
        }
        let (next_off, next_end) = match self.map.get(self.idx) {
            Some(&(o, l)) => (o, o + l),
            None => (self.real_size, self.real_size),
        };
        if self.pos < next_off {
            let n = (next_off - self.pos).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos >= next_end {
            self.idx += 1;
            return self.read(buf);
        }
        let want = (next_end - self.pos).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "PAX sparse file: data shorter than its map",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_a_1_0_map() {
        let mut data = b"2\n2\n3\n8\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcXY");
        let info = PaxSparse {
            name: None,
            real_size: 12,
            map: None,
        };
        let mut out = Vec::new();
        SparseReader::new(data.as_slice(), &info)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"\0\0abc\0\0\0XY\0\0");
    }

    #[test]
    fn refuses_maps_beyond_the_size_or_out_of_order() {
        for map in [vec![(0, 5), (3, 1)], vec![(10, 5)]] {
            let info = PaxSparse {
                name: None,
                real_size: 12,
                map: Some(map),
            };
            assert!(SparseReader::new(&b""[..], &info).is_err());
        }
    }
}
