//! Where a layer entry lands in the (staging) root: its parent resolved
//! through the symlinks already on disk, bounded by the root, as containerd
//! (`fs.RootPath` in pkg/archive's applyNaive) and umoci (securejoin) do.
//! `lib/x` over `lib -> usr/lib` is `usr/lib/x`; an absolute target is read
//! from the image's root (`/etc` is `ROOT/etc`), a `..` stops at the root.
//!
//! Purely lexical over the root: each component is looked at with `lstat`
//! and `readlink` only, below a prefix already known to hold no symlink, so
//! nothing outside the root is ever looked at, let alone written.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::layer::path::{link_components as components, MAX_ENTRY_LINK_HOPS};

/// Why a path could not be resolved.
#[derive(Debug)]
pub enum ResolveError {
    /// More than [`MAX_ENTRY_LINK_HOPS`] symlinks: a loop.
    TooManyLinks,
    /// `lstat`/`readlink` failed on this path (other than "absent").
    Io(PathBuf, io::Error),
}

/// Resolves every component of `rel` (relative to `root`) through the
/// symlinks found on disk, never leaving `root`. Absent components are
/// kept as named. The result is relative to `root` and, at the time of the
/// call, has no symlink among its components.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, ResolveError> {
    let mut todo: VecDeque<OsString> = components(rel).into();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let cand = cur.join(&c);
        let full = root.join(&cand);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_ENTRY_LINK_HOPS {
                    return Err(ResolveError::TooManyLinks);
                }
                let target = fs::read_link(&full).map_err(|e| ResolveError::Io(full, e))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
            Ok(_) => cur = cand,
            // Absent, or below a file (which becomes a directory later).
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                cur = cand
            }
            Err(e) => return Err(ResolveError::Io(full, e)),
        }
    }
    Ok(cur)
}

/// Where an entry named `rel` lands: its parent resolved, its own name
/// literal (a symlink entry replaces a symlink, it does not write through
/// it).
pub fn resolve_parent(root: &Path, rel: &Path) -> Result<PathBuf, ResolveError> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok(resolve(root, parent)?.join(name)),
        _ => Ok(rel.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_inside_the_root_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("file"), b"").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib", root.join("alib")).unwrap();
        symlink("/etc", root.join("etc-out")).unwrap();
        symlink("../../../outside", root.join("up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        fs::create_dir(root.join("usr/lib/d")).unwrap();
        symlink("../../../..", root.join("usr/lib/d/climb")).unwrap();
        let r = |p: &str| resolve_parent(&root, Path::new(p)).unwrap();
        assert_eq!(r("lib/x"), Path::new("usr/lib/x"));
        assert_eq!(r("alib/a/b"), Path::new("usr/lib/a/b"));
        assert_eq!(r("etc-out/passwd"), Path::new("etc/passwd"));
        assert_eq!(r("up/x"), Path::new("outside/x"));
        assert_eq!(r("lib/d/climb/y"), Path::new("y"));
        assert_eq!(r("file/x"), Path::new("file/x"));
        assert_eq!(r("missing/a/b"), Path::new("missing/a/b"));
        // The final name is literal: the link itself, not its target.
        assert_eq!(r("lib"), Path::new("lib"));
        assert!(matches!(
            resolve_parent(&root, Path::new("loop/x")),
            Err(ResolveError::TooManyLinks)
        ));
    }
}
