//! `oci-archive:` files: a tar holding an OCI image layout, as skopeo and
//! `nerdctl save` write them.
//!
//! Reading indexes the tar once (headers only, data is seeked over) and then
//! serves blobs by offset with positioned reads, so nothing is extracted and
//! several blobs can stream at once. Writing builds the whole tar in a temp
//! file beside the destination and renames it into place only when complete.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::Descriptor;

use crate::atomic::{self, TEMP_PREFIX};
use crate::digest::{read_verified, VerifyingReader};
use crate::error::{Error, Result};
use crate::layout::IndexFile;
use crate::manifest::{RawManifest, MAX_METADATA_SIZE};
use crate::reference::Selector;

/// A byte range of the archive file.
#[derive(Debug, Clone, Copy)]
struct Section {
    offset: u64,
    size: u64,
}

/// A read-only view of an OCI archive.
#[derive(Debug, Clone)]
pub struct ArchiveReader {
    path: PathBuf,
    file: Arc<File>,
    blobs: Arc<BTreeMap<String, Section>>,
    index: IndexFile,
}

impl ArchiveReader {
    pub fn open(path: impl Into<PathBuf>) -> Result<ArchiveReader> {
        let path = path.into();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut magic = [0u8; 4];
        let n = file
            .read_at(&mut magic, 0)
            .map_err(|e| Error::io(&path, e))?;
        if crate::manifest::Compression::sniff(&magic[..n]).is_some() {
            return Err(Error::Unsupported(format!(
                "{}: compressed archive; decompress it first (oci-archive is a plain tar)",
                path.display()
            )));
        }
        let mut archive = tar::Archive::new(&file);
        let mut blobs = BTreeMap::new();
        let mut index_sec = None;
        let mut layout_sec = None;
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::io(&path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&path, e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(|e| Error::io(&path, e))?;
            let name = name.to_string_lossy();
            let name = name.trim_start_matches("./");
            let sec = Section {
                offset: entry.raw_file_position(),
                size: entry.size(),
            };
            match name {
                "index.json" => index_sec = Some(sec),
                "oci-layout" => layout_sec = Some(sec),
                n => {
                    if let Some(hex) = n.strip_prefix("blobs/sha256/") {
                        blobs.insert(format!("sha256:{hex}"), sec);
                    }
                }
            }
        }
        let what = format!("{}: index.json", path.display());
        let read_small = |sec: Section, what: &str| -> Result<Vec<u8>> {
            if sec.size > MAX_METADATA_SIZE {
                return Err(Error::invalid(what, "too large"));
            }
            let mut buf = vec![0u8; sec.size as usize];
            file.read_exact_at(&mut buf, sec.offset)
                .map_err(|e| Error::io(&path, e))?;
            Ok(buf)
        };
        if layout_sec.is_none() {
            return Err(Error::not_found(
                "oci-layout",
                format!("{} (not an OCI archive)", path.display()),
            ));
        }
        let index_sec =
            index_sec.ok_or_else(|| Error::not_found("index.json", path.display().to_string()))?;
        let index = IndexFile::parse(&read_small(index_sec, &what)?, &what)?;
        Ok(ArchiveReader {
            path,
            file: Arc::new(file),
            blobs: Arc::new(blobs),
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn index(&self) -> &IndexFile {
        &self.index
    }

    pub fn resolve(&self, selector: Option<&Selector>) -> Result<Descriptor> {
        self.index
            .resolve(selector, &self.path.display().to_string())
    }

    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        self.blobs
            .get(desc.digest().as_ref())
            .is_some_and(|s| s.size == desc.size())
    }

    /// Streams a blob, verified against `desc`.
    pub fn open_blob(&self, desc: &Descriptor) -> Result<VerifyingReader<SectionReader>> {
        crate::digest::check_sha256(desc.digest())?;
        let sec = self.blobs.get(desc.digest().as_ref()).ok_or_else(|| {
            Error::not_found(
                format!("blob {}", desc.digest()),
                self.path.display().to_string(),
            )
        })?;
        let r = SectionReader {
            file: self.file.clone(),
            pos: sec.offset,
            end: sec.offset + sec.size,
        };
        Ok(VerifyingReader::new(r, desc))
    }

    pub fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        let r = self.open_blob(desc)?;
        let bytes =
            read_verified(r, desc, MAX_METADATA_SIZE).map_err(|e| Error::from_io(&self.path, e))?;
        RawManifest::from_bytes(bytes, Some(desc.media_type().as_ref()))
    }

    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let r = self.open_blob(desc)?;
        read_verified(r, desc, MAX_METADATA_SIZE).map_err(|e| Error::from_io(&self.path, e))
    }

    /// Digests of every blob in the archive.
    pub(crate) fn blob_list(&self) -> Vec<(String, u64)> {
        self.blobs
            .iter()
            .map(|(d, s)| (d.clone(), s.size))
            .collect()
    }
}

/// Positioned reads over one member of the archive.
pub struct SectionReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl SectionReader {
    /// Reads `size` bytes of `file` from `offset` (a member found by a scan).
    pub(crate) fn new(file: Arc<File>, offset: u64, size: u64) -> SectionReader {
        SectionReader {
            file,
            pos: offset,
            end: offset + size,
        }
    }
}

