//! Copies trees out of an image (`ocipack extract`): the artifacts a builder
//! image produced, with `SHA256SUMS` and a metadata file beside them.
//!
//! The image is read through its merged view ([`MergedTree`]), so whiteouts,
//! opaque directories and symlinked parents mean what they mean to
//! `unpack`, and names with `..` above the root are refused as there. Then:
//!
//! - a requested path is resolved inside the image root (a symlink there is
//!   followed, as `cp -H` follows its operands) and lands in the target
//!   under the name it was asked by: `--path /artifacts` is
//!   `DIR/artifacts`, whatever `/artifacts` links to;
//! - a symlink inside an extracted tree is kept only when it leads, resolved
//!   inside the image, into one of the extracted trees; it is written as a
//!   relative link to that place in the target (an absolute link would point
//!   into the host). A link out of the extracted trees is refused, naming it;
//! - files sharing an inode in the image (hard links) share one in the
//!   target; modes keep their permission bits (set-id and sticky bits are
//!   dropped: these are files to ship, not a rootfs), owners are not kept,
//!   mtimes are the image's; device nodes and FIFOs are skipped and listed;
//! - everything is written into a staging directory ([`Staging`], as
//!   `unpack` does) and moved into the target last: a failure (a missing
//!   path, a tampered layer, `--check-elf`, a full disk) leaves the target as
//!   it was. The target must be absent or an empty directory.
//!
//! The target receives [`SUMS_FILE`] (coreutils `sha256sum` format, sorted,
//! relative paths: `sha256sum -c SHA256SUMS` in the target passes) and
//! [`METADATA_FILE`] ([`ExtractMetadata`] as JSON): inside the directory, so
//! whoever receives it can check it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::guard::elf::ElfCheck;
use crate::guard::GuardOutcome;
use crate::image::ResolvedImage;
use crate::layer::scan::{self, Check};
use crate::layer::{ContentRef, FileKind, ImagePath, MergedTree, TreeEntry};
use crate::platform::TargetArch;
use crate::provenance::Provenance;
use crate::transport::ImageSource;
use crate::unpack::staging::Staging;

/// The checksum file written into the target.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The metadata file written into the target.
pub const METADATA_FILE: &str = "ocipack-extract.json";

/// What to extract.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// The reference as the user named it, for the metadata.
    pub reference: String,
    /// Paths inside the image (`/artifacts`; `/` is the whole rootfs).
    pub paths: Vec<String>,
    /// Refuse the extract when an ELF file is not built for this arch.
    pub check_elf: Option<TargetArch>,
}

