//! Where an unpack writes before it is known to be good.
//!
//! A layer's digest and diff_id are known only once it has been read to its
//! end, and a disk can fill up halfway: so the rootfs is built in a staging
//! directory and moved into place only when every layer verified. A failed
//! unpack leaves the target as it was (absent, or empty).
//!
//! - Target absent: the staging directory is a sibling of it (same
//!   filesystem) and is renamed to it at the end: one atomic step.
//! - Target an existing empty directory (perhaps a mount point, or with an
//!   owner and mode the caller chose): the staging directory is inside it,
//!   and its children are renamed up one level at the end; the target keeps
//!   its own inode.
//!
//! Staging directories are named `.ocipack-tmp-unpack-<pid>-<random>` and
//! hold an exclusive `flock` for the life of their run. A run killed with
//! `kill -9` leaves one behind; the next unpack next to it finds it
//! unlocked (the kernel drops the lock with the process, whatever the pid
//! namespace) and removes it. A live run's directory stays locked, so it is
//! never removed.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name prefix of unpack staging directories.
pub const STAGING_PREFIX: &str = ".ocipack-tmp-unpack-";

/// A locked staging directory; removed on drop unless committed.
pub struct Staging {
    path: PathBuf,
    target: PathBuf,
    /// The target existed (empty): the staging directory is inside it.
    inside: bool,
    _lock: File,
    done: bool,
}

impl Staging {
    /// Prepares to unpack into `target`, which must be absent or an empty
    /// directory (stale staging directories of dead runs aside, which are
    /// removed).
    pub fn create(target: &Path) -> Result<Staging> {
        let target = match fs::canonicalize(target) {
            // An existing target (or a symlink to one) is used by its real
            // path, so renames stay on its filesystem.
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(target).is_ok() {
                    return Err(Error::invalid(
                        target.display().to_string(),
                        "target is a dangling symlink",
                    ));
                }
                target.to_path_buf()
            }
            Err(e) => return Err(Error::io(target, e)),
        };
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let inside = match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                remove_stale(&target)?;
                let mut it = fs::read_dir(&target).map_err(|e| Error::io(&target, e))?;
                if it.next().is_some() {
                    return Err(Error::invalid(
                        target.display().to_string(),
                        "target directory is not empty",
                    ));
                }
                true
            }
            Ok(_) => {
                return Err(Error::invalid(
                    target.display().to_string(),
                    "target exists and is not a directory",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
                remove_stale(&parent)?;
                false
            }
            Err(e) => return Err(Error::io(&target, e)),
        };
        let home = if inside { target.clone() } else { parent };
        let path = home.join(format!(
            "{STAGING_PREFIX}{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        let lock = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: a valid open descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            let _ = fs::remove_dir(&path);
            return Err(Error::io(&path, e));
        }
        if inside {
            // The rootfs root starts with the target's own mode.
            if let Ok(m) = fs::metadata(&target) {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(m.mode() & 0o7777));
            }
        }
        Ok(Staging {
            path,
            target,
            inside,
            _lock: lock,
            done: false,
        })
    }

    /// The directory to unpack into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the finished rootfs into the target. `root_meta`: the layers
    /// set the root directory's metadata (it is carried over to an existing
    /// target).
    pub fn commit(mut self, root_meta: bool) -> Result<()> {
        if !self.inside {
            fs::rename(&self.path, &self.target).map_err(|e| Error::io(&self.target, e))?;
            self.done = true;
            return Ok(());
        }
        let entries: Vec<_> = fs::read_dir(&self.path)
            .map_err(|e| Error::io(&self.path, e))?
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io(&self.path, e))?;
        for e in entries {
            let to = self.target.join(e.file_name());
            // No overwrite: the target was empty, and anything that
            // appeared since is not ours to replace.
            rename_noreplace(&e.path(), &to)?;
        }
        if root_meta {
            let m = fs::symlink_metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
            let c = cstr(&self.target)?;
            if super::is_root() {
                // SAFETY: valid NUL-terminated path.
                if unsafe { libc::lchown(c.as_ptr(), m.uid(), m.gid()) } != 0 {
                    return Err(Error::io(&self.target, io::Error::last_os_error()));
                }
            }
            fs::set_permissions(&self.target, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(|e| Error::io(&self.target, e))?;
            fs::remove_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
            self.done = true;
            super::set_mtime(&self.target, m.mtime())?;
            return Ok(());
        }
        fs::remove_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = remove_tree(&self.path) {
                tracing::warn!(path = %self.path.display(), "removing the staging directory: {e}");
            }
        }
    }
}

