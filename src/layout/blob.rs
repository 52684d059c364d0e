//! The atomic, verifying blob writer.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, Digest};
use tempfile::NamedTempFile;

use super::Layout;
use crate::atomic;
use crate::digest::HashingWriter;
use crate::error::{Error, Result};

/// Streams a blob into a temp file inside the layout while hashing it. Only
/// [`BlobWriter::finish`] makes it visible, under its digest; dropping the
/// writer (an error, a full disk, a panic) removes the temp file.
pub struct BlobWriter {
    layout: Layout,
    inner: HashingWriter<BufWriter<NamedTempFile>>,
}

impl BlobWriter {
    pub(super) fn new(layout: Layout) -> Result<Self> {
        let tmp = atomic::temp_file(layout.root())?;
        Ok(BlobWriter {
            layout,
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
        })
    }

    /// The temp file being written (for error messages).
    pub fn temp_path(&mut self) -> &Path {
        self.inner.get_mut().get_ref().path()
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.count()
    }

    /// Commits the blob under the digest of what was written.
    pub fn finish(self) -> Result<(Digest, u64)> {
        self.commit(None)
    }

    /// Commits the blob only if it matches `desc` (digest and size).
    pub fn finish_expect(self, desc: &Descriptor) -> Result<(Digest, u64)> {
        self.commit(Some(desc))
    }

    fn commit(mut self, expect: Option<&Descriptor>) -> Result<(Digest, u64)> {
        let tmp_path = self.temp_path().to_path_buf();
        let (buf, digest, size) = self.inner.finish();
        // Flushing may fail (a full disk): the temp file is dropped with `e`.
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io(&tmp_path, e.into_error()))?;
        if let Some(d) = expect {
            if size != d.size() {
                return Err(Error::SizeMismatch {
                    digest: d.digest().to_string(),
                    expected: d.size(),
                    actual: size,
                    location: None,
                });
            }
            if &digest != d.digest() {
                return Err(Error::DigestMismatch {
                    expected: d.digest().to_string(),
                    actual: digest.to_string(),
                    location: None,
                });
            }
        }
        let dest = self.layout.blob_path(&digest)?;
        let dir = atomic::parent_dir(&dest).to_path_buf();
        if self.layout.is_verified(&digest) {
            // Already present and verified by this process (another
            // writer won the race): keep it. An unverified file is replaced:
            // it may be a same-size corrupt blob.
            return Ok((digest, size));
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        atomic::create_dir_all(&dir)?;
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        atomic::sync_dir(&dir)?;
        self.layout.mark_verified(&digest);
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