/// The metadata file's content (docs/json.md, `extract`).
#[derive(Debug, Clone, Serialize)]
pub struct ExtractMetadata {
    pub reference: String,
    pub manifest_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    pub platform: String,
    /// The requested paths, as given.
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub provenance: Provenance,
    /// Every label of the image's config.
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_elf: Option<ElfSummary>,
    /// Every entry written, sorted by path (the metadata and checksum files
    /// aside).
    pub files: Vec<FileRecord>,
    /// Device nodes and FIFOs, not extracted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The ELF check that passed.
#[derive(Debug, Clone, Serialize)]
pub struct ElfSummary {
    pub arch: TargetArch,
    /// ELF files judged.
    pub checked: u64,
}

/// One entry of the target.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    /// Relative to the target, `/`-separated.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: FileType,
    /// Bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Hex SHA-256 of a regular file's content, as in `SHA256SUMS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Permission bits, octal (`0755`).
    pub mode: String,
    /// A symlink's target as written (relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

/// One requested tree: where it is in the image, where it lands.
struct Root {
    /// As asked: its place in the image names its place in the target.
    named: ImagePath,
    /// Resolved inside the image.
    resolved: ImagePath,
}

/// One entry to write, keyed by its target path.
struct Item {
    kind: FileType,
    mode: u32,
    mtime: Option<u64>,
    content: Option<ContentRef>,
    link: Option<PathBuf>,
    /// Where it is in the image (for messages).
    image_path: ImagePath,
}

/// Extracts `req.paths` of `img` into `dir` (absent or empty). Returns the
/// metadata written there.
pub fn extract(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    req: &ExtractRequest,
    dir: &Path,
) -> Result<ExtractMetadata> {
    if req.paths.is_empty() {
        return Err(Error::invalid("extract", "no --path given"));
    }
    let named: Vec<ImagePath> = req
        .paths
        .iter()
        .map(|p| requested_path(p))
        .collect::<Result<_>>()?;
    let tree = MergedTree::load(src, img)?;
    let mut roots = Vec::new();
    for n in named {
        let resolved = tree.resolve_symlinks(&n)?;
        if !resolved.is_root() && tree.get(&resolved).is_none() {
            let via = if resolved != n {
                format!(" (a symlink to {resolved}, which does not exist)")
            } else {
                String::new()
            };
            return Err(Error::not_found(
                format!("path {n}{via}"),
                format!("image {}", req.reference),
            ));
        }
        roots.push(Root { named: n, resolved });
    }
    let (items, skipped) = plan(&tree, &roots)?;
    // Stage in the target's filesystem; nothing is visible until commit.
    let stage = Staging::create(dir)?;
    let root = stage.path().to_path_buf();
    let mut elf = req.check_elf.map(|a| ElfCheck::new(a, &[])).transpose()?;
    let written = write_items(src, &tree, &items, &root, elf.as_mut())?;
    let check_elf = match (elf, req.check_elf) {
        (Some(check), Some(arch)) => {
            let outcome = check.finish();
            if !outcome.passed() {
                return Err(Error::Guard(elf_failure(&outcome, arch)));
            }
            Some(ElfSummary {
                arch,
                checked: outcome.checked,
            })
        }
        _ => None,
    };
    let provenance = Provenance::of(img);
    let meta = ExtractMetadata {
        reference: req.reference.clone(),
        manifest_digest: img.descriptor.digest().to_string(),
        index_digest: img.index.as_ref().map(|d| d.digest().to_string()),
        platform: img.platform_string(),
        paths: req.paths.clone(),
        run_id: provenance.run_id.clone(),
        provenance,
        labels: img.config_labels(),
        check_elf,
        files: records(&items, &written)?,
        skipped,
    };
    let mut json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::json(METADATA_FILE, e))?;
    json.push(b'\n');
    write_new(&root.join(METADATA_FILE), &json)?;
    let mut sums: Vec<(String, String)> = meta
        .files
        .iter()
        .filter_map(|f| f.sha256.clone().map(|h| (f.path.clone(), h)))
        .collect();
    sums.push((METADATA_FILE.into(), hex::encode(Sha256::digest(&json))));
    sums.sort();
    write_new(&root.join(SUMS_FILE), sums_file(&sums).as_bytes())?;
    finish_dirs(&items, &root)?;
    sync_fs(&root)?;
    stage.commit(false)?;
    Ok(meta)
}

/// `/artifacts`, `artifacts/`, `/` → a relative normalised path; `..` is
/// refused (the path is read inside the image, never climbing).
fn requested_path(p: &str) -> Result<ImagePath> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(
                    format!("--path {p}"),
                    "'..' is not allowed: name the path inside the image",
                ))
            }
        }
    }
    if out.as_os_str().to_str().is_none() {
        return Err(Error::invalid(format!("--path {p}"), "not UTF-8"));
    }
    Ok(ImagePath::from_normalized(out))
}

