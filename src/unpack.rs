//! Unpacks an image's rootfs into a directory.
//!
//! Whiteouts and opaque directories are applied as the OCI image spec says
//! (they hide only what lower layers had). Names are read as containerd and
//! umoci read them ([`entry_name`]): `/`, `.` and `./` are the root (its
//! metadata is applied), `/etc/x` is `etc/x`. An entry's parent (and a hard
//! link's target's parent) is resolved through the symlinks already
//! unpacked, inside the root, as containerd and umoci resolve it
//! ([`resolve`]): `lib/x` over `lib -> usr/lib` is written to `usr/lib/x`,
//! a link to `/etc` or `../..` stays inside the target. A `..` above the
//! root in a name is refused ([`normalize`]); nothing outside the target is
//! ever touched.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::layer::path::{entry_name, normalize, EntryName};
use crate::layer::scan::{walk_layer, Check};
use crate::transport::ImageSource;

mod resolve;
pub mod staging;

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Apply uid/gid from the layers (default: when running as root).
    pub preserve_ownership: bool,
    /// Create device nodes (needs root; skipped otherwise).
    pub devices: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = is_root();
        UnpackOptions {
            preserve_ownership: root,
            devices: root,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UnpackReport {
    pub layers: usize,
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    pub skipped_devices: u64,
    pub skipped_xattrs: u64,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Unpacks `img` into `dir`, which must be absent or empty.
///
/// Nothing appears in `dir` until every layer was read to its end and
/// verified (digest, compression trailers, diff_id): the rootfs is built in
/// a staging directory and moved into place last (see [`staging`]). A
/// failed unpack, a tampered layer or a full disk leave `dir` as it was.
pub fn unpack_image(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let mut layers = Vec::with_capacity(img.layers().len());
    for (i, layer) in img.layers().iter().enumerate() {
        let diff_id = img.diff_ids().get(i).ok_or_else(|| {
            Error::invalid(
                layer.digest().to_string(),
                "the config's rootfs.diff_ids has no entry for this layer",
            )
        })?;
        layers.push(UnpackLayer {
            src,
            descriptor: layer,
            diff_id,
        });
    }
    unpack_layers(&layers, dir, opts)
}

/// One layer to unpack: where it is read from and the diff_id its
/// uncompressed bytes must hash to.
#[derive(Clone, Copy)]
pub struct UnpackLayer<'a> {
    pub src: &'a dyn ImageSource,
    pub descriptor: &'a oci_spec::image::Descriptor,
    pub diff_id: &'a str,
}

/// Unpacks layers from several sources, lowest first, into `dir` (absent
/// or empty): an image that is not written yet (the step's exec guards).
/// The rootfs is built in a staging directory and moved into `dir` only
/// once every layer verified.
pub fn unpack_layers(
    layers: &[UnpackLayer<'_>],
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let stage = staging::Staging::create(dir)?;
    let mut u = Unpacker {
        root: stage.path().to_path_buf(),
        opts: opts.clone(),
        report: UnpackReport::default(),
        dir_meta: Vec::new(),
    };
    for l in layers {
        u.apply_layer(l.src, l.descriptor, l.diff_id)?;
        u.report.layers += 1;
    }
    u.finish_dirs()?;
    let root_meta = u.dir_meta.iter().any(|d| d.path == u.root);
    stage.commit(root_meta)?;
    Ok(u.report)
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: i64,
}

struct Unpacker {
    root: PathBuf,
    opts: UnpackOptions,
    report: UnpackReport,
    dir_meta: Vec<DirMeta>,
}

impl Unpacker {
    fn unsafe_path(&self, layer: &str, entry: &Path, reason: impl Into<String>) -> Error {
        Error::UnsafePath {
            layer: layer.to_string(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Where the entry named `rel` lands: its parent resolved through the
    /// symlinks unpacked so far, bounded by the root ([`resolve`]).
    fn place(&self, rel: &Path, layer: &str, entry: &Path) -> Result<PathBuf> {
        resolve::resolve_parent(&self.root, rel).map_err(|e| self.resolve_error(e, layer, entry))
    }

    fn resolve_error(&self, e: resolve::ResolveError, layer: &str, entry: &Path) -> Error {
        match e {
            resolve::ResolveError::TooManyLinks => self.unsafe_path(
                layer,
                entry,
                format!(
                    "more than {} symlinks resolving its parent (a loop?)",
                    crate::layer::path::MAX_ENTRY_LINK_HOPS
                ),
            ),
            resolve::ResolveError::Io(p, e) => Error::io(p, e),
        }
    }

    /// Makes sure every ancestor of `rel` (already resolved by
    /// [`Unpacker::place`]) is a real directory, creating missing ones and
    /// replacing files; a symlink there is refused, never followed.
    fn prepare_parents(&self, rel: &Path, layer: &str, entry: &Path) -> Result<()> {
        let mut cur = self.root.clone();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_path(
                        layer,
                        entry,
                        format!(
                            "parent {} is a symlink after resolving; writing through it could escape the target",
                            strip(&cur, &self.root)
                        ),
                    ))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&cur).map_err(|e| Error::io(&cur, e))?;
                    fs::create_dir(&cur).map_err(|e| Error::io(&cur, e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur).map_err(|e| Error::io(&cur, e))?;
                }
                Err(e) => return Err(Error::io(&cur, e)),
            }
        }
        Ok(())
    }

    /// Applies one layer. The stream is decoded to its end (`walk_layer`
    /// drains it) so its digest, trailers and diff_id are verified even
    /// though tar stops at the end-of-archive blocks.
    fn apply_layer(
        &mut self,
        src: &dyn ImageSource,
        desc: &oci_spec::image::Descriptor,
        diff_id: &str,
    ) -> Result<()> {
        let layer = desc.digest().to_string();
        let mut created: HashSet<PathBuf> = HashSet::new();
        walk_layer(src, desc, Check::Full(diff_id), |_, entry| {
            let (raw, _) =
                crate::layer::scan::entry_path(entry).map_err(|e| Error::from_io(&layer, e))?;
            let et = entry.header().entry_type();
            if !crate::layer::scan::is_fs_object(et) {
                // As the merged view does: no object, so the name is moot.
                if et != tar::EntryType::XGlobalHeader {
                    tracing::warn!(layer = %layer, entry = %raw.display(), "skipping tar entry of type {et:?}");
                }
                return Ok(true);
            }
            let is_dir = et.is_dir();
            let kind = entry_name(&raw, is_dir).map_err(|r| self.unsafe_path(&layer, &raw, r))?;
            match kind {
                EntryName::Whiteout(p) => {
                    let p = self.place(&p, &layer, &raw)?;
                    // Under a missing directory it hides nothing: create
                    // no parents for it (umoci does not).
                    let parent_missing = p.parent().is_some_and(|d| {
                        matches!(fs::symlink_metadata(self.root.join(d)),
                            Err(e) if e.kind() == io::ErrorKind::NotFound)
                    });
                    if !parent_missing {
                        self.prepare_parents(&p, &layer, &raw)?;
                        if !created.contains(&p) {
                            remove_all(&self.root.join(&p))?;
                        }
                    }
                    self.report.whiteouts += 1;
                }
                EntryName::Opaque(p) => {
                    // The marker's parent: the directory made opaque.
                    let p = resolve::resolve(&self.root, &p)
                        .map_err(|e| self.resolve_error(e, &layer, &raw))?;
                    self.prepare_parents(&p.join("x"), &layer, &raw)?;
                    let d = self.root.join(&p);
                    if let Ok(rd) = fs::read_dir(&d) {
                        for child in rd {
                            let child = child.map_err(|e| Error::io(&d, e))?;
                            if !created.contains(&p.join(child.file_name())) {
                                remove_all(&child.path())?;
                            }
                        }
                    }
                    self.report.whiteouts += 1;
                }
                EntryName::Regular(p) => {
                    let p = self.place(&p, &layer, &raw)?;
                    self.extract(entry, &p, &raw, &layer)?;
                    created.insert(p);
                    self.report.entries += 1;
                }
            }
            Ok(true)
        })
    }

    fn extract<R: io::Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        rel: &Path,
        raw: &Path,
        layer: &str,
    ) -> Result<()> {
        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().map_err(|e| Error::io(raw, e))? & 0o7777;
        let uid = h.uid().map_err(|e| Error::io(raw, e))?;
        let gid = h.gid().map_err(|e| Error::io(raw, e))?;
        let mtime = h.mtime().map_err(|e| Error::io(raw, e))? as i64;
        let link = entry
            .link_name()
            .map_err(|e| Error::io(raw, e))?
            .map(|l| l.into_owned());
        let target = self.root.join(rel);
        if rel.as_os_str().is_empty() {
            // The root directory's own metadata (`/`, `.`, `./`; only a
            // directory gets here), applied as umoci does.
            self.dir_meta.push(DirMeta {
                path: target.clone(),
                mode,
                mtime,
            });
            self.chown(&target, uid, gid)?;
            self.apply_xattrs(entry, &target)?;
            return Ok(());
        }
        self.prepare_parents(rel, layer, raw)?;
        let existing = fs::symlink_metadata(&target).ok();
        match kind {
            tar::EntryType::Directory => {
                match existing {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        remove_all(&target)?;
                        fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                    }
                    None => fs::create_dir(&target).map_err(|e| Error::io(&target, e))?,
                }
                self.chown(&target, uid, gid)?;
                self.dir_meta.push(DirMeta {
                    path: target.clone(),
                    mode,
                    mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                if existing.is_some() {
                    remove_all(&target)?;
                }
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|e| Error::io(&target, e))?;
                let n = crate::layer::scan::entry_body(entry)
                    .and_then(|mut body| io::copy(&mut body, &mut f))
                    .map_err(|e| Error::from_io(layer, e))?;
                self.report.bytes += n;
                drop(f);
                self.chown(&target, uid, gid)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(&target, e))?;
                set_mtime(&target, mtime)?;
            }
            tar::EntryType::Symlink => {
                let link =
                    link.ok_or_else(|| self.unsafe_path(layer, raw, "symlink without target"))?;
                if existing.is_some() {
                    remove_all(&target)?;
                }
                std::os::unix::fs::symlink(&link, &target).map_err(|e| Error::io(&target, e))?;
                self.chown(&target, uid, gid)?;
                set_mtime(&target, mtime)?;
            }
            tar::EntryType::Link => {
                let link =
                    link.ok_or_else(|| self.unsafe_path(layer, raw, "hard link without target"))?;
                let link_rel = normalize(&link).map_err(|r| {
                    self.unsafe_path(
                        layer,
                        raw,
                        format!("hard link target {}: {r}", link.display()),
                    )
                })?;
                let link_rel = self.place(&link_rel, layer, raw)?;
                self.prepare_parents(&link_rel, layer, raw)?;
                let src = self.root.join(&link_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_dir() => {
                        return Err(self.unsafe_path(layer, raw, "hard link to a directory"))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(self.unsafe_path(
                            layer,
                            raw,
                            format!("hard link target {} does not exist", link_rel.display()),
                        ))
                    }
                }
                if existing.is_some() && src != target {
                    remove_all(&target)?;
                }
                if src != target {
                    fs::hard_link(&src, &target).map_err(|e| Error::io(&target, e))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if !self.opts.devices && kind != tar::EntryType::Fifo {
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                if existing.is_some() {
                    remove_all(&target)?;
                }
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let c = cstr(&target)?;
                // SAFETY: valid NUL-terminated path; mknod has no memory effects.
                let rc =
                    unsafe { libc::mknod(c.as_ptr(), fmt | mode, libc::makedev(major, minor)) };
                if rc != 0 {
                    return Err(Error::io(&target, io::Error::last_os_error()));
                }
                self.chown(&target, uid, gid)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(&target, e))?;
            }
            other => {
                tracing::warn!(entry = %raw.display(), "skipping unsupported tar entry type {other:?}");
                return Ok(());
            }
        }
        self.apply_xattrs(entry, &target)?;
        Ok(())
    }

    fn chown(&self, path: &Path, uid: u64, gid: u64) -> Result<()> {
        if !self.opts.preserve_ownership {
            return Ok(());
        }
        let c = cstr(path)?;
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::lchown(c.as_ptr(), uid as libc::uid_t, gid as libc::gid_t) };
        if rc != 0 {
            return Err(Error::io(path, io::Error::last_os_error()));
        }
        Ok(())
    }

    fn apply_xattrs<R: io::Read>(&mut self, entry: &mut tar::Entry<R>, path: &Path) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts {
            let Ok(ext) = ext else { continue };
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            let (Ok(cpath), Ok(cname)) = (cstr(path), CString::new(name)) else {
                continue;
            };
            let value = ext.value_bytes();
            // SAFETY: valid C strings and a live buffer of the given length.
            let rc = unsafe {
                libc::lsetxattr(
                    cpath.as_ptr(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if rc != 0 {
                // Not root, or a filesystem without xattrs: keep going, count it.
                self.report.skipped_xattrs += 1;
            }
        }
        Ok(())
    }

    /// Directory modes and mtimes last: creating children changes mtimes,
    /// and a read-only directory would block its own children.
    fn finish_dirs(&mut self) -> Result<()> {
        // Children before parents (reverse order); a directory listed again
        // by a later layer (or later in its layer) takes the later entry's
        // metadata, as umoci and containerd do: the first one seen wins here.
        let mut done: HashSet<&Path> = HashSet::new();
        for d in self.dir_meta.iter().rev() {
            if !done.insert(d.path.as_path()) {
                continue;
            }
            // A later entry may have replaced the directory or one of its
            // ancestors with a symlink: never chmod or touch through it.
            if !is_real_dir_under(&self.root, &d.path) {
                continue;
            }
            fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))
                .map_err(|e| Error::io(&d.path, e))?;
            set_mtime(&d.path, d.mtime)?;
        }
        Ok(())
    }
}

/// Whether `path` and every ancestor of it below `root` are real directories
/// (not symlinks), so operations on `path` stay inside `root`.
fn is_real_dir_under(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

fn strip(p: &Path, root: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(p.display().to_string(), "path contains NUL"))
}

/// Removes a file, symlink or whole directory tree, never following links.
fn remove_all(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(|e| Error::io(p, e)),
        Ok(_) => fs::remove_file(p).map_err(|e| Error::io(p, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Sets a path's mtime (and atime), never following a symlink.
pub(crate) fn set_mtime(p: &Path, mtime: i64) -> Result<()> {
    let c = cstr(p)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io(p, io::Error::last_os_error()));
    }
    Ok(())
}
