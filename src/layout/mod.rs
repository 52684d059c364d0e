//! OCI image layout directories: the offline store ocipack reads and writes.
//!
//! - every blob read is verified against its descriptor while it streams;
//! - blobs are written to a temp file inside the layout, fsynced and renamed
//!   into place only once digest and size are known to be right;
//! - `index.json` is replaced atomically under a directory lock, so
//!   concurrent writers and crashes never lose or tear a tag;
//! - an existing blob is hashed once per process before it is relied on
//!   (a same-size corrupt blob is replaced, never trusted); a verified blob
//!   is never rewritten; many images share one layout.

mod blob;
mod index_file;
mod staged;

pub use blob::BlobWriter;
pub use index_file::{tag_of, IndexFile};
pub use staged::StagedLayout;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, Digest, MediaType};

use crate::atomic::{self, TEMP_PREFIX};
use crate::digest::{check_sha256, read_verified, VerifyingReader};
use crate::error::{Error, Result};
use crate::manifest::{RawManifest, MAX_METADATA_SIZE};
use crate::reference::Selector;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A reader over a verified blob.
pub type BlobReader = VerifyingReader<BufReader<File>>;

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// Digests whose blob this process has hashed (or written) and found
    /// right, shared by clones: each blob is verified once per command.
    verified: Arc<Mutex<HashSet<String>>>,
}