impl Read for SectionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes a new archive (optionally starting from an existing one's
/// content). Nothing is visible at `path` until [`ArchiveWriter::commit`].
/// Writers of one archive take turns: each holds an exclusive `flock` on
/// `.NAME.ocipack-lock` beside it from reading the old archive to renaming
/// the new one, so concurrent copies keep every tag. (The lock file stays:
/// removing it would let two writers lock different files.)
pub struct ArchiveWriter {
    path: PathBuf,
    state: Mutex<WriterState>,
    _lock: File,
}

/// Takes the exclusive lock of the archive at `path` (blocking).
fn lock_archive(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = atomic::parent_dir(path).join(format!(".{name}.ocipack-lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io(&lock_path, e));
        }
    }
}

struct WriterState {
    builder: tar::Builder<io::BufWriter<tempfile::NamedTempFile>>,
    written: HashSet<String>,
    index: IndexFile,
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_entry_type(kind);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl ArchiveWriter {
    /// Prepares to write `path`. If it already holds an archive, its blobs
    /// and tags are carried over (an input is never lost).
    pub fn create(path: impl Into<PathBuf>) -> Result<ArchiveWriter> {
        let path = path.into();
        let dir = atomic::parent_dir(&path).to_path_buf();
        let lock = lock_archive(&path)?;
        atomic::remove_stale_temp(&dir, TEMP_PREFIX)?;
        let tmp = atomic::temp_file(&dir)?;
        atomic::keep_mode(&path, tmp.as_file())?;
        let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, tmp));
        let io_err = |e| Error::io(&path, e);
        builder
            .append_data(
                &mut header(30, 0o644, tar::EntryType::Regular),
                "oci-layout",
                &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
            )
            .map_err(io_err)?;
        for d in ["blobs/", "blobs/sha256/"] {
            builder
                .append_data(
                    &mut header(0, 0o755, tar::EntryType::Directory),
                    d,
                    io::empty(),
                )
                .map_err(io_err)?;
        }
        let mut state = WriterState {
            builder,
            written: HashSet::new(),
            index: IndexFile::empty(),
        };
        if path.exists() {
            let old = ArchiveReader::open(&path)?;
            for (digest, size) in old.blob_list() {
                let d = Descriptor::new(
                    oci_spec::image::MediaType::Other("application/octet-stream".into()),
                    size,
                    crate::digest::parse_sha256(&digest)?,
                );
                let mut r = old.open_blob(&d)?;
                append_blob(&mut state, &path, &d, &mut r)?;
            }
            state.index = old.index().clone();
        }
        Ok(ArchiveWriter {
            path,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    /// The archive file this writer will create or replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
        self.state.lock().map_err(|_| {
            Error::invalid(
                self.path.display().to_string(),
                "writer poisoned by an earlier failure",
            )
        })
    }

    pub fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.lock()?.written.contains(desc.digest().as_ref()))
    }

    /// Appends a blob, verified while it streams.
    pub fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        let mut st = self.lock()?;
        if st.written.contains(desc.digest().as_ref()) {
            return Ok(false);
        }
        let mut r = VerifyingReader::new(src, desc);
        append_blob(&mut st, &self.path, desc, &mut r)?;
        Ok(true)
    }

    /// Changes `index.json` (tags) of the archive being written.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut IndexFile) -> Result<T>) -> Result<T> {
        let mut st = self.lock()?;
        f(&mut st.index)
    }

    /// Writes `index.json`, finishes the tar, fsyncs and renames it into place.
    pub fn commit(self) -> Result<()> {
        let ArchiveWriter { path, state, _lock } = self;
        let st = state
            .into_inner()
            .map_err(|_| Error::invalid(path.display().to_string(), "writer poisoned"))?;
        let WriterState {
            mut builder,
            written,
            index,
        } = st;
        for d in index.entries()? {
            if !written.contains(d.digest().as_ref()) {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!("refusing to write a tag for missing blob {}", d.digest()),
                ));
            }
        }
        let bytes = index.to_bytes()?;
        let io_err = |e| Error::io(&path, e);
        builder
            .append_data(
                &mut header(bytes.len() as u64, 0o644, tar::EntryType::Regular),
                "index.json",
                &bytes[..],
            )
            .map_err(io_err)?;
        let buf = builder.into_inner().map_err(io_err)?;
        let mut tmp = buf
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        tmp.flush().map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        atomic::sync_dir(atomic::parent_dir(&path))
    }
}

fn append_blob(
    st: &mut WriterState,
    path: &Path,
    desc: &Descriptor,
    r: &mut dyn Read,
) -> Result<()> {
    let name = format!("blobs/sha256/{}", desc.digest().digest());
    st.builder
        .append_data(
            &mut header(desc.size(), 0o644, tar::EntryType::Regular),
            &name,
            r,
        )
        .map_err(|e| Error::from_io(path, e))?;
    st.written.insert(desc.digest().to_string());
    Ok(())
}
