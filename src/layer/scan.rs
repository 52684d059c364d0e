//! Reading layer tars into metadata records (no content kept).
//!
//! Entries are numbered by their position in the layer's tar stream (as the
//! `tar` crate yields them, long-name and PAX headers folded in). That
//! ordinal is how content is found again in a later pass.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::Descriptor;

use super::merged::EntryKind;
use super::path::{classify, normalize, EntryKind as PathKind};
use crate::error::{Error, Result};
use crate::manifest::Compression;
use crate::transport::ImageSource;

/// Tar metadata of one entry, as the merged view keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    /// Symlink target verbatim, or hard-link target normalised.
    pub link: Option<PathBuf>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub dev: Option<(u32, u32)>,
}

/// What one tar entry does to the merged tree.
#[derive(Debug, Clone)]
pub enum Record {
    Entry { path: PathBuf, meta: Meta },
    Whiteout(PathBuf),
    Opaque(PathBuf),
}

/// A numbered record.
#[derive(Debug, Clone)]
pub struct Numbered {
    pub ordinal: u64,
    pub record: Record,
}

/// A blob reader shared between a decoder and its owner, so the owner can
/// drain the rest of the compressed blob (finishing its digest check)
/// without decompressing what nobody needs.
#[derive(Clone)]
pub struct Tap<'a>(Arc<Mutex<Box<dyn Read + Send + 'a>>>);

impl<'a> Tap<'a> {
    pub fn new(r: Box<dyn Read + Send + 'a>) -> Self {
        Tap(Arc::new(Mutex::new(r)))
    }

    /// Reads the blob to its end; the verifying reader underneath fails
    /// here if the digest or size is wrong.
    pub fn drain(&self) -> io::Result<u64> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| io::Error::other("blob reader poisoned"))?;
        io::copy(&mut *g, &mut io::sink())
    }
}

impl Read for Tap<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| io::Error::other("blob reader poisoned"))?;
        g.read(buf)
    }
}

/// Opens a layer blob as a tar stream plus the tap under its decoder.
pub fn open_layer<'a>(
    src: &'a dyn ImageSource,
    desc: &Descriptor,
) -> Result<(Box<dyn Read + Send + 'a>, Tap<'a>)> {
    let compression = Compression::of_media_type(desc.media_type())?;
    let tap = Tap::new(src.open_blob(desc)?);
    let stream = super::decompress(Box::new(tap.clone()), compression)?;
    Ok((stream, tap))
}

fn unsafe_path(layer: &str, entry: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafePath {
        layer: layer.to_string(),
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads the metadata of a tar entry. `None` for entries that carry no
/// filesystem object (PAX global headers, GNU volume labels).
pub fn read_entry<R: Read>(entry: &mut tar::Entry<'_, R>, layer: &str) -> Result<Option<Record>> {
    let raw = entry
        .path()
        .map_err(|e| Error::from_io(layer, e))?
        .into_owned();
    let et = entry.header().entry_type();
    let kind = match et {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            EntryKind::File
        }
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::HardLink,
        tar::EntryType::Char => EntryKind::Char,
        tar::EntryType::Block => EntryKind::Block,
        tar::EntryType::Fifo => EntryKind::Fifo,
        tar::EntryType::XGlobalHeader => return Ok(None),
        other => {
            tracing::warn!(layer, entry = %raw.display(), "skipping tar entry of type {other:?}");
            return Ok(None);
        }
    };
    let rel = normalize(&raw).map_err(|r| unsafe_path(layer, &raw, r))?;
    let classified = classify(rel).map_err(|r| unsafe_path(layer, &raw, r))?;
    let path = match classified {
        PathKind::Whiteout(p) => {
            if p.as_os_str().is_empty() {
                return Err(unsafe_path(layer, &raw, "whiteout of the root"));
            }
            return Ok(Some(Record::Whiteout(p)));
        }
        PathKind::Opaque(p) => return Ok(Some(Record::Opaque(p))),
        PathKind::Regular(p) => p,
    };
    let h = entry.header();
    let bad = |e: io::Error| Error::from_io(format!("{layer}: {}", raw.display()), e);
    let mode = h.mode().map_err(bad)? & 0o7777;
    let uid = h.uid().map_err(bad)?;
    let gid = h.gid().map_err(bad)?;
    let mut mtime = h.mtime().map_err(bad)?;
    let dev = match kind {
        EntryKind::Char | EntryKind::Block => Some((
            h.device_major().map_err(bad)?.unwrap_or(0),
            h.device_minor().map_err(bad)?.unwrap_or(0),
        )),
        _ => None,
    };
    let size = if kind == EntryKind::File {
        entry.size()
    } else {
        0
    };
    let link = match kind {
        EntryKind::Symlink | EntryKind::HardLink => {
            let l = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.into_owned())
                .ok_or_else(|| unsafe_path(layer, &raw, "link without a target"))?;
            if kind == EntryKind::HardLink {
                let n = normalize(&l).map_err(|r| {
                    unsafe_path(
                        layer,
                        &raw,
                        format!("hard link target {}: {r}", l.display()),
                    )
                })?;
                Some(n)
            } else {
                Some(l)
            }
        }
        _ => None,
    };
    let mut xattrs = BTreeMap::new();
    if let Some(exts) = entry.pax_extensions().map_err(bad)? {
        for ext in exts {
            let ext = ext.map_err(bad)?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
            } else if key == "mtime" {
                // PAX mtimes may be fractional or beyond the octal field.
                if let Ok(v) = ext.value() {
                    let secs = v.split('.').next().unwrap_or("");
                    if let Ok(s) = secs.parse::<i64>() {
                        mtime = s.max(0) as u64;
                    }
                }
            }
        }
    }
    Ok(Some(Record::Entry {
        path,
        meta: Meta {
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            link,
            xattrs,
            dev,
        },
    }))
}

/// Reads every entry's metadata from one layer, verifying the whole blob.
pub fn scan_layer(src: &dyn ImageSource, desc: &Descriptor) -> Result<Vec<Numbered>> {
    let layer = desc.digest().to_string();
    let (stream, tap) = open_layer(src, desc)?;
    let mut archive = tar::Archive::new(stream);
    let mut out = Vec::new();
    {
        let entries = archive.entries().map_err(|e| Error::from_io(&layer, e))?;
        for (ordinal, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| Error::from_io(&layer, e))?;
            if let Some(record) = read_entry(&mut entry, &layer)? {
                out.push(Numbered {
                    ordinal: ordinal as u64,
                    record,
                });
            }
        }
    }
    drop(archive);
    tap.drain().map_err(|e| Error::from_io(&layer, e))?;
    Ok(out)
}
