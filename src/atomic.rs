//! Atomic file replacement: temp file in the same directory, fsync, rename,
//! fsync the directory. A crash or a full disk leaves either the old file or
//! the new one, never a torn one.
//!
//! Files are created as skopeo and umoci create them: mode 0666 less the
//! umask (directories 0777 less the umask), and a replaced file keeps its
//! mode. Every temp file (and staging directory) is held under an exclusive
//! `flock` by the process writing it; the kernel drops that lock when the
//! process dies, even on `kill -9`, so a later writer can tell the leftovers
//! of a dead writer (unlocked: removed) from a live writer's work (locked:
//! kept). A lock, unlike a pid in the name, survives pid reuse and pid
//! namespaces (two containers sharing a volume).

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Prefix of every temporary file ocipack creates inside a store, so leftovers
/// of a killed process are recognisable (and ignored by readers).
pub const TEMP_PREFIX: &str = ".ocipack-tmp-";

/// Mode requested for new files (the umask applies), as skopeo and umoci.
const FILE_MODE: u32 = 0o666;
/// Mode requested for new directories (the umask applies).
const DIR_MODE: u32 = 0o777;

/// Creates a temp file in `dir` (mode 0666 less the umask), locked for as
/// long as it stays open (see the module docs).
pub fn temp_file(dir: &Path) -> Result<NamedTempFile> {
    temp_file_prefixed(dir, TEMP_PREFIX)
}

/// [`temp_file`] with a longer prefix (which must start with [`TEMP_PREFIX`]).
pub fn temp_file_prefixed(dir: &Path, prefix: &str) -> Result<NamedTempFile> {
    loop {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(Permissions::from_mode(FILE_MODE))
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        // Blocking: a cleaner that locked the file first removes it and
        // then releases the lock.
        lock(tmp.as_file(), libc::LOCK_EX).map_err(|e| Error::io(tmp.path(), e))?;
        if still_linked(tmp.path(), tmp.as_file()) {
            return Ok(tmp);
        }
        // A cleaner took it for a dead writer's file between its creation
        // and our lock: forget it (the name is gone) and start again.
        let _ = tmp.into_temp_path().keep();
    }
}

/// Suffix of a staging directory; its liveness lock is the temp file of the
/// same name without the suffix.
const STAGING_SUFFIX: &str = ".d";

/// A directory being built beside its destination (mode 0777 less the
/// umask), to be renamed into place. Its writer holds the lock of the temp
/// file `NAME` while the directory is `NAME.d`, so a later writer removes it
/// only once its writer is gone. Dropped without [`StagingDir::keep`], it
/// is removed.
pub struct StagingDir {
    lock: Option<NamedTempFile>,
    dir: PathBuf,
}