/// Every target path with what goes there, and the skipped entries.
fn plan(tree: &MergedTree, roots: &[Root]) -> Result<(BTreeMap<PathBuf, Item>, Vec<String>)> {
    let mut items: BTreeMap<PathBuf, Item> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for r in roots {
        // The directories leading to the requested name.
        let mut anc = PathBuf::new();
        let comps: Vec<_> = r.named.rel().components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            anc.push(c);
            if items.contains_key(&anc) {
                continue;
            }
            let image_path = ImagePath::from_normalized(anc.clone());
            let image = tree
                .resolve_symlinks(&image_path)
                .ok()
                .and_then(|p| tree.get(&p))
                .filter(|e| e.kind == FileKind::Dir);
            items.insert(
                anc.clone(),
                Item {
                    kind: FileType::Dir,
                    mode: image.map_or(0o755, |e| e.mode & 0o777),
                    mtime: image.map(|e| e.mtime),
                    content: None,
                    link: None,
                    image_path,
                },
            );
        }
        let top = if r.resolved.is_root() {
            None
        } else {
            tree.get(&r.resolved)
        };
        let entries = top.into_iter().chain(
            tree.descendants(&r.resolved)
                .filter(|_| top.is_none_or(|t| t.kind == FileKind::Dir)),
        );
        for e in entries {
            let rel = e
                .path
                .rel()
                .strip_prefix(r.resolved.rel())
                .unwrap_or(e.path.rel());
            let dest = r.named.join(rel).into_rel();
            if dest.as_os_str().to_str().is_none() {
                return Err(Error::invalid(
                    e.path.to_string(),
                    "name is not UTF-8 (SHA256SUMS and the metadata need text names)",
                ));
            }
            let item = match e.kind {
                FileKind::Dir => item(e, FileType::Dir, None),
                FileKind::File | FileKind::HardLink => item(e, FileType::File, None),
                FileKind::Symlink => {
                    let link = symlink_in_target(tree, roots, e, &dest)?;
                    item(e, FileType::Symlink, Some(link))
                }
                FileKind::Char | FileKind::Block | FileKind::Fifo => {
                    tracing::warn!(path = %e.path, "not extracting a device node or FIFO");
                    skipped.insert(e.path.to_string());
                    continue;
                }
            };
            match items.get(&dest) {
                // The same entry asked twice (`--path /a --path /a/b`).
                Some(old) if old.image_path == e.path => {}
                Some(old) if old.kind == FileType::Dir && item.kind == FileType::Dir => {}
                Some(old) => {
                    return Err(Error::invalid(
                        format!("{}", dest.display()),
                        format!(
                            "two requested paths land here ({} and {})",
                            old.image_path, e.path
                        ),
                    ))
                }
                None => {
                    items.insert(dest, item);
                }
            }
        }
    }
    // A tar may leave a parent directory implicit (no entry of its own): it
    // is created 0755, as unpackers create it.
    let mut implied = Vec::new();
    for dest in items.keys() {
        let mut p = dest.parent();
        while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
            if !items.contains_key(a) {
                implied.push(a.to_path_buf());
            }
            p = a.parent();
        }
    }
    for a in implied {
        items.entry(a.clone()).or_insert(Item {
            kind: FileType::Dir,
            mode: 0o755,
            mtime: None,
            content: None,
            link: None,
            image_path: ImagePath::from(a.as_path()),
        });
    }
    for (dest, _) in items.iter() {
        if dest.parent() == Some(Path::new(""))
            && (dest.as_os_str() == SUMS_FILE || dest.as_os_str() == METADATA_FILE)
        {
            return Err(Error::invalid(
                format!("{}", dest.display()),
                "the image has a file where extract writes its own; extract a directory below it",
            ));
        }
        // Every parent must be a directory we create: nothing is ever
        // written through a link.
        let mut p = dest.parent();
        while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
            match items.get(a) {
                Some(i) if i.kind != FileType::Dir => {
                    return Err(Error::invalid(
                        format!("{}", dest.display()),
                        format!(
                            "requested paths overlap: its parent {} is a {:?} ({})",
                            a.display(),
                            i.kind,
                            i.image_path
                        ),
                    ))
                }
                _ => {}
            }
            p = a.parent();
        }
    }
    Ok((items, skipped.into_iter().collect()))
}

fn item(e: &TreeEntry, kind: FileType, link: Option<PathBuf>) -> Item {
    Item {
        kind,
        mode: if kind == FileType::Symlink {
            0o777
        } else {
            e.mode & 0o777
        },
        mtime: Some(e.mtime),
        content: if kind == FileType::File {
            e.content
        } else {
            None
        },
        link,
        image_path: e.path.clone(),
    }
}

/// The relative link that a symlink becomes in the target, or an error
/// when it leads out of the extracted trees.
fn symlink_in_target(
    tree: &MergedTree,
    roots: &[Root],
    e: &TreeEntry,
    dest: &Path,
) -> Result<PathBuf> {
    let target = e.link.clone().unwrap_or_default();
    let resolved = tree.resolve_link(&e.path.parent(), &target)?;
    let lands = roots.iter().find_map(|r| {
        resolved
            .rel()
            .strip_prefix(r.resolved.rel())
            .ok()
            .map(|rest| r.named.join(rest).into_rel())
    });
    let Some(lands) = lands else {
        return Err(Error::UnsafePath {
            layer: tree
                .layers()
                .get(e.layer as usize)
                .map_or_else(|| e.layer.to_string(), |l| l.descriptor.digest().to_string()),
            entry: e.path.to_string(),
            reason: format!(
                "symlink to {} leads to {resolved}, outside the extracted paths (extract that path too, or the file it names)",
                target.display()
            ),
        });
    };
    Ok(relative(dest.parent().unwrap_or(Path::new("")), &lands))
}

