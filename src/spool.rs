//! [`SpooledSource`]: another source whose blobs are each read from it
//! once. The first read of a blob streams it, verified against its
//! descriptor, into a file of a private temp dir; every later read of that
//! blob comes from the file. For commands that read an image's layers
//! several times from a source that is not on disk (`verify --exec-smoke`
//! on a registry image: the guards' passes, then the smoke's unpack), so
//! each blob is downloaded once.
//!
//! Memory stays bounded: blobs stream to disk through a fixed buffer. The
//! spool is scratch space ([`atomic::scratch_dir`]): removed when the
//! source is dropped, and by the next run if this one is killed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use oci_spec::image::Descriptor;

use crate::atomic::{self, ScratchDir};
use crate::digest::{check_sha256, read_verified, VerifyingReader};
use crate::endpoint::ImageSource;
use crate::error::{Error, Result};
use crate::manifest::{RawManifest, MAX_METADATA_SIZE};
use crate::reference::Reference;
use crate::registry::RegistryOptions;
use crate::transport::open_source_with;

/// The copy buffer of one spooling blob.
const BUFFER: usize = 256 * 1024;

/// A source that spools each blob of `inner` to disk the first time it is
/// read and serves later reads from there. Manifests, the resolved root
/// and referrers are passed through (sources keep those small answers
/// themselves).
pub struct SpooledSource<'a> {
    inner: Box<dyn ImageSource + 'a>,
    dir: ScratchDir,
    /// One slot per blob digest, true once the blob is spooled. Its lock
    /// is held while the blob downloads, so threads reading the same blob
    /// at once wait for one download instead of starting their own.
    slots: Mutex<HashMap<String, Arc<Mutex<bool>>>>,
}

/// Wraps `src` in a [`SpooledSource`] when `reference` is a registry image
/// (each blob downloaded once however often the command reads it); a
/// layout or an archive is on disk already and is returned as it is. For
/// commands that read a source's layers more than once (build steps,
/// extract, verify); a one-pass copy does not spool.
pub fn for_reference<'a>(
    reference: &Reference,
    src: Box<dyn ImageSource + 'a>,
) -> Result<Box<dyn ImageSource + 'a>> {
    Ok(match reference {
        Reference::Registry(_) => Box::new(SpooledSource::new(src)?),
        _ => src,
    })
}

/// The registry images of one run, each opened (and spooled) once and
/// shared by everything that reads it: a build derives its run id from
/// what each reference resolves to, then its steps read the same opened
/// sources, so a tag is resolved once (it cannot move between the run id
/// and the build) and each blob is downloaded once for all arches and
/// steps. Layouts and archives are opened afresh each time: they are on
/// disk, and a layout the run writes (the package a wrapper builds on) must
/// be read as it is then.
pub struct SharedSources {
    registry: RegistryOptions,
    opened: Mutex<HashMap<String, Arc<dyn ImageSource>>>,
}