fn cstr(p: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(p.display().to_string(), "path contains NUL"))
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid NUL-terminated paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc != 0 {
        return Err(Error::io(to, io::Error::last_os_error()));
    }
    Ok(())
}

/// Removes the staging directories in `dir` whose run is gone (their lock
/// is free).
pub fn remove_stale(dir: &Path) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if !is_staging_name(&e.file_name()) {
            continue;
        }
        let p = e.path();
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&p)
        else {
            continue;
        };
        // The pid in the name covers the moment between a live run's mkdir
        // and its flock; the lock covers pid namespaces and reused pids.
        if pid_of(&e.file_name()).is_some_and(alive) {
            continue;
        }
        // SAFETY: a valid open descriptor.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            tracing::info!(path = %p.display(), "removing the staging directory of a dead unpack");
            remove_tree(&p)?;
        }
    }
    Ok(())
}

fn pid_of(n: &OsStr) -> Option<libc::pid_t> {
    let rest = n.as_bytes().strip_prefix(STAGING_PREFIX.as_bytes())?;
    let digits = rest.split(|&b| b == b'-').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn is_staging_name(n: &OsStr) -> bool {
    n.as_bytes().starts_with(STAGING_PREFIX.as_bytes())
}

/// Removes a tree even where its directories are read-only (a rootfs has
/// such directories), never following symlinks.
pub fn remove_tree(p: &Path) -> Result<()> {
    let m = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(p, e)),
    };
    if !m.is_dir() {
        return fs::remove_file(p).map_err(|e| Error::io(p, e));
    }
    if m.mode() & 0o700 != 0o700 {
        fs::set_permissions(p, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(p, e))?;
    }
    for e in fs::read_dir(p).map_err(|e| Error::io(p, e))? {
        let e = e.map_err(|e| Error::io(p, e))?;
        remove_tree(&e.path())?;
    }
    fs::remove_dir(p).map_err(|e| Error::io(p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_directories_go_and_live_ones_stay() {
        let t = tempfile::tempdir().unwrap();
        let stale = t.path().join(format!("{STAGING_PREFIX}999999-dead"));
        fs::create_dir_all(stale.join("ro/sub")).unwrap();
        fs::write(stale.join("ro/sub/f"), b"x").unwrap();
        fs::set_permissions(stale.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
        let live = Staging::create(&t.path().join("target")).unwrap();
        assert!(!stale.exists(), "a dead run's directory is removed");
        let other = t.path().join(format!("{STAGING_PREFIX}999998-other"));
        fs::create_dir(&other).unwrap();
        // A live pid's directory stays even unlocked (the moment between
        // mkdir and flock).
        let young = t
            .path()
            .join(format!("{STAGING_PREFIX}{}-young", std::process::id()));
        fs::create_dir(&young).unwrap();
        // The live staging directory survives another run's cleanup.
        remove_stale(t.path()).unwrap();
        assert!(live.path().exists());
        assert!(!other.exists());
        assert!(young.exists());
        let p = live.path().to_path_buf();
        drop(live);
        assert!(!p.exists(), "an uncommitted staging directory is removed");
        assert!(!t.path().join("target").exists());
    }

    #[test]
    fn commits_into_an_absent_or_empty_target() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("a/b");
        let s = Staging::create(&target).unwrap();
        fs::write(s.path().join("f"), b"1").unwrap();
        s.commit(false).unwrap();
        assert_eq!(fs::read(target.join("f")).unwrap(), b"1");
        let empty = t.path().join("e");
        fs::create_dir(&empty).unwrap();
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o750)).unwrap();
        let s = Staging::create(&empty).unwrap();
        fs::create_dir(s.path().join("d")).unwrap();
        s.commit(false).unwrap();
        assert!(empty.join("d").is_dir());
        let names: Vec<_> = fs::read_dir(&empty).unwrap().collect();
        assert_eq!(names.len(), 1);
        let mode = fs::metadata(&empty).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        // Not empty: refused, nothing created.
        assert!(Staging::create(&empty).is_err());
    }
}
