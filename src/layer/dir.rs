//! Reading a directory on disk as layer entries: sorted walk, hard links by
//! inode, symlinks verbatim, xattrs, device nodes. Sockets cannot be
//! stored in a tar and are skipped with a warning.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::canon::{Body, EntryMap, OutEntry};
use super::entry::{FileKind, Meta};
use super::path::{sort_key, whiteout_name_reason, ImagePath};
use crate::error::{Error, Result};

/// xattrs that describe the host, not the content.
const SKIPPED_XATTRS: &[&str] = &["security.selinux"];

/// What a walk found.
pub struct Walked {
    pub entries: EntryMap,
    /// sha256 over every entry's path, type, metadata, inode, ctime and
    /// xattrs: a cheap key that changes whenever the tree might have.
    pub fingerprint: String,
}

/// Walks `dir`, placing its contents below `dest`.
pub fn walk(dir: &Path, dest: &ImagePath, owner: Option<(u64, u64)>) -> Result<Walked> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(dir.display().to_string(), "not a directory"));
    }
    let mut entries = EntryMap::new();
    let mut fp = Sha256::new();
    fp.update(dir.as_os_str().as_bytes());
    let walker = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for item in walker {
        let item = item.map_err(|e| {
            let p = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf());
            Error::io(
                p,
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk loop")),
            )
        })?;
        let path = item.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        if super::canon::is_whiteout_name(item.file_name()) {
            return Err(Error::invalid(
                path.display().to_string(),
                whiteout_name_reason(),
            ));
        }
        let m = item.metadata().map_err(|e| {
            Error::io(
                path,
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("stat")),
            )
        })?;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_char_device() {
            FileKind::Char
        } else if ft.is_block_device() {
            FileKind::Block
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else {
            tracing::warn!(path = %path.display(), "skipping a socket (tar cannot hold it)");
            continue;
        };
        let link = if kind == FileKind::Symlink {
            Some(std::fs::read_link(path).map_err(|e| Error::io(path, e))?)
        } else {
            None
        };
        let mut xattrs = BTreeMap::new();
        match xattr::list(path) {
            Ok(names) => {
                for n in names {
                    let Some(name) = n.to_str() else { continue };
                    if SKIPPED_XATTRS.contains(&name) {
                        continue;
                    }
                    if let Ok(Some(v)) = xattr::get(path, &n) {
                        xattrs.insert(name.to_string(), v);
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        let dev = match kind {
            FileKind::Char | FileKind::Block => {
                let r = m.rdev();
                Some((libc::major(r), libc::minor(r)))
            }
            _ => None,
        };
        let (uid, gid) = owner.unwrap_or((u64::from(m.uid()), u64::from(m.gid())));
        let size = if kind == FileKind::File { m.len() } else { 0 };
        let out_path = dest.join(rel);
        fp.update(rel.as_os_str().as_bytes());
        fp.update([0]);
        fp.update(
            format!(
                "{kind:?} {} {uid} {gid} {} {} {} {} {} {} {}",
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
                m.ino(),
                m.dev(),
                size
            )
            .as_bytes(),
        );
        if let Some(l) = &link {
            fp.update(l.as_os_str().as_bytes());
        }
        for (k, v) in &xattrs {
            fp.update(k.as_bytes());
            fp.update(v);
        }
        fp.update([0xff]);
        let inode = if kind == FileKind::File && m.nlink() > 1 {
            Some((m.dev(), m.ino(), 0))
        } else {
            None
        };
        entries.insert(
            sort_key(out_path.rel()),
            OutEntry {
                path: out_path,
                meta: Meta {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid,
                    gid,
                    mtime: u64::try_from(m.mtime()).unwrap_or(0),
                    size,
                    link,
                    xattrs,
                    dev,
                },
                body: if kind == FileKind::File {
                    Body::File(path.to_path_buf())
                } else {
                    Body::None
                },
                inode,
            },
        );
    }
    Ok(Walked {
        entries,
        fingerprint: hex::encode(fp.finalize()),
    })
}

/// The directory part of a `DIR[:DEST]` argument and its destination.
pub fn split_dir_arg(arg: &str) -> (PathBuf, String) {
    match arg.rsplit_once(':') {
        Some((d, dest)) if dest.starts_with('/') => (PathBuf::from(d), dest.to_string()),
        _ => (PathBuf::from(arg), "/".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names_on_disk_are_refused_naming_the_file() {
        for name in [".wh.passwd", ".wh..wh..opq"] {
            let t = tempfile::tempdir().unwrap();
            std::fs::create_dir(t.path().join("etc")).unwrap();
            let f = t.path().join("etc").join(name);
            std::fs::write(&f, b"x").unwrap();
            let err = walk(t.path(), &ImagePath::root(), None)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(&f.display().to_string()), "{err}");
            assert!(err.contains("whiteout"), "{err}");
        }
        // A directory with such a name too.
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join(".wh.usr")).unwrap();
        assert!(walk(t.path(), &ImagePath::from("/opt"), None).is_err());
        // Names merely containing the marker are ordinary.
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.wh.b"), b"x").unwrap();
        walk(t.path(), &ImagePath::root(), None).unwrap();
    }
}