impl SharedSources {
    pub fn new(registry: RegistryOptions) -> SharedSources {
        SharedSources {
            registry,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The source of `reference`: the one already opened for a registry
    /// image, else a new one (spooled for a registry image).
    pub fn open(&self, reference: &Reference) -> Result<Arc<dyn ImageSource>> {
        if !matches!(reference, Reference::Registry(_)) {
            return Ok(Arc::from(open_source_with(reference, &self.registry)?));
        }
        let key = reference.to_string();
        let mut shared = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = shared.get(&key) {
            return Ok(s.clone());
        }
        let src: Arc<dyn ImageSource> = Arc::new(SpooledSource::new(open_source_with(
            reference,
            &self.registry,
        )?)?);
        shared.insert(key, src.clone());
        Ok(src)
    }
}

impl<'a> SpooledSource<'a> {
    /// Spools into the command's scratch space ([`atomic::scratch_dir`],
    /// under `$TMPDIR`: what a killed run leaves is removed by the next).
    pub fn new(inner: Box<dyn ImageSource + 'a>) -> Result<SpooledSource<'a>> {
        Self::in_dir(inner, atomic::scratch_dir()?)
    }

    /// Spools into scratch space under `tmp` instead of `$TMPDIR`.
    pub fn new_in(inner: Box<dyn ImageSource + 'a>, tmp: &Path) -> Result<SpooledSource<'a>> {
        Self::in_dir(inner, atomic::scratch_dir_in(tmp)?)
    }

    fn in_dir(inner: Box<dyn ImageSource + 'a>, dir: ScratchDir) -> Result<SpooledSource<'a>> {
        Ok(SpooledSource {
            inner,
            dir,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The temp dir holding the spooled blobs (one file per digest).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The spooled file of `desc`, downloading it first if this is its
    /// first read. The whole blob is spooled before any of it is handed
    /// out, so a reader that stops early (the guards read file heads)
    /// still leaves a complete, verified file. A blob that fails
    /// verification leaves no file behind, and its next read tries again.
    fn spool(&self, desc: &Descriptor) -> Result<PathBuf> {
        // The hex part names the file: only well-formed sha256 digests.
        check_sha256(desc.digest())?;
        let path = self.dir.path().join(desc.digest().digest());
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(desc.digest().to_string())
            .or_default()
            .clone();
        // A panic while another thread spooled left `false`: spool again.
        let mut spooled = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if *spooled {
            return Ok(path);
        }
        let what = format!("{}@{}", self.inner.name(), desc.digest());
        let mut tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(self.dir.path())
            .map_err(|e| Error::io(self.dir.path(), e))?;
        let mut from = VerifyingReader::new(self.inner.open_blob(desc)?, desc);
        let mut buf = vec![0u8; BUFFER];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // `tmp` is deleted as it drops.
                Err(e) => return Err(Error::from_io(&what, e)),
            };
            tmp.write_all(&buf[..n])
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        *spooled = true;
        Ok(path)
    }
}

impl ImageSource for SpooledSource<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn resolve(&self) -> Result<Descriptor> {
        self.inner.resolve()
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        self.inner.read_manifest(desc)
    }

    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size() > MAX_METADATA_SIZE {
            // Refused by the inner source before anything is downloaded,
            // with its own message.
            return self.inner.read_blob(desc);
        }
        let path = self.spool(desc)?;
        let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        read_verified(f, desc, MAX_METADATA_SIZE).map_err(|e| Error::from_io(&path, e))
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let path = self.spool(desc)?;
        let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // Verified again as it is read, as layout blobs are: the file is
        // ours, but nothing read is trusted unchecked.
        Ok(Box::new(VerifyingReader::new(f, desc)))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(subject)
    }
}

#[cfg(test)]
mod tests {
    use crate::endpoint::read_all;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use oci_spec::image::MediaType;

    use super::*;
    use crate::digest::sha256;

    /// Serves `bytes` for every blob (unverified: the spool must check),
    /// counting the blob reads that reach it.
    struct Counting {
        bytes: Vec<u8>,
        reads: Arc<AtomicUsize>,
    }

    impl Counting {
        /// The source (to hand to the spool) and its read count.
        fn new(bytes: &[u8]) -> (Box<Counting>, impl Fn() -> usize) {
            let reads = Arc::new(AtomicUsize::new(0));
            let seen = reads.clone();
            let src = Box::new(Counting {
                bytes: bytes.to_vec(),
                reads,
            });
            (src, move || seen.load(Ordering::SeqCst))
        }
    }

    impl ImageSource for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        fn resolve(&self) -> Result<Descriptor> {
            Err(Error::not_found("a root", "counting"))
        }
        fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
            Err(Error::not_found(desc.digest().to_string(), "counting"))
        }
        fn read_blob(&self, _desc: &Descriptor) -> Result<Vec<u8>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.bytes.clone())
        }
        fn open_blob(&self, _desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(io::Cursor::new(self.bytes.clone())))
        }
    }

    fn layer(bytes: &[u8]) -> Descriptor {
        Descriptor::new(MediaType::ImageLayer, bytes.len() as u64, sha256(bytes))
    }

    #[test]
    fn later_reads_come_from_the_spooled_file() {
        let bytes = b"layer bytes, read by the guards and again by the smoke";
        let d = layer(bytes);
        let (inner, reads) = Counting::new(bytes);
        let parent = tempfile::tempdir().unwrap();
        let sp = SpooledSource::new_in(inner, parent.path()).unwrap();
        let file = sp.dir().join(d.digest().digest());

        // A reader that stops early still spools the whole blob.
        let mut head = [0u8; 5];
        sp.open_blob(&d).unwrap().read_exact(&mut head).unwrap();
        assert_eq!(&head, b"layer");
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        assert_eq!(reads(), 1);

        assert_eq!(read_all(&sp, &d).unwrap(), bytes);
        assert_eq!(sp.read_blob(&d).unwrap(), bytes);
        assert_eq!(reads(), 1, "the inner source was read again");

        // The file is what is served, and it is verified as it is read.
        let mut tampered = bytes.to_vec();
        tampered[0] = b'L';
        std::fs::write(&file, &tampered).unwrap();
        let e = read_all(&sp, &d).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert_eq!(reads(), 1);

        let dir = sp.dir().to_path_buf();
        drop(sp);
        assert!(!dir.exists(), "{} outlived its source", dir.display());
    }

    #[test]
    fn a_digest_mismatch_is_typed_and_leaves_no_file() {
        let d = layer(b"the bytes the manifest names");
        let (inner, reads) = Counting::new(b"the bytes the registry sends");
        let parent = tempfile::tempdir().unwrap();
        let sp = SpooledSource::new_in(inner, parent.path()).unwrap();

        for e in [
            sp.open_blob(&d).map(|_| ()).unwrap_err(),
            sp.read_blob(&d).map(|_| ()).unwrap_err(),
        ] {
            match &e {
                Error::DigestMismatch {
                    expected, location, ..
                } => {
                    assert_eq!(expected, &d.digest().to_string());
                    let at = location.as_ref().unwrap().display().to_string();
                    assert_eq!(at, format!("counting@{}", d.digest()));
                }
                other => panic!("not a digest mismatch: {other}"),
            }
            let left: Vec<_> = std::fs::read_dir(sp.dir()).unwrap().collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        // Nothing bad is remembered: each read went to the inner source.
        assert_eq!(reads(), 2);
    }
}
