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
use sha2::{Digest as _, Sha256};

use super::entry::{FileKind, Meta};
use super::headerguard::HeaderGuard;
use super::path::{entry_name, normalize, EntryName};
use crate::error::{Error, Result};
use crate::manifest::Compression;
use crate::transport::ImageSource;

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

/// A tar stream that counts and hashes what it delivered, notes where it
/// ended, and guards against header bombs (see [`HeaderGuard`]).
pub struct Counted<'a> {
    inner: HeaderGuard<Box<dyn Read + Send + 'a>>,
    hasher: Sha256,
    total: u64,
    eof: bool,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.hasher.update(&buf[..n]);
        self.total += n as u64;
        Ok(n)
    }
}

/// The entry type [`walk_layer`] hands out.
pub type LayerEntry<'e, 'a> = tar::Entry<'e, Counted<'a>>;

/// How much of a layer [`walk_layer`] verifies once the caller is done.
#[derive(Debug, Clone, Copy)]
pub enum Check<'d> {
    /// Nothing more: a partial re-read of a blob that was verified in full
    /// (digest and diff_id) when the merged tree was loaded.
    Partial,
    /// The compressed blob is read to its end, so its digest and size are
    /// verified. Enough when this blob's diff_id was verified by an earlier
    /// full read (the merged tree's load, or the tree cache it came from):
    /// equal blob digests mean equal bytes.
    Blob,
    /// Everything: the decompressed stream is decoded to its very end (each
    /// gzip member's CRC32 and ISIZE, zstd frame checksums, no trailing
    /// data), its sha256 must equal this diff_id (`sha256:...` from the
    /// config's `rootfs.diff_ids`), and the blob is verified.
    Full(&'d str),
}

/// Streams a layer's entries through `f(ordinal, entry)` until it returns
/// `false` or the layer ends, then verifies what `check` asks for.
///
/// A layer whose tar stops right after the last entry's data, without
/// padding or the two zero blocks, is accepted (with a warning) as Go's
/// `archive/tar`, and so Docker, containerd and umoci, accept it: `umoci
/// insert` before 0.4.8 wrote such layers (umoci#436). A stream that ends
/// inside an entry's data is still an error.
///
/// When decoding fails, the blob is read to its end first: a tampered blob
/// is reported as a digest mismatch, not as whatever its bytes decode to.
pub fn walk_layer<'a>(
    src: &'a dyn ImageSource,
    desc: &Descriptor,
    check: Check<'_>,
    mut f: impl FnMut(u64, &mut LayerEntry<'_, 'a>) -> Result<bool>,
) -> Result<()> {
    let name = desc.digest().to_string();
    let (stream, tap) = open_layer(src, desc)?;
    // A decoding problem is reported as the blob's digest mismatch when
    // the blob is wrong, else as itself.
    let blob_first = |e: Error| -> Error {
        match tap.drain() {
            Err(be) => Error::from_io(&name, be),
            Ok(_) => e,
        }
    };
    let mut archive = tar::Archive::new(Counted {
        inner: HeaderGuard::new(stream),
        hasher: Sha256::new(),
        total: 0,
        eof: false,
    });
    let mut data_end = 0u64;
    let mut broken_end = false;
    let mut walked: Result<()> = Ok(());
    {
        match archive.entries() {
            Err(e) => walked = Err(Error::from_io(&name, e)),
            Ok(entries) => {
                for (ordinal, entry) in entries.enumerate() {
                    let mut entry = match entry {
                        Ok(e) => e,
                        Err(e) => {
                            broken_end = true;
                            // Decided below, once the stream's state can be read.
                            tracing::debug!(layer = %name, "tar error at entry {ordinal}: {e}");
                            break;
                        }
                    };
                    data_end = entry.raw_file_position() + entry.size();
                    match f(ordinal as u64, &mut entry) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            walked = Err(e);
                            break;
                        }
                    }
                }
            }
        }
    }
    let mut stream = archive.into_inner();
    if let Some(v) = stream.inner.violation() {
        return Err(Error::invalid(format!("layer {name} of {}", src.name()), v));
    }
    walked.map_err(&blob_first)?;
    if broken_end {
        if !(stream.eof && stream.total >= data_end) {
            return Err(blob_first(Error::invalid(
                &name,
                "layer tar is corrupt or truncated inside an entry",
            )));
        }
        tracing::warn!(
            layer = %name,
            "layer tar lacks its end-of-archive blocks (written by umoci insert < 0.4.8?); accepted like Go's archive/tar does"
        );
    }
    match check {
        Check::Partial => return Ok(()),
        Check::Blob => {}
        Check::Full(diff_id) => {
            // Past the tar's end-of-archive blocks too: the diff_id covers
            // every byte, and the decoders check their trailers only here.
            if let Err(e) = io::copy(&mut stream, &mut io::sink()) {
                if let Some(v) = stream.inner.violation() {
                    return Err(Error::invalid(format!("layer {name} of {}", src.name()), v));
                }
                let e = Error::from_io(&name, e);
                return Err(blob_first(match e {
                    Error::Io { source, .. } => Error::invalid(
                        format!("layer {name} of {}", src.name()),
                        format!("compressed stream is corrupt: {source}"),
                    ),
                    other => other,
                }));
            }
            tap.drain().map_err(|e| Error::from_io(&name, e))?;
            let actual = crate::digest::digest_from_hasher(std::mem::take(&mut stream.hasher));
            if actual.to_string() != diff_id {
                return Err(Error::DiffIdMismatch {
                    layer: name,
                    input: src.name(),
                    expected: diff_id.to_string(),
                    actual: actual.to_string(),
                });
            }
            return Ok(());
        }
    }
    drop(stream);
    tap.drain().map_err(|e| Error::from_io(&name, e))?;
    Ok(())
}

