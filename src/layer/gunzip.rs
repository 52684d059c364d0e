//! Reading a gzip layer member by member, checking every member's trailer.
//!
//! flate2's `MultiGzDecoder` checks CRC32 and ISIZE too, but its errors
//! carry no values; here a bad trailer names the member, the value the
//! trailer holds and the one the data has. Framing follows Go's
//! `compress/gzip` reader (which containerd and Docker use): concatenated
//! members are one stream; after a member the stream must end or another
//! member must start, so trailing garbage and zero padding are refused; an
//! empty stream is not a gzip stream; a header CRC16 (FHCRC) is checked.

use std::io::{self, BufRead, Read};

use flate2::bufread::DeflateDecoder;
use flate2::Crc;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

enum State<R: BufRead> {
    Header(R),
    Body(DeflateDecoder<R>),
    Done,
    Failed,
}

/// See the module docs.
pub struct Gunzip<R: BufRead> {
    state: State<R>,
    /// 1-based number of the current member.
    member: u64,
    crc: Crc,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(r: R) -> Self {
        Gunzip {
            state: State::Header(r),
            member: 0,
            crc: Crc::new(),
        }
    }

    fn read_exact_or(&self, r: &mut R, buf: &mut [u8], what: &str) -> io::Result<()> {
        r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad(format!(
                    "gzip member #{} ends inside its {what}",
                    self.member
                ))
            } else {
                e
            }
        })
    }

    /// Reads one member header (RFC 1952 2.3).
    fn header(&mut self, r: &mut R) -> io::Result<()> {
        self.member += 1;
        let mut hcrc = Crc::new();
        let mut h = [0u8; 10];
        // The magic first: a short tail of garbage is garbage, not a
        // truncated header.
        match r.read_exact(&mut h[..2]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => h[0] = 0,
            Err(e) => return Err(e),
        }
        if h[0] != 0x1f || h[1] != 0x8b {
            return Err(bad(if self.member == 1 {
                "not a gzip stream (bad magic bytes)".to_string()
            } else {
                format!(
                    "data after gzip member #{} is not a gzip member (trailing garbage)",
                    self.member - 1
                )
            }));
        }
        self.read_exact_or(r, &mut h[2..], "header")?;
        hcrc.update(&h);
        if h[2] != 8 {
            return Err(bad(format!(
                "gzip member #{}: compression method {} is not deflate",
                self.member, h[2]
            )));
        }
        let flg = h[3];
        if flg & FEXTRA != 0 {
            let mut n = [0u8; 2];
            self.read_exact_or(r, &mut n, "header")?;
            hcrc.update(&n);
            let mut extra = vec![0u8; usize::from(u16::from_le_bytes(n))];
            self.read_exact_or(r, &mut extra, "header")?;
            hcrc.update(&extra);
        }
        for flag in [FNAME, FCOMMENT] {
            if flg & flag != 0 {
                // NUL-terminated; read byte by byte through the buffer.
                loop {
                    let mut b = [0u8; 1];
                    self.read_exact_or(r, &mut b, "header")?;
                    hcrc.update(&b);
                    if b[0] == 0 {
                        break;
                    }
                }
            }
        }
        if flg & FHCRC != 0 {
            let mut c = [0u8; 2];
            self.read_exact_or(r, &mut c, "header")?;
            let want = u16::from_le_bytes(c);
            let have = (hcrc.sum() & 0xffff) as u16;
            if want != have {
                return Err(bad(format!(
                    "gzip member #{}: header CRC16 is {have:#06x}, the header says {want:#06x}",
                    self.member
                )));
            }
        }
        self.crc.reset();
        Ok(())
    }

    /// Checks the trailer of the member just decoded (RFC 1952 2.3.1).
    fn trailer(&mut self, r: &mut R) -> io::Result<()> {
        let mut t = [0u8; 8];
        r.read_exact(&mut t).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad(format!(
                    "gzip member #{} ends without its 8-byte CRC32/ISIZE trailer (truncated)",
                    self.member
                ))
            } else {
                e
            }
        })?;
        let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let want_size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if want_crc != self.crc.sum() {
            return Err(bad(format!(
                "gzip member #{}: CRC32 of the data is {:#010x}, the trailer says {want_crc:#010x}",
                self.member,
                self.crc.sum()
            )));
        }
        if want_size != self.crc.amount() {
            return Err(bad(format!(
                "gzip member #{}: size of the data mod 2^32 is {}, the trailer says {want_size}",
                self.member,
                self.crc.amount()
            )));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Failed => return Err(bad("gzip stream failed earlier".into())),
                State::Done => {
                    self.state = State::Done;
                    return Ok(0);
                }
                State::Header(mut r) => {
                    if self.member == 0 && r.fill_buf()?.is_empty() {
                        return Err(bad("empty stream: not a gzip stream".into()));
                    }
                    self.header(&mut r)?;
                    self.state = State::Body(DeflateDecoder::new(r));
                }
                State::Body(mut d) => {
                    let n = d.read(buf)?;
                    if n > 0 {
                        self.crc.update(&buf[..n]);
                        self.state = State::Body(d);
                        return Ok(n);
                    }
                    let mut r = d.into_inner();
                    self.trailer(&mut r)?;
                    self.state = if r.fill_buf()?.is_empty() {
                        State::Done
                    } else {
                        State::Header(r)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(b: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        Gunzip::new(io::BufReader::with_capacity(7, b))
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn members_and_headers() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        assert_eq!(gunzip(&two).unwrap(), b"hello world");
        // Name, comment, extra field and header CRC.
        let mut e = flate2::GzBuilder::new()
            .filename("f.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(b"data").unwrap();
        let mut with_fields = e.finish().unwrap();
        assert_eq!(gunzip(&with_fields).unwrap(), b"data");
        // The same with FHCRC set and a right/wrong CRC16.
        let hlen = 10 + 2 + 3 + 6 + 2;
        let mut hcrc = Crc::new();
        with_fields[3] |= FHCRC;
        hcrc.update(&with_fields[..hlen]);
        let c = (hcrc.sum() as u16).to_le_bytes();
        let mut ok = with_fields[..hlen].to_vec();
        ok.extend_from_slice(&c);
        ok.extend_from_slice(&with_fields[hlen..]);
        assert_eq!(gunzip(&ok).unwrap(), b"data");
        ok[hlen] ^= 1;
        assert!(gunzip(&ok).unwrap_err().contains("header CRC16"));
        // The writer's empty layer (one empty member) is fine.
        assert_eq!(gunzip(&gz(b"")).unwrap(), b"");
    }

    #[test]
    fn bad_trailers_and_trailing_data_name_values() {
        let good = gz(b"some layer bytes");
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 0xff;
        let e = gunzip(&crc).unwrap_err();
        assert!(e.contains("member #1: CRC32 of the data is 0x"), "{e}");
        let mut size = good.clone();
        size[n - 4] = 99;
        let e = gunzip(&size).unwrap_err();
        assert!(e.contains("is 16, the trailer says 99"), "{e}");
        let e = gunzip(&good[..n - 3]).unwrap_err();
        assert!(e.contains("without its 8-byte"), "{e}");
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"\0\0\0\0");
        let e = gunzip(&garbage).unwrap_err();
        assert!(e.contains("after gzip member #1"), "{e}");
        let mut partial = good.clone();
        partial.extend_from_slice(&[0x1f, 0x8b, 8]);
        let e = gunzip(&partial).unwrap_err();
        assert!(e.contains("member #2 ends inside its header"), "{e}");
        assert!(gunzip(b"").unwrap_err().contains("empty"));
        assert!(gunzip(b"PK\x03\x04 not gzip")
            .unwrap_err()
            .contains("magic"));
    }
}