/// The relative path from directory `from` to `to` (both relative to the
/// same root, neither with `..`).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// What a file write produced.
struct Written {
    sha256: String,
    size: u64,
}

/// Creates the directories, streams the files' content (each needed layer
/// once, verified to its end), then makes the symlinks.
fn write_items(
    src: &dyn ImageSource,
    tree: &MergedTree,
    items: &BTreeMap<PathBuf, Item>,
    root: &Path,
    mut elf: Option<&mut ElfCheck>,
) -> Result<BTreeMap<ContentRef, Written>> {
    // Parents sort before children; directories stay writable until the
    // end ([`finish_dirs`]).
    for (dest, _) in items.iter().filter(|(_, i)| i.kind == FileType::Dir) {
        let p = root.join(dest);
        fs::create_dir(&p).map_err(|e| Error::io(&p, e))?;
    }
    let mut wanted: BTreeMap<ContentRef, Vec<&Path>> = BTreeMap::new();
    for (dest, i) in items {
        if let Some(c) = i.content {
            wanted.entry(c).or_default().push(dest);
        }
    }
    let mut by_layer: BTreeMap<u32, BTreeMap<u64, ContentRef>> = BTreeMap::new();
    for c in wanted.keys() {
        by_layer.entry(c.layer).or_default().insert(c.ordinal, *c);
    }
    let mut written = BTreeMap::new();
    for (layer, ordinals) in by_layer {
        let info = tree
            .layers()
            .get(layer as usize)
            .ok_or_else(|| Error::invalid("merged tree", format!("no layer {layer}")))?;
        let name = info.descriptor.digest().to_string();
        // The bytes written must be the verified ones: this read, too, is
        // checked to its end (digest and diff_id) before anything is moved
        // into the target.
        scan::walk_layer(
            src,
            &info.descriptor,
            Check::Full(&info.diff_id),
            |ordinal, entry| {
                let Some(c) = ordinals.get(&ordinal) else {
                    return Ok(true);
                };
                let dests = wanted.get(c).map(Vec::as_slice).unwrap_or_default();
                let Some((first, rest)) = dests.split_first() else {
                    return Ok(true);
                };
                let body = scan::entry_body(entry).map_err(|e| Error::from_io(&name, e))?;
                let (w, prefix) = write_file(&root.join(first), body, &name)?;
                if let Some(check) = elf.as_deref_mut() {
                    if w.size >= 4 {
                        for d in dests {
                            check.observe(&ImagePath::from(*d), &prefix);
                        }
                    }
                }
                for d in rest {
                    let p = root.join(d);
                    fs::hard_link(root.join(first), &p).map_err(|e| Error::io(&p, e))?;
                }
                written.insert(*c, w);
                Ok(true)
            },
        )?;
    }
    if let Some(c) = wanted.keys().find(|c| !written.contains_key(c)) {
        return Err(Error::invalid(
            format!("layer {}", c.layer),
            "layer ended before an entry it listed",
        ));
    }
    for (dest, i) in items {
        let p = root.join(dest);
        match i.kind {
            FileType::File => {
                fs::set_permissions(&p, fs::Permissions::from_mode(i.mode))
                    .map_err(|e| Error::io(&p, e))?;
                if let Some(t) = i.mtime {
                    crate::unpack::set_mtime(&p, t as i64)?;
                }
            }
            FileType::Symlink => {
                let link = i.link.as_deref().unwrap_or(Path::new("."));
                std::os::unix::fs::symlink(link, &p).map_err(|e| Error::io(&p, e))?;
                if let Some(t) = i.mtime {
                    crate::unpack::set_mtime(&p, t as i64)?;
                }
            }
            FileType::Dir => {}
        }
    }
    Ok(written)
}

/// Writes a new file from `body`, returning its hash, size and first bytes.
fn write_file(p: &Path, mut body: impl Read, layer: &str) -> Result<(Written, Vec<u8>)> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    let mut hasher = Sha256::new();
    let mut prefix = Vec::with_capacity(crate::elf::HEADER_LEN);
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(layer, e)),
        };
        let chunk = &buf[..n];
        if prefix.len() < crate::elf::HEADER_LEN {
            let take = (crate::elf::HEADER_LEN - prefix.len()).min(n);
            prefix.extend_from_slice(&chunk[..take]);
        }
        hasher.update(chunk);
        f.write_all(chunk).map_err(|e| Error::io(p, e))?;
        size += n as u64;
    }
    Ok((
        Written {
            sha256: hex::encode(hasher.finalize()),
            size,
        },
        prefix,
    ))
}