impl Layout {
    /// Opens an existing layout, checking its `oci-layout` marker.
    pub fn open(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        let marker = root.join("oci-layout");
        let bytes = fs::read(&marker).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(
                    "oci-layout file",
                    format!("{} (not an OCI image layout)", root.display()),
                )
            } else {
                Error::io(&marker, e)
            }
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(marker.display().to_string(), e))?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some("1.0.0") => {}
            other => {
                return Err(Error::invalid(
                    marker.display().to_string(),
                    format!("unsupported imageLayoutVersion {other:?}"),
                ))
            }
        }
        Ok(Layout::at(root))
    }

    /// Opens a layout for writing, creating an empty one if the directory
    /// does not hold one yet, and removes the temp files of writers that
    /// died. What a creator that died or ran out of space leaves (the
    /// directories, maybe `index.json`, no `oci-layout`) is completed.
    /// Refuses a directory holding anything else.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        if root.join("oci-layout").exists() {
            return Layout::open_writable(root);
        }
        atomic::create_dir_all(&root)?;
        // Concurrent creators (the arches of one build, or two processes)
        // serialise here: the first one creates, the others then open.
        let _lock = DirLock::acquire(&root)?;
        Layout::create_locked(root)
    }

    /// Opens an existing layout to write into it.
    fn open_writable(root: PathBuf) -> Result<Layout> {
        let layout = Layout::open(root)?;
        atomic::remove_stale_temp(&layout.root, TEMP_PREFIX)?;
        Ok(layout)
    }

    /// [`Layout::open_or_create`] with the directory lock held.
    fn create_locked(root: PathBuf) -> Result<Layout> {
        if root.join("oci-layout").exists() {
            return Layout::open_writable(root);
        }
        atomic::remove_stale_temp(&root, TEMP_PREFIX)?;
        check_creatable(&root)?;
        atomic::create_dir_all(&root.join("blobs").join("sha256"))?;
        let layout = Layout::at(root);
        if !layout.index_path().exists() {
            atomic::write_file(&layout.index_path(), &IndexFile::empty().to_bytes()?)?;
        }
        // The marker last: a layout is only recognised once it is complete.
        atomic::write_file(&layout.root.join("oci-layout"), OCI_LAYOUT)?;
        Ok(layout)
    }

    fn at(root: PathBuf) -> Layout {
        Layout {
            root,
            verified: Arc::default(),
        }
    }

    pub(crate) fn is_verified(&self, digest: &Digest) -> bool {
        self.verified
            .lock()
            .map(|s| s.contains(digest.as_ref()))
            .unwrap_or(false)
    }

    pub(crate) fn mark_verified(&self, digest: &Digest) {
        if let Ok(mut s) = self.verified.lock() {
            s.insert(digest.to_string());
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The file holding a blob. Digests are validated first, so a hostile
    /// descriptor cannot name a path outside the layout.
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        check_sha256(digest)?;
        Ok(self
            .root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest()))
    }

    /// Whether the blob exists and matches its descriptor. The first time
    /// this process relies on a blob its content is hashed (streamed), so a
    /// same-size corrupt or tampered blob counts as absent and is rewritten
    /// by whoever writes it next; later calls cost nothing.
    pub fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        if !self.blob_file_present(desc)? {
            return Ok(false);
        }
        if self.is_verified(desc.digest()) {
            return Ok(true);
        }
        let p = self.blob_path(desc.digest())?;
        let mut r = self.open_blob(desc)?;
        match std::io::copy(&mut r, &mut std::io::sink()) {
            Ok(_) => {
                self.mark_verified(desc.digest());
                Ok(true)
            }
            Err(e) => match Error::from_io(&p, e) {
                e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. }) => {
                    tracing::warn!("{e}; it will be replaced");
                    Ok(false)
                }
                e => Err(e),
            },
        }
    }

    /// Whether a file of the descriptor's size is stored under its digest
    /// (content not checked).
    fn blob_file_present(&self, desc: &Descriptor) -> Result<bool> {
        let p = self.blob_path(desc.digest())?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.is_file() && m.len() == desc.size()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Opens a blob for verified streaming.
    pub fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader> {
        let p = self.blob_path(desc.digest())?;
        let f = File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(
                    format!("blob {}", desc.digest()),
                    self.root.display().to_string(),
                )
            } else {
                Error::io(&p, e)
            }
        })?;
        Ok(VerifyingReader::new(
            BufReader::with_capacity(1 << 20, f),
            desc,
        ))
    }

    /// Reads a small blob (manifest, config) fully, verified.
    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let p = self.blob_path(desc.digest())?;
        let r = self.open_blob(desc)?;
        read_verified(r, desc, MAX_METADATA_SIZE).map_err(|e| Error::from_io(p, e))
    }

    /// Reads and classifies a manifest or index.
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        let bytes = self.read_blob(desc)?;
        RawManifest::from_bytes(bytes, Some(desc.media_type().as_ref()))
    }

    /// Starts writing a new blob into this layout.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(self.clone())
    }

    /// Copies a blob from `src` into the layout, verifying it against `desc`.
    /// An existing blob that verifies is kept as is and `src` is not read;
    /// a corrupt one is replaced (atomically).
    pub fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        if self.has_blob(desc)? {
            return Ok(false);
        }
        let mut w = self.blob_writer()?;
        let tmp = w.temp_path().to_path_buf();
        std::io::copy(src, &mut w).map_err(|e| Error::from_io(tmp, e))?;
        w.finish_expect(desc)?;
        Ok(true)
    }

    /// Writes a small blob from memory and returns its descriptor.
    pub fn write_blob_bytes(&self, bytes: &[u8], media_type: MediaType) -> Result<Descriptor> {
        let mut w = self.blob_writer()?;
        std::io::Write::write_all(&mut w, bytes)
            .map_err(|e| Error::io(w.temp_path().to_path_buf(), e))?;
        let (digest, size) = w.finish()?;
        Ok(Descriptor::new(media_type, size, digest))
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<IndexFile> {
        let p = self.index_path();
        let bytes = read_capped(&p)?;
        IndexFile::parse(&bytes, &p.display().to_string())
    }

    /// Resolves a tag or digest (or the only image) to its descriptor. A
    /// digest not listed in `index.json` is still found if its blob exists.
    pub fn resolve(&self, selector: Option<&Selector>) -> Result<Descriptor> {
        let location = self.root.display().to_string();
        let index = self.index()?;
        match (index.resolve(selector, &location), selector) {
            (Ok(d), _) => Ok(d),
            (Err(e), Some(Selector::Digest(d))) => {
                let p = self.blob_path(d)?;
                let meta = match fs::metadata(&p) {
                    Ok(m) => m,
                    Err(_) => return Err(e),
                };
                let probe = Descriptor::new(MediaType::ImageManifest, meta.len(), d.clone());
                let raw = self.read_manifest(&probe)?;
                Ok(raw.descriptor())
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Applies `update` to `index.json` under an exclusive lock and replaces
    /// the file atomically. Every descriptor it tags must have its blob
    /// present, so a tag never dangles.
    pub fn update_index<T>(&self, update: impl FnOnce(&mut IndexFile) -> Result<T>) -> Result<T> {
        let _lock = DirLock::acquire(&self.root)?;
        self.update_index_locked(update)
    }

    /// [`Layout::update_index`] with the directory lock held.
    fn update_index_locked<T>(
        &self,
        update: impl FnOnce(&mut IndexFile) -> Result<T>,
    ) -> Result<T> {
        let mut index = self.index()?;
        let out = update(&mut index)?;
        // Presence only: a corrupt blob of another image must not block
        // this update (fsck reports it).
        for d in index.entries()? {
            if !self.blob_file_present(&d)? {
                return Err(Error::invalid(
                    self.index_path().display().to_string(),
                    format!("refusing to write an entry for missing blob {}", d.digest()),
                ));
            }
        }
        atomic::write_file(&self.index_path(), &index.to_bytes()?)?;
        Ok(out)
    }

    /// The exclusive lock `index.json` updates take (for `fsck --repair`).
    pub(crate) fn lock(&self) -> Result<DirLock> {
        DirLock::acquire(&self.root)
    }

    /// Points each tag at its descriptor in one atomic `index.json` update.
    pub fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        self.update_index(|idx| {
            for (t, d) in tags {
                idx.set_tag(t, d)?;
            }
            Ok(())
        })
    }
}

/// Whether `root` (not yet a layout: no `oci-layout`) may be made one:
/// empty, or holding only what ocipack puts there while creating a layout
/// (`blobs/`, a valid `index.json`, temp files of live writers).
fn check_creatable(root: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::invalid(
            root.display().to_string(),
            format!("directory is not empty and is not an OCI image layout ({why}); refusing to write into it"),
        ))
    };
    for e in fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let e = e.map_err(|e| Error::io(root, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e
            .file_type()
            .map_err(|err| Error::io(e.path(), err))?
            .is_dir();
        match name.as_str() {
            "blobs" if is_dir => {
                for b in fs::read_dir(e.path()).map_err(|err| Error::io(e.path(), err))? {
                    let b = b.map_err(|err| Error::io(e.path(), err))?;
                    if b.file_name() != "sha256" {
                        return refuse(format!("holds blobs/{}", b.file_name().to_string_lossy()));
                    }
                }
            }
            "index.json" if !is_dir => {
                let bytes = read_capped(&e.path())?;
                IndexFile::parse(&bytes, &e.path().display().to_string())?;
            }
            n if n.starts_with(TEMP_PREFIX) => {}
            n => return refuse(format!("holds {n}")),
        }
    }
    Ok(())
}

/// Reads a metadata file (`index.json`), refusing one larger than
/// [`MAX_METADATA_SIZE`] before reading it (as archives do).
fn read_capped(p: &Path) -> Result<Vec<u8>> {
    let f = File::open(p).map_err(|e| Error::io(p, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(p, e))?;
    if bytes.len() as u64 > MAX_METADATA_SIZE {
        return Err(Error::invalid(
            p.display().to_string(),
            format!("too large (over {MAX_METADATA_SIZE} bytes)"),
        ));
    }
    Ok(bytes)
}

/// An exclusive `flock` on the layout directory itself (no lock file is
/// left behind), released on drop.
pub(crate) struct DirLock {
    file: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock> {
        let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::io(dir, std::io::Error::last_os_error()));
        }
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking cannot violate memory safety.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    #[test]
    fn blob_roundtrip_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(dir.path().join("l")).unwrap();
        let d = l.write_blob_bytes(b"hello", MediaType::ImageLayer).unwrap();
        assert_eq!(d.digest(), &sha256(b"hello"));
        assert_eq!(l.read_blob(&d).unwrap(), b"hello");
        // An existing blob is not rewritten and the source is not read.
        let mut never = std::io::repeat(0).take(1);
        assert!(!l.put_blob(&d, &mut never).unwrap());
        // No temp files remain.
        let names: Vec<_> = fs::read_dir(l.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(atomic::TEMP_PREFIX)));
    }

    #[test]
    fn corrupt_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(dir.path()).unwrap();
        let d = l.write_blob_bytes(b"hello", MediaType::ImageLayer).unwrap();
        fs::write(l.blob_path(d.digest()).unwrap(), b"jello").unwrap();
        let err = l.read_blob(&d).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&d.digest().to_string()));
    }

    #[test]
    fn put_blob_rejects_wrong_content_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(dir.path()).unwrap();
        let d = Descriptor::new(MediaType::ImageLayer, 5, sha256(b"hello"));
        let err = l.put_blob(&d, &mut &b"hellO"[..]).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!l.blob_path(d.digest()).unwrap().exists());
        let err = l.put_blob(&d, &mut &b"hel"[..]).unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        let leftovers = fs::read_dir(l.root()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(atomic::TEMP_PREFIX)
        });
        assert_eq!(leftovers.count(), 0);
    }

    #[test]
    fn concurrent_creation_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Layout::open_or_create(&root)))
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
        assert!(Layout::open(&root)
            .unwrap()
            .index()
            .unwrap()
            .tags()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn refuses_dangling_tags_and_foreign_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(dir.path().join("l")).unwrap();
        let missing = Descriptor::new(MediaType::ImageManifest, 3, sha256(b"abc"));
        assert!(l.set_tags(&[("t".into(), missing)]).is_err());
        assert!(l.index().unwrap().tags().unwrap().is_empty());
        fs::write(dir.path().join("f"), b"x").unwrap();
        fs::create_dir(dir.path().join("notlayout")).unwrap();
        fs::write(dir.path().join("notlayout/file"), b"x").unwrap();
        assert!(Layout::open_or_create(dir.path().join("notlayout")).is_err());
    }
}