impl StagingDir {
    /// Creates `PARENT/PREFIX…​.d` (`prefix` starts with [`TEMP_PREFIX`]).
    pub fn new(parent: &Path, prefix: &str) -> Result<StagingDir> {
        loop {
            let lock = temp_file_prefixed(parent, prefix)?;
            let mut name = lock.path().as_os_str().to_owned();
            name.push(STAGING_SUFFIX);
            let dir = PathBuf::from(name);
            match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => {
                    return Ok(StagingDir {
                        lock: Some(lock),
                        dir,
                    })
                }
                // A dead writer's directory of the same name: removed by
                // the cleaner; pick another name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The directory was renamed into place: drop the lock file only.
    pub fn keep(mut self) {
        self.dir = PathBuf::new();
        self.lock.take();
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
        // The lock file goes last, so the directory is never unguarded.
        self.lock.take();
    }
}

/// A command's private scratch directory (a smoke's unpacked root, a
/// spool of downloaded blobs, a build's staging layout): a [`StagingDir`]
/// under `$TMPDIR/ocipack-UID/`, removed on drop (with that parent when it
/// is left empty, so `$TMPDIR` is as it was). What a killed run left there
/// is removed by the next run that asks for scratch space, as a layout's
/// temp files are (see the module docs), so a `kill -9` leaves nothing
/// that stays.
pub struct ScratchDir {
    staging: Option<StagingDir>,
    parent: PathBuf,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        self.staging.as_ref().map_or(&self.parent, StagingDir::path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        self.staging.take();
        // Fails (and is meant to) while another run has scratch there.
        let _ = fs::remove_dir(&self.parent);
    }
}

/// A new [`ScratchDir`] under `$TMPDIR`.
pub fn scratch_dir() -> Result<ScratchDir> {
    scratch_dir_in(&std::env::temp_dir())
}

/// [`scratch_dir`] under `tmp` instead of `$TMPDIR`.
pub fn scratch_dir_in(tmp: &Path) -> Result<ScratchDir> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let parent = tmp.join(format!("ocipack-{uid}"));
    let mut attempts = 0;
    loop {
        match fs::DirBuilder::new().mode(0o700).create(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&parent, e)),
        }
        // A shared TMPDIR: the directory must be ours and private, not one
        // another user prepared (or a symlink to one).
        let m = fs::symlink_metadata(&parent).map_err(|e| Error::io(&parent, e))?;
        if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
            return Err(Error::invalid(
                parent.display().to_string(),
                format!(
                    "scratch directory is not a private directory of uid {uid} (mode 0700); remove it or set TMPDIR"
                ),
            ));
        }
        let made = remove_stale_temp(&parent, TEMP_PREFIX)
            .and_then(|_| StagingDir::new(&parent, TEMP_PREFIX));
        match made {
            Ok(staging) => {
                return Ok(ScratchDir {
                    staging: Some(staging),
                    parent,
                })
            }
            // Another run removed the (then empty) parent as we created
            // it: make it again.
            Err(_) if !parent.exists() && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

fn still_linked(path: &Path, f: &File) -> bool {
    match (fs::symlink_metadata(path), f.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn lock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `path` (a temp file or staging directory) belongs to a writer
/// that is gone. Returns the lock to hold while removing it (for a staging
/// directory whose lock file is already gone, an unlocked handle).
fn stale_lock(path: &Path) -> Option<File> {
    let is_dir = fs::symlink_metadata(path).ok()?.is_dir();
    let lock_path = match (is_dir, path.to_str()) {
        (true, Some(p)) if p.ends_with(STAGING_SUFFIX) => {
            PathBuf::from(&p[..p.len() - STAGING_SUFFIX.len()])
        }
        // Not a directory we stage: leave it to its owner.
        (true, _) => return None,
        (false, _) => path.to_path_buf(),
    };
    match File::open(&lock_path) {
        Ok(f) => {
            lock(&f, libc::LOCK_EX | libc::LOCK_NB).ok()?;
            Some(f)
        }
        // The writer creates the lock file before the directory and
        // removes it after: a directory without one is a leftover.
        Err(e) if is_dir && e.kind() == std::io::ErrorKind::NotFound => File::open(path).ok(),
        Err(_) => None,
    }
}

/// The temp files and staging directories directly inside `dir` whose
/// `name` starts with `prefix` (normally [`TEMP_PREFIX`]).
pub fn temp_entries(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if e.file_name().to_string_lossy().starts_with(prefix) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a temp entry is in use by a live writer.
pub fn temp_in_use(path: &Path) -> bool {
    stale_lock(path).is_none() && path.exists()
}

/// Removes the temp files and staging directories in `dir` (named with
/// `prefix`) whose writer has died. A live writer's are kept. Returns what
/// was removed.
pub fn remove_stale_temp(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for p in temp_entries(dir, prefix)? {
        let Some(_lock) = stale_lock(&p) else {
            continue;
        };
        let r = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
            Ok(_) => fs::remove_file(&p),
            Err(_) => continue,
        };
        match r {
            Ok(()) => {
                tracing::info!("removed {} left by a writer that died", p.display());
                removed.push(p);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(removed)
}

/// Replaces `path` with `bytes` atomically, keeping the mode of the file it
/// replaces (a new file gets 0666 less the umask).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = temp_file(dir)?;
    keep_mode(path, tmp.as_file())?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir)
}

/// Gives `tmp` the permission bits of the existing file at `path`, if any.
pub fn keep_mode(path: &Path, tmp: &File) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) => tmp
            .set_permissions(Permissions::from_mode(m.mode() & 0o7777))
            .map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a directory and its parents, naming the path on failure.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_left_by_a_dead_run_goes_a_live_one_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let live = scratch_dir_in(tmp.path()).unwrap();
        std::fs::write(live.path().join("blob"), b"x").unwrap();
        let parent = live.path().parent().unwrap().to_path_buf();
        assert_eq!(
            fs::metadata(&parent).unwrap().mode() & 0o777,
            0o700,
            "private to its user"
        );
        // A killed run: its directory stays, its lock is gone.
        let dead = scratch_dir_in(tmp.path()).unwrap();
        let dead_dir = dead.path().to_path_buf();
        let lock_path = PathBuf::from(dead_dir.to_str().unwrap().trim_end_matches(STAGING_SUFFIX));
        std::mem::forget(dead);
        fs::remove_file(&lock_path).unwrap();
        let next = scratch_dir_in(tmp.path()).unwrap();
        assert!(!dead_dir.exists(), "the dead run's scratch is removed");
        assert!(live.path().join("blob").exists(), "a live run's stays");
        drop(next);
        drop(live);
        assert!(!parent.exists(), "an empty scratch parent is removed");
        // Not ours or not private: refused.
        fs::DirBuilder::new().mode(0o777).create(&parent).unwrap();
        fs::set_permissions(&parent, Permissions::from_mode(0o777)).unwrap();
        let e = scratch_dir_in(tmp.path()).err().unwrap();
        assert!(e.to_string().contains("private"), "{e}");
    }

    #[test]
    fn stale_temp_files_go_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let live = temp_file(d.path()).unwrap();
        let staging = StagingDir::new(d.path(), TEMP_PREFIX).unwrap();
        fs::write(staging.path().join("x"), b"x").unwrap();
        // A dead writer's file: nobody holds its lock.
        let dead = d.path().join(format!("{TEMP_PREFIX}dead"));
        fs::write(&dead, b"x").unwrap();
        fs::create_dir(d.path().join(format!("{TEMP_PREFIX}deaddir.d"))).unwrap();
        // Not ours to judge: a directory without the staging suffix.
        fs::create_dir(d.path().join(format!("{TEMP_PREFIX}other"))).unwrap();
        assert!(temp_in_use(live.path()));
        assert!(!temp_in_use(&dead));
        let removed = remove_stale_temp(d.path(), TEMP_PREFIX).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(live.path().exists() && !dead.exists());
        assert!(staging.path().join("x").exists());
        let p = staging.path().to_path_buf();
        drop(staging);
        assert!(!p.exists());
    }
}