fn unsafe_path(layer: &str, entry: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafePath {
        layer: layer.to_string(),
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

/// An entry's name (`GNU.sparse.name` for a PAX sparse file, whose
/// header name is a placeholder) and its sparse records, if any.
pub fn entry_path<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> io::Result<(PathBuf, Option<super::sparse::PaxSparse>)> {
    let sparse = super::sparse::pax_sparse(entry)?;
    let path = match sparse.as_ref().and_then(|s| s.name.clone()) {
        Some(n) => n,
        None => entry.path()?.into_owned(),
    };
    Ok((path, sparse))
}

/// An entry's bytes, a PAX sparse file expanded (every reader of content
/// goes through here, so the merged view, unpack and new layers agree).
pub fn entry_body<'b, 'a: 'b, R: Read + 'b>(
    entry: &'b mut tar::Entry<'a, R>,
) -> io::Result<Box<dyn Read + 'b>> {
    match super::sparse::pax_sparse(entry)? {
        Some(info) => Ok(Box::new(super::sparse::SparseReader::new(entry, &info)?)),
        None => Ok(Box::new(entry)),
    }
}

/// Whether a tar entry type is a filesystem object (the others, PAX global
/// headers and GNU volume labels, are skipped before their name is read).
pub(crate) fn is_fs_object(et: tar::EntryType) -> bool {
    use tar::EntryType as T;
    matches!(
        et,
        T::Regular
            | T::Continuous
            | T::GNUSparse
            | T::Directory
            | T::Symlink
            | T::Link
            | T::Char
            | T::Block
            | T::Fifo
    )
}

/// Reads the metadata of a tar entry. `None` for entries that carry no
/// filesystem object (PAX global headers, GNU volume labels).
pub fn read_entry<R: Read>(entry: &mut tar::Entry<'_, R>, layer: &str) -> Result<Option<Record>> {
    let (raw, sparse) = entry_path(entry).map_err(|e| Error::from_io(layer, e))?;
    let et = entry.header().entry_type();
    let kind = match et {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            FileKind::File
        }
        tar::EntryType::Directory => FileKind::Dir,
        tar::EntryType::Symlink => FileKind::Symlink,
        tar::EntryType::Link => FileKind::HardLink,
        tar::EntryType::Char => FileKind::Char,
        tar::EntryType::Block => FileKind::Block,
        tar::EntryType::Fifo => FileKind::Fifo,
        tar::EntryType::XGlobalHeader => return Ok(None),
        other => {
            tracing::warn!(layer, entry = %raw.display(), "skipping tar entry of type {other:?}");
            return Ok(None);
        }
    };
    let classified =
        entry_name(&raw, kind == FileKind::Dir).map_err(|r| unsafe_path(layer, &raw, r))?;
    let path = match classified {
        EntryName::Whiteout(p) => return Ok(Some(Record::Whiteout(p))),
        EntryName::Opaque(p) => return Ok(Some(Record::Opaque(p))),
        EntryName::Regular(p) => p,
    };
    let h = entry.header();
    let bad = |e: io::Error| Error::from_io(format!("{layer}: {}", raw.display()), e);
    let mode = h.mode().map_err(bad)? & 0o7777;
    let uid = h.uid().map_err(bad)?;
    let gid = h.gid().map_err(bad)?;
    let mut mtime = h.mtime().map_err(bad)?;
    let dev = match kind {
        FileKind::Char | FileKind::Block => Some((
            h.device_major().map_err(bad)?.unwrap_or(0),
            h.device_minor().map_err(bad)?.unwrap_or(0),
        )),
        _ => None,
    };
    let size = if kind == FileKind::File {
        sparse.map_or(entry.size(), |s| s.real_size)
    } else {
        0
    };
    let link = match kind {
        FileKind::Symlink | FileKind::HardLink => {
            let l = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.into_owned())
                .ok_or_else(|| unsafe_path(layer, &raw, "link without a target"))?;
            if kind == FileKind::HardLink {
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

/// Reads every entry's metadata from one layer, verifying the whole blob
/// and its `diff_id`.
pub fn scan_layer(
    src: &dyn ImageSource,
    desc: &Descriptor,
    diff_id: &str,
) -> Result<Vec<Numbered>> {
    let layer = desc.digest().to_string();
    let mut out = Vec::new();
    walk_layer(src, desc, Check::Full(diff_id), |ordinal, entry| {
        if let Some(record) = read_entry(entry, &layer)? {
            out.push(Numbered { ordinal, record });
        }
        Ok(true)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::transport::LayoutSource;
    use oci_spec::image::MediaType;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, body) in files {
            let mut h = tar::Header::new_ustar();
            h.set_path(p).unwrap();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append(&h, *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scan_bytes(bytes: &[u8]) -> Result<Vec<Numbered>> {
        let t = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(t.path()).unwrap();
        let d = l.write_blob_bytes(bytes, MediaType::ImageLayer).unwrap();
        let src = LayoutSource {
            layout: l,
            selector: None,
        };
        scan_layer(&src, &d, crate::digest::sha256(bytes).as_ref())
    }

    /// A tar written header by header, so any name is possible (the `tar`
    /// crate refuses absolute and `..` names when building).
    fn raw_tar(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_mode(if *kind == b'5' { 0o750 } else { 0o644 });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::new(*kind));
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn names(recs: &[Numbered]) -> Vec<String> {
        recs.iter()
            .map(|n| match &n.record {
                Record::Entry { path, meta } => format!(
                    "{} {:?}{}",
                    path.display(),
                    meta.kind,
                    meta.link
                        .as_ref()
                        .map(|l| format!(" -> {}", l.display()))
                        .unwrap_or_default()
                ),
                Record::Whiteout(p) => format!("wh {}", p.display()),
                Record::Opaque(p) => format!("opq {}", p.display()),
            })
            .collect()
    }

    #[test]
    fn names_other_writers_use_are_rooted_inside() {
        // umoci insert DIR / writes `/` first; others write absolute names,
        // `./` prefixes and `a/../b`.
        let tar = raw_tar(&[
            ("/", b'5', "", b""),
            ("./", b'5', "", b""),
            (".", b'5', "", b""),
            ("/etc/", b'5', "", b""),
            ("/etc/x", b'0', "", b"x"),
            ("./etc/y", b'1', "/etc/x", b""),
            ("usr/../etc/z", b'1', "./usr/../etc/x", b""),
            ("/etc/.wh.old", b'0', "", b""),
            ("/opt/.wh..wh..opq", b'0', "", b""),
        ]);
        let recs = scan_bytes(&tar).unwrap();
        assert_eq!(
            names(&recs),
            [
                " Dir",
                " Dir",
                " Dir",
                "etc Dir",
                "etc/x File",
                "etc/y HardLink -> etc/x",
                "etc/z HardLink -> etc/x",
                "wh etc/old",
                "opq opt",
            ]
        );
    }

    #[test]
    fn only_escapes_and_a_non_directory_root_are_refused() {
        for (tar, why) in [
            (raw_tar(&[("../x", b'0', "", b"")]), "'..'"),
            (raw_tar(&[("/../x", b'0', "", b"")]), "'..'"),
            (raw_tar(&[("a/../../x", b'5', "", b"")]), "'..'"),
            (
                raw_tar(&[("x", b'0', "", b""), ("h", b'1', "../x", b"")]),
                "hard link target ../x",
            ),
            (raw_tar(&[("/", b'2', "/etc", b"")]), "not a directory"),
            (raw_tar(&[("./", b'0', "", b"")]), "not a directory"),
        ] {
            let err = scan_bytes(&tar).unwrap_err().to_string();
            assert!(err.contains("refusing entry") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn tolerates_a_missing_end_of_archive_like_go_does() {
        let full = tar_of(&[("a", b"hello"), ("b", b"world!")]);
        assert_eq!(scan_bytes(&full).unwrap().len(), 2);
        // umoci insert < 0.4.8: no padding after the last data, no footer.
        let cut = &full[..512 + 512 + 512 + 6];
        assert_eq!(scan_bytes(cut).unwrap().len(), 2);
        // Cut inside the last entry's data: an error.
        let bad = &full[..512 + 512 + 512 + 3];
        let err = scan_bytes(bad).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
