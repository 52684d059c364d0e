//! sha256 digests and the streaming wrappers that compute or verify them.
//!
//! Every blob ocipack reads passes through a [`VerifyingReader`], so a corrupt
//! or truncated blob is an error at the byte where it is detected, never a
//! silently wrong image.

use std::io::{self, Read, Write};
use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The SHA-256 implementation every hot path uses. sha2 picks the CPU's
/// SHA extensions at run time (x86 SHA-NI, ARMv8 SHA2) and falls back to
/// assembly; ring's implementation measured the same on a SHA-NI machine
/// (BENCHMARKS.md, `ocipack bench hash --compare`), so there is no reason
/// to carry a second one.
pub const IMPLEMENTATION: &str =
    "sha2 0.10 (RustCrypto; SHA-NI / ARMv8 SHA2 when present, else asm)";

/// A running SHA-256.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Hasher(Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Digest {
        digest_from_hasher(self.0)
    }
}

/// Builds a `sha256:<hex>` digest from a finished hasher.
pub fn digest_from_hasher(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    // A 64-char lowercase hex string is always a valid sha256 digest.
    Digest::from_str(&format!("sha256:{hex}")).expect("sha256 hex is a valid digest")
}

/// sha256 of a byte slice, as an OCI digest.
pub fn sha256(bytes: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(bytes);
    digest_from_hasher(h)
}

/// Parses a digest string, accepting only sha256 (the only algorithm
/// ocipack writes or verifies).
pub fn parse_sha256(s: &str) -> Result<Digest> {
    let d =
        Digest::from_str(s).map_err(|e| Error::invalid(format!("digest {s:?}"), e.to_string()))?;
    check_sha256(&d)?;
    Ok(d)
}

/// Checks that a digest is sha256 with 64 lowercase hex characters, so it is
/// safe to use as a file name.
pub fn check_sha256(d: &Digest) -> Result<()> {
    let hex = d.digest();
    let ok = d.algorithm().as_ref() == "sha256"
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "digest {d}: only sha256 digests with 64 lowercase hex characters are supported"
        )))
    }
}

/// A reader that hashes what passes through and counts bytes.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (Digest, u64) {
        (digest_from_hasher(self.hasher), self.count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, digest_from_hasher(self.hasher), self.count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checks size and digest against a descriptor as it streams.
///
/// Reading past the expected size, or reaching EOF early or with the wrong
/// digest, yields an `io::Error` of kind `InvalidData` wrapping a typed
/// [`Error`] (recover it with [`Error::from_io`]).
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    expected_digest: Digest,
    expected_size: u64,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, desc: &Descriptor) -> Self {
        Self::with(inner, desc.digest().clone(), desc.size())
    }

    pub fn with(inner: R, expected_digest: Digest, expected_size: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            expected_digest,
            expected_size,
            done: false,
        }
    }

    /// The size error for what has been read so far; the reader is done.
    fn size_mismatch(&mut self) -> io::Error {
        self.done = true;
        Error::SizeMismatch {
            digest: self.expected_digest.to_string(),
            expected: self.expected_size,
            actual: self.count,
            location: None,
        }
        .into_io()
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        if self.count != self.expected_size {
            return Err(self.size_mismatch());
        }
        self.done = true;
        let actual = digest_from_hasher(std::mem::take(&mut self.hasher));
        if actual != self.expected_digest {
            return Err(Error::DigestMismatch {
                expected: self.expected_digest.to_string(),
                actual: actual.to_string(),
                location: None,
            }
            .into_io());
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.done {
            return Ok(0);
        }
        // Never hand out more than the descriptor promises: read at most one
        // byte beyond it, to detect an oversized blob.
        let remaining = self.expected_size.saturating_sub(self.count) + 1;
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.check_end()?;
            return Ok(0);
        }
        self.count += n as u64;
        if self.count > self.expected_size {
            return Err(self.size_mismatch());
        }
        self.hasher.update(&buf[..n]);
        if self.count == self.expected_size {
            // Verify eagerly: consumers that stop at the declared size (tar
            // readers do) must still get the digest check.
            let mut probe = [0u8; 1];
            let extra = self.inner.read(&mut probe)?;
            if extra > 0 {
                self.count += extra as u64;
                return Err(self.size_mismatch());
            }
            self.check_end()?;
        }
        Ok(n)
    }
}

/// Reads all of `reader` (bounded by `limit` bytes) and verifies it.
pub fn read_verified(reader: impl Read, desc: &Descriptor, limit: u64) -> io::Result<Vec<u8>> {
    if desc.size() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: declared size {} exceeds the {} byte limit for metadata blobs",
                desc.digest(),
                desc.size(),
                limit
            ),
        ));
    }
    let mut out = Vec::with_capacity(desc.size() as usize);
    VerifyingReader::new(reader, desc).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor::new(MediaType::ImageLayer, bytes.len() as u64, sha256(bytes))
    }

    #[test]
    fn verifies_good_content() {
        let d = desc(b"hello");
        let out = read_verified(&b"hello"[..], &d, 100).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn rejects_wrong_digest() {
        let d = desc(b"hello");
        let err = read_verified(&b"hellO"[..], &d, 100).unwrap_err();
        let e = Error::from_io("/x", err);
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(&d.digest().to_string()));
    }

    #[test]
    fn rejects_truncated_and_oversized() {
        let d = desc(b"hello");
        let e = Error::from_io("/x", read_verified(&b"hell"[..], &d, 100).unwrap_err());
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = Error::from_io("/x", read_verified(&b"hello!"[..], &d, 100).unwrap_err());
        assert!(matches!(e, Error::SizeMismatch { actual: 6, .. }), "{e}");
    }

    #[test]
    fn verifies_when_consumer_stops_at_size() {
        let d = desc(b"hello");
        let mut r = VerifyingReader::new(&b"hellx"[..], &d);
        let mut buf = [0u8; 5];
        let err = r.read_exact(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn rejects_non_sha256_names() {
        assert!(parse_sha256("sha256:../../etc/passwd").is_err());
        assert!(parse_sha256(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(parse_sha256(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