fn write_new(p: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    f.write_all(bytes).map_err(|e| Error::io(p, e))
}

/// Directory modes and mtimes, deepest first (a read-only directory is
/// made so once its content is in).
fn finish_dirs(items: &BTreeMap<PathBuf, Item>, root: &Path) -> Result<()> {
    for (dest, i) in items.iter().rev().filter(|(_, i)| i.kind == FileType::Dir) {
        let p = root.join(dest);
        fs::set_permissions(&p, fs::Permissions::from_mode(i.mode))
            .map_err(|e| Error::io(&p, e))?;
        if let Some(t) = i.mtime {
            crate::unpack::set_mtime(&p, t as i64)?;
        }
    }
    Ok(())
}

/// Flushes the staged tree to disk before it is moved into place, so a
/// crash after the rename cannot leave empty files behind a good name.
fn sync_fs(root: &Path) -> Result<()> {
    let d = fs::File::open(root).map_err(|e| Error::io(root, e))?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(Error::io(root, io::Error::last_os_error()));
    }
    Ok(())
}

fn records(
    items: &BTreeMap<PathBuf, Item>,
    written: &BTreeMap<ContentRef, Written>,
) -> Result<Vec<FileRecord>> {
    let mut out = Vec::with_capacity(items.len());
    for (dest, i) in items {
        let w = i.content.and_then(|c| written.get(&c));
        out.push(FileRecord {
            path: text(dest)?,
            kind: i.kind,
            size: w.map_or(0, |w| w.size),
            sha256: w.map(|w| w.sha256.clone()),
            mode: format!("{:04o}", i.mode),
            link: i.link.as_deref().map(text).transpose()?,
        });
    }
    // Byte order, as `LC_ALL=C sort` and SHA256SUMS.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn text(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(p.display().to_string(), "name is not UTF-8"))
}

/// `sha256sum` lines: `HEX  NAME`; a name with a backslash, newline or
/// carriage return is escaped and its line starts with `\`, as coreutils
/// writes and reads it.
fn sums_file(sums: &[(String, String)]) -> String {
    let mut s = String::new();
    for (path, hash) in sums {
        if path.contains(['\\', '\n', '\r']) {
            let esc = path
                .replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('\r', "\\r");
            s.push_str(&format!("\\{hash}  {esc}\n"));
        } else {
            s.push_str(&format!("{hash}  {path}\n"));
        }
    }
    s
}

/// The error of a failed `--check-elf`: every offender with what it is.
fn elf_failure(outcome: &GuardOutcome, arch: TargetArch) -> String {
    let list: Vec<String> = outcome
        .offenders
        .iter()
        .map(|o| format!("{}: {}", o.path, o.found))
        .collect();
    format!(
        "--check-elf {arch}: {} of {} ELF file(s) not built for {arch}, nothing was extracted: {}",
        outcome.offenders.len(),
        outcome.checked,
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(r("a/lib", "a/lib/x.so.1"), Path::new("x.so.1"));
        assert_eq!(r("a/bin", "a/lib/x"), Path::new("../lib/x"));
        assert_eq!(r("", "a/x"), Path::new("a/x"));
        assert_eq!(r("a/b", "a/b"), Path::new("."));
        assert_eq!(r("a/b/c", ""), Path::new("../../.."));
    }

    #[test]
    fn sums_lines_are_coreutils() {
        let s = sums_file(&[
            ("a b".into(), "00".into()),
            ("back\\slash".into(), "11".into()),
            ("new\nline".into(), "22".into()),
        ]);
        assert_eq!(s, "00  a b\n\\11  back\\\\slash\n\\22  new\\nline\n");
    }

    #[test]
    fn requested_paths() {
        assert_eq!(requested_path("/artifacts/").unwrap(), "/artifacts");
        assert_eq!(requested_path("/").unwrap(), "/");
        assert_eq!(requested_path("./a/./b").unwrap(), "/a/b");
        assert!(requested_path("/a/../etc").is_err());
    }
}
