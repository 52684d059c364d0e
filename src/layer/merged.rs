//! The merged root filesystem of an image, metadata only.
//!
//! Layers are applied bottom to top as the OCI image spec says: a whiteout
//! `.wh.NAME` deletes `NAME` (and its subtree) from lower layers, an opaque
//! marker `.wh..wh..opq` hides everything lower layers had below its
//! directory; neither touches entries of its own layer, whatever their order
//! in the tar. Nothing is unpacked: each entry remembers which layer (and
//! which position in that layer's tar) holds its content, so a later pass can
//! stream exactly the bytes it needs.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use super::entry::{ContentRef, FileKind, Meta};
use super::path::{
    descendants_range, key_path, link_components as components, sort_key, ImagePath,
    MAX_ENTRY_LINK_HOPS, MAX_SYMLINK_HOPS,
};
use super::scan::{self, Numbered, Record};
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::transport::ImageSource;

/// One surviving entry of the merged tree: its metadata as the layer's tar
/// header gave it, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: ImagePath,
    /// Kind, mode, owner, mtime, size (for hard links: the size of the
    /// linked file), link target (hard links: normalised), xattrs, device.
    pub meta: Meta,
    /// The layer whose entry this is.
    pub layer: u32,
    /// Where the bytes are, for regular files and hard links. Hard links
    /// share their target's reference: equal references are one inode.
    pub content: Option<ContentRef>,
}

/// An entry reads as its metadata (`e.kind`, `e.mode`): one type holds
/// those fields, every entry type embeds it.
impl std::ops::Deref for TreeEntry {
    type Target = Meta;
    fn deref(&self) -> &Meta {
        &self.meta
    }
}

impl std::ops::DerefMut for TreeEntry {
    fn deref_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }
}

impl TreeEntry {
    fn from_meta(path: PathBuf, m: Meta, layer: u32, content: Option<ContentRef>) -> Self {
        TreeEntry {
            path: ImagePath::from_normalized(path),
            meta: m,
            layer,
            content,
        }
    }

    /// Whether this entry has bytes (a regular file or a hard link to one).
    pub fn is_regular(&self) -> bool {
        matches!(self.kind, FileKind::File | FileKind::HardLink)
    }
}

/// What each source layer contributed, for whole-layer reuse.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub descriptor: Descriptor,
    pub diff_id: String,
    /// Distinct non-root paths the layer writes.
    pub entries: u64,
    /// Whiteouts and opaque markers in the layer.
    pub whiteouts: u64,
    /// Newest mtime in the layer.
    pub max_mtime: u64,
    /// Entries written through a symlinked parent (`lib/x` over a lower
    /// `lib -> usr/lib` is `usr/lib/x`): the blob alone does not say where
    /// they land, so such a layer is never reused whole.
    pub redirected: u64,
}

/// The merged view of an image's layers.
#[derive(Debug, Clone, Default)]
pub struct MergedTree {
    entries: BTreeMap<Vec<u8>, TreeEntry>,
    layers: Vec<LayerInfo>,
    /// Metadata of the root directory, when a layer has a `/`, `.` or `./`
    /// entry (the topmost wins).
    root: Option<TreeEntry>,
}

impl MergedTree {
    /// Streams each layer once (several at a time) and applies them in
    /// order. Every blob is verified to its end, and every layer's
    /// uncompressed content against its `diff_id` (so the `diff_id`s a tree
    /// carries, and whatever reuses them, are checked ones).
    pub fn load(src: &dyn ImageSource, img: &ResolvedImage) -> Result<MergedTree> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::load_with_threads(src, img, threads)
    }

    /// [`MergedTree::load`] with at most `threads` layers read at once.
    pub fn load_with_threads(
        src: &dyn ImageSource,
        img: &ResolvedImage,
        threads: usize,
    ) -> Result<MergedTree> {
        let layers = img.layers();
        let scanned = scan_all(src, layers, img.diff_ids(), threads.max(1))?;
        let mut tree = MergedTree::default();
        for (i, (desc, records)) in layers.iter().zip(scanned).enumerate() {
            let diff_id = img.diff_ids().get(i).cloned().unwrap_or_default();
            tree.apply_layer(i as u32, desc, diff_id, records)?;
        }
        Ok(tree)
    }

    // Loading through the cache is beside the cache
    // (`treecache.rs`, `MergedTree::load_cached`): the merged view knows no
    // cache.

    pub(crate) fn from_parts(
        entries: BTreeMap<Vec<u8>, TreeEntry>,
        layers: Vec<LayerInfo>,
        root: Option<TreeEntry>,
    ) -> MergedTree {
        MergedTree {
            entries,
            layers,
            root,
        }
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(
        &self,
    ) -> (
        &BTreeMap<Vec<u8>, TreeEntry>,
        &[LayerInfo],
        Option<&TreeEntry>,
    ) {
        (&self.entries, &self.layers, self.root.as_ref())
    }

    /// Applies one layer's records on top of the tree.
    pub(crate) fn apply_layer(
        &mut self,
        layer: u32,
        desc: &Descriptor,
        diff_id: String,
        records: Vec<Numbered>,
    ) -> Result<()> {
        let name = desc.digest().to_string();
        let mut info = LayerInfo {
            descriptor: desc.clone(),
            diff_id,
            entries: 0,
            whiteouts: 0,
            max_mtime: 0,
            redirected: 0,
        };
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        // The last parent resolved (as named, as resolved): entries of one
        // directory come in a row. Valid until the tree's shape changes
        // (anything but a directory over a directory).
        let mut last_parent: Option<(PathBuf, PathBuf)> = None;
        for n in records {
            match n.record {
                Record::Whiteout(p) => {
                    info.whiteouts += 1;
                    let p = self.resolve_entry_parent(&p, &name)?;
                    let k = sort_key(&p);
                    if self.entries.get(&k).is_some_and(|e| e.layer < layer) {
                        self.entries.remove(&k);
                    }
                    self.remove_below(&k, layer);
                    last_parent = None;
                }
                Record::Opaque(p) => {
                    info.whiteouts += 1;
                    // The marker's parent is the directory made opaque.
                    let p = self.resolve_apply(&p, &name, &p)?;
                    let k = sort_key(&p);
                    self.remove_below(&k, layer);
                    last_parent = None;
                }
                Record::Entry { path, meta } => {
                    info.max_mtime = info.max_mtime.max(meta.mtime);
                    if path.as_os_str().is_empty() {
                        if meta.kind == FileKind::Dir {
                            self.root = Some(TreeEntry::from_meta(path, meta, layer, None));
                        }
                        continue;
                    }
                    let named_parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
                    let parent = match &last_parent {
                        Some((named, resolved)) if *named == named_parent => resolved.clone(),
                        _ => {
                            let resolved = self.resolve_apply(&named_parent, &name, &path)?;
                            self.check_parents(&resolved.join("x"), &name)?;
                            last_parent = Some((named_parent.clone(), resolved.clone()));
                            resolved
                        }
                    };
                    if parent != named_parent {
                        // Written through a symlinked parent: the blob only
                        // means this over this base, so it is never reused.
                        info.redirected += 1;
                    }
                    let path = match path.file_name() {
                        Some(f) => parent.join(f),
                        None => path,
                    };
                    let k = sort_key(&path);
                    if seen.insert(k.clone()) {
                        info.entries += 1;
                    }
                    let content = match meta.kind {
                        FileKind::File => Some(ContentRef {
                            layer,
                            ordinal: n.ordinal,
                        }),
                        FileKind::HardLink => {
                            let named = meta.link.clone().unwrap_or_default();
                            let target = self.resolve_entry_parent(&named, &name)?;
                            let t = self
                                .entries
                                .get(&sort_key(&target))
                                .filter(|t| t.is_regular());
                            let Some(t) = t else {
                                return Err(Error::UnsafePath {
                                    layer: name,
                                    entry: path.display().to_string(),
                                    reason: format!(
                                        "hard link target {} is not a regular file in this or a lower layer",
                                        named.display()
                                    ),
                                });
                            };
                            // One inode: the link takes its target's mode,
                            // owner, times and xattrs, whatever its own
                            // header says (unpackers, umoci included, never
                            // chmod through a hard link).
                            let mut e = TreeEntry::from_meta(path, meta, layer, t.content);
                            e.size = t.size;
                            e.mode = t.mode;
                            e.uid = t.uid;
                            e.gid = t.gid;
                            e.mtime = t.mtime;
                            e.xattrs = t.xattrs.clone();
                            e.link = Some(target);
                            last_parent = None;
                            self.insert(k, e, layer);
                            continue;
                        }
                        _ => None,
                    };
                    let was_dir = self.entries.get(&k).map(|e| e.kind) == Some(FileKind::Dir);
                    if meta.kind != FileKind::Dir || !was_dir {
                        // It may replace a directory (or a symlink) some
                        // later entry's parent resolution relied on.
                        last_parent = None;
                    }
                    let e = TreeEntry::from_meta(path, meta, layer, content);
                    self.insert(k, e, layer);
                }
            }
        }
        self.layers.push(info);
        Ok(())
    }

    fn insert(&mut self, k: Vec<u8>, e: TreeEntry, layer: u32) {
        if e.kind != FileKind::Dir {
            // A non-directory replaces a lower directory and its subtree.
            self.remove_below(&k, layer);
        }
        self.entries.insert(k, e);
    }

    /// Removes everything below `k` that lower layers wrote.
    fn remove_below(&mut self, k: &[u8], layer: u32) {
        let doomed: Vec<Vec<u8>> = self
            .entries
            .range(descendants_range(k))
            .filter(|(_, e)| e.layer < layer)
            .map(|(k, _)| k.clone())
            .collect();
        for d in doomed {
            self.entries.remove(&d);
        }
    }

    /// Called with a path whose parents were resolved: a parent that is a
    /// file is replaced by the implied directory; a symlink cannot be left
    /// there (refused, should one be).
    fn check_parents(&mut self, path: &Path, layer: &str) -> Result<()> {
        let mut cur = PathBuf::new();
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        for c in parent.components() {
            cur.push(c);
            let k = sort_key(&cur);
            match self.entries.get(&k).map(|e| e.kind) {
                Some(FileKind::Dir) | None => {}
                Some(FileKind::Symlink) => {
                    return Err(Error::UnsafePath {
                        layer: layer.to_string(),
                        entry: path.display().to_string(),
                        reason: format!("parent {} is a symlink", cur.display()),
                    })
                }
                Some(_) => {
                    self.entries.remove(&k);
                }
            }
        }
        Ok(())
    }

    /// Resolves `path` (every component followed) against the tree built so
    /// far, as a layer entry's parent is resolved when it is applied:
    /// [`MergedTree::resolve_symlinks`] with containerd's and umoci's bound of
    /// [`MAX_ENTRY_LINK_HOPS`] links. The error names the layer and the entry.
    fn resolve_apply(&self, path: &Path, layer: &str, entry: &Path) -> Result<PathBuf> {
        self.resolve_within(path, MAX_ENTRY_LINK_HOPS)
            .map_err(|reason| Error::UnsafePath {
                layer: layer.to_string(),
                entry: entry.display().to_string(),
                reason: format!("resolving its parent: {reason}"),
            })
    }

    /// Where an entry named `path` lands: its parent resolved through the
    /// symlinks of the tree so far (inside the root), its own name literal,
    /// as containerd (`fs.RootPath` on the parent) and umoci (securejoin)
    /// place it.
    fn resolve_entry_parent(&self, path: &Path, layer: &str) -> Result<PathBuf> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(path.to_path_buf());
        };
        Ok(self.resolve_apply(parent, layer, path)?.join(name))
    }

    /// The entry at `path`, without following symlinks.
    pub fn get(&self, path: &ImagePath) -> Option<&TreeEntry> {
        self.entries.get(&sort_key(path.rel()))
    }

    /// Every entry, sorted in canonical order (parents first).
    pub fn iter(&self) -> impl Iterator<Item = &TreeEntry> {
        self.entries.values()
    }

    /// Entries strictly below `path`, in canonical order.
    pub fn descendants(&self, path: &ImagePath) -> impl Iterator<Item = &TreeEntry> {
        let k = sort_key(path.rel());
        self.entries.range(descendants_range(&k)).map(|(_, e)| e)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The source layers, bottom first.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// The root directory's own metadata, if a layer recorded it.
    pub fn root(&self) -> Option<&TreeEntry> {
        self.root.as_ref()
    }

    /// Follows symlinks inside the image (absolute targets from the image
    /// root, relative ones from the link's directory, `..` clamped at the
    /// root as in a chroot), including symlinks in intermediate directories.
    /// Components that do not exist are kept as they are, so the result of
    /// a dangling chain is the path it dangles at; check it with
    /// [`MergedTree::get`]. Fails after [`MAX_SYMLINK_HOPS`] links.
    pub fn resolve_symlinks(&self, path: &ImagePath) -> Result<ImagePath> {
        self.resolve_within(path.rel(), MAX_SYMLINK_HOPS)
            .map(ImagePath::from_normalized)
            .map_err(|reason| Error::invalid(path.to_string(), reason))
    }

    /// Where a symlink with `target`, sitting in directory `dir`, leads:
    /// [`MergedTree::resolve_symlinks`] on the raw joined path, so a `..`
    /// after a symlinked directory climbs from where that link leads (as
    /// the kernel does), not lexically.
    pub fn resolve_link(&self, dir: &ImagePath, target: &Path) -> Result<ImagePath> {
        let raw = dir.rel().join(target);
        self.resolve_within(&raw, MAX_SYMLINK_HOPS)
            .map(ImagePath::from_normalized)
            .map_err(|reason| Error::invalid(format!("{dir} -> {}", target.display()), reason))
    }

    /// [`MergedTree::resolve_symlinks`] with a bound on links followed.
    /// Purely lexical over the tree: it never leaves the image's root.
    fn resolve_within(&self, path: &Path, max_hops: usize) -> std::result::Result<PathBuf, String> {
        let mut todo: VecDeque<std::ffi::OsString> = components(path).into();
        let mut cur = PathBuf::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let cand = cur.join(&c);
            match self.entries.get(&sort_key(&cand)) {
                Some(e) if e.kind == FileKind::Symlink => {
                    hops += 1;
                    if hops > max_hops {
                        return Err(format!("more than {max_hops} symlinks (a loop?)"));
                    }
                    let target = e.link.clone().unwrap_or_default();
                    if target.is_absolute() {
                        cur = PathBuf::new();
                    }
                    for t in components(&target).into_iter().rev() {
                        todo.push_front(t);
                    }
                }
                _ => cur = cand,
            }
        }
        Ok(cur)
    }

    /// Reads a small regular file (up to `limit` bytes), following symlinks.
    /// Re-streams the layer holding it up to the entry.
    pub fn read_file(
        &self,
        src: &dyn ImageSource,
        path: &ImagePath,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let mut v = self.read_files(src, &[path], limit)?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Reads several small files with one pass per layer involved, in the
    /// order of `paths`. Each is cut at `limit` bytes. (The blobs were
    /// verified end to end when the tree was loaded; these partial re-reads
    /// stop at the last entry they need.)
    pub fn read_files(
        &self,
        src: &dyn ImageSource,
        paths: &[&ImagePath],
        limit: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = vec![Vec::new(); paths.len()];
        self.visit_contents(src, paths, &mut |layer, idx, body| {
            let mut buf = Vec::new();
            body.take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| Error::from_io(layer, e))?;
            for &i in idx {
                out[i] = buf.clone();
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams the regular files at `paths` (symlinks followed) to `visit`,
    /// one partial pass per layer involved, each body read once: `visit`
    /// gets the layer's digest (for errors), the indexes in `paths` that
    /// share this body, and the body. Nothing is buffered here.
    pub fn visit_contents(
        &self,
        src: &dyn ImageSource,
        paths: &[&ImagePath],
        visit: &mut ContentVisitor<'_>,
    ) -> Result<()> {
        let mut wanted: BTreeMap<ContentRef, Vec<usize>> = BTreeMap::new();
        for (i, p) in paths.iter().enumerate() {
            let resolved = self.resolve_symlinks(p)?;
            let e = self
                .get(&resolved)
                .ok_or_else(|| Error::not_found(p.to_string(), "the image's merged tree"))?;
            let c = e
                .content
                .filter(|_| e.is_regular())
                .ok_or_else(|| Error::invalid(resolved.to_string(), "not a regular file"))?;
            wanted.entry(c).or_default().push(i);
        }
        let mut by_layer: BTreeMap<u32, Vec<(u64, Vec<usize>)>> = BTreeMap::new();
        for (c, idx) in wanted {
            by_layer.entry(c.layer).or_default().push((c.ordinal, idx));
        }
        for (layer, list) in by_layer {
            let desc = &self
                .layers
                .get(layer as usize)
                .ok_or_else(|| Error::invalid("merged tree", format!("no layer {layer}")))?
                .descriptor;
            let name = desc.digest().to_string();
            let mut it = list.into_iter().peekable();
            scan::walk_layer(src, desc, scan::Check::Partial, |ordinal, entry| {
                let Some((want, _)) = it.peek() else {
                    return Ok(false);
                };
                if ordinal != *want {
                    return Ok(true);
                }
                if let Some((_, idx)) = it.next() {
                    let mut body = scan::entry_body(entry).map_err(|e| Error::from_io(&name, e))?;
                    visit(&name, &idx, &mut body)?;
                }
                Ok(it.peek().is_some())
            })?;
            if it.peek().is_some() {
                return Err(Error::invalid(
                    &name,
                    "layer ended before an entry it listed",
                ));
            }
        }
        Ok(())
    }

    /// The path of a key (for modules that walk keys).
    pub(crate) fn key_path(k: &[u8]) -> ImagePath {
        ImagePath::from_normalized(key_path(k))
    }
}

/// What [`MergedTree::visit_contents`] calls per body: the layer's digest,
/// the indexes of the paths that share the body, and the body.
pub type ContentVisitor<'a> = dyn FnMut(&str, &[usize], &mut dyn Read) -> Result<()> + 'a;

/// Reads every layer's records with up to `threads` layers in flight.
fn scan_all(
    src: &dyn ImageSource,
    layers: &[Descriptor],
    diff_ids: &[String],
    threads: usize,
) -> Result<Vec<Vec<Numbered>>> {
    let slots: Vec<Mutex<Option<Result<Vec<Numbered>>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= layers.len() {
            break;
        }
        let r = match diff_ids.get(i) {
            Some(id) => scan::scan_layer(src, &layers[i], id),
            None => Err(Error::invalid(
                layers[i].digest().to_string(),
                "the config's rootfs.diff_ids has no entry for this layer",
            )),
        };
        let failed = r.is_err();
        if let Ok(mut s) = slots[i].lock() {
            *s = Some(r);
        }
        if failed {
            // Stop handing out layers; the first error is reported.
            next.store(layers.len(), Ordering::SeqCst);
        }
    };
    let n = threads.min(layers.len()).max(1);
    std::thread::scope(|s| {
        for _ in 1..n {
            s.spawn(work);
        }
        work();
    });
    let mut out = Vec::with_capacity(layers.len());
    for (i, slot) in slots.into_iter().enumerate() {
        match slot.into_inner().ok().flatten() {
            Some(r) => out.push(r?),
            None => {
                return Err(Error::invalid(
                    layers[i].digest().to_string(),
                    "layer was not read (an earlier layer failed)",
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::sha256;
    use oci_spec::image::MediaType;

    /// A tiny description of a tar entry for tests.
    pub fn file(path: &str, body: &[u8]) -> (String, Meta) {
        (
            path.into(),
            Meta {
                kind: FileKind::File,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 100,
                size: body.len() as u64,
                link: None,
                xattrs: BTreeMap::new(),
                dev: None,
            },
        )
    }

    pub(crate) fn meta(kind: FileKind, link: Option<&str>) -> Meta {
        Meta {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 100,
            size: 0,
            link: link.map(PathBuf::from),
            xattrs: BTreeMap::new(),
            dev: None,
        }
    }

    pub(crate) enum R {
        E(&'static str, Meta),
        W(&'static str),
        O(&'static str),
    }

    pub(crate) fn apply(tree: &mut MergedTree, layer: u32, recs: Vec<R>) -> Result<()> {
        let desc = Descriptor::new(MediaType::ImageLayer, 0, sha256(&[layer as u8]));
        let records = recs
            .into_iter()
            .enumerate()
            .map(|(i, r)| Numbered {
                ordinal: i as u64,
                record: match r {
                    R::E(p, m) => Record::Entry {
                        path: p.into(),
                        meta: m,
                    },
                    R::W(p) => Record::Whiteout(p.into()),
                    R::O(p) => Record::Opaque(p.into()),
                },
            })
            .collect();
        tree.apply_layer(layer, &desc, String::new(), records)
    }

    /// A one-layer tree from (path, kind, link) triples; files get their
    /// path as content size.
    pub fn tree_of(entries: &[(&str, FileKind, Option<&str>)]) -> MergedTree {
        let mut t = MergedTree::default();
        let recs = entries
            .iter()
            .map(|(p, k, l)| {
                let mut m = meta(*k, *l);
                if *k == FileKind::File {
                    m.size = p.len() as u64;
                }
                R::E(Box::leak(p.to_string().into_boxed_str()), m)
            })
            .collect();
        apply(&mut t, 0, recs).unwrap();
        t
    }

    fn paths(t: &MergedTree) -> Vec<String> {
        t.iter()
            .map(|e| e.path.rel().display().to_string())
            .collect()
    }

    pub(crate) fn dir() -> Meta {
        meta(FileKind::Dir, None)
    }

    #[test]
    fn whiteouts_and_opaque_hide_only_lower_layers() {
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("a", dir()),
                R::E("a/x", file("", b"1").1),
                R::E("a/sub", dir()),
                R::E("a/sub/y", file("", b"2").1),
                R::E("b", dir()),
                R::E("b/old", file("", b"3").1),
                R::E("c", file("", b"4").1),
            ],
        )
        .unwrap();
        apply(
            &mut t,
            1,
            vec![
                // New entry first, opaque marker after it: the new one stays.
                R::E("b/new", file("", b"5").1),
                R::O("b"),
                R::W("a/sub"),
                // Same-layer entry then whiteout of the same name: kept.
                R::E("d", file("", b"6").1),
                R::W("d"),
                R::W("c"),
            ],
        )
        .unwrap();
        assert_eq!(paths(&t), ["a", "a/x", "b", "b/new", "d"]);
        assert_eq!(t.layers()[1].whiteouts, 4);
        assert_eq!(t.layers()[0].entries, 7);
    }

    #[test]
    fn file_replaces_dir_and_dir_over_dir_merges() {
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("a", dir()),
                R::E("a/x", file("", b"1").1),
                R::E("f", file("", b"").1),
            ],
        )
        .unwrap();
        let mut d2 = dir();
        d2.mode = 0o700;
        apply(
            &mut t,
            1,
            vec![
                R::E("a", d2),
                R::E("f", dir()),
                R::E("f/inner", file("", b"x").1),
            ],
        )
        .unwrap();
        assert_eq!(paths(&t), ["a", "a/x", "f", "f/inner"]);
        assert_eq!(t.get(&"/a".into()).unwrap().mode, 0o700);
        apply(&mut t, 2, vec![R::E("a", file("", b"now a file").1)]).unwrap();
        assert_eq!(paths(&t), ["a", "f", "f/inner"]);
    }

    #[test]
    fn hard_links_share_content_even_across_layers() {
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("bin", dir()),
                R::E("bin/gcc", file("", b"elf!").1),
                R::E("bin/cc", meta(FileKind::HardLink, Some("bin/gcc"))),
            ],
        )
        .unwrap();
        // The original name is replaced; the link keeps the old inode.
        apply(
            &mut t,
            1,
            vec![
                R::E("bin/gcc", file("", b"new").1),
                R::E("bin/c2", meta(FileKind::HardLink, Some("bin/cc"))),
            ],
        )
        .unwrap();
        let cc = t.get(&"bin/cc".into()).unwrap();
        let c2 = t.get(&"bin/c2".into()).unwrap();
        let gcc = t.get(&"bin/gcc".into()).unwrap();
        assert_eq!(
            cc.content,
            Some(ContentRef {
                layer: 0,
                ordinal: 1
            })
        );
        assert_eq!(c2.content, cc.content);
        assert_eq!(c2.size, 4);
        // The links' headers say 0755; the inode (bin/gcc's) is 0644.
        assert_eq!((cc.mode, c2.mode), (0o644, 0o644));
        assert_eq!(
            gcc.content,
            Some(ContentRef {
                layer: 1,
                ordinal: 0
            })
        );
        let err = apply(
            &mut t,
            2,
            vec![R::E("x", meta(FileKind::HardLink, Some("nope")))],
        );
        assert!(err.is_err());
    }

    #[test]
    fn symlinked_parents_are_resolved_inside_the_root() {
        // A merged-/usr base: `lib -> usr/lib`, `bin -> /usr/bin`, plus links
        // pointing out of the root, which stay inside it (as containerd's
        // fs.RootPath and umoci's securejoin read them).
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("usr", dir()),
                R::E("usr/lib", dir()),
                R::E("usr/lib/old", file("", b"o").1),
                R::E("lib", meta(FileKind::Symlink, Some("usr/lib"))),
                R::E("bin", meta(FileKind::Symlink, Some("/usr/bin"))),
                R::E("l", meta(FileKind::Symlink, Some("/etc"))),
                R::E("up", meta(FileKind::Symlink, Some("../../.."))),
                R::E("loop", meta(FileKind::Symlink, Some("loop/x"))),
            ],
        )
        .unwrap();
        apply(
            &mut t,
            1,
            vec![
                R::E("lib/x", file("", b"x").1),
                R::E("lib/y", file("", b"y").1),
                R::E("bin/sh", file("", b"sh").1),
                R::E("l/passwd", file("", b"p").1),
                R::E("up/escaped", file("", b"e").1),
                R::E("lib/hl", meta(FileKind::HardLink, Some("lib/x"))),
                R::W("lib/old"),
            ],
        )
        .unwrap();
        assert_eq!(
            paths(&t),
            [
                "bin",
                "escaped",
                "etc/passwd",
                "l",
                "lib",
                "loop",
                "up",
                "usr",
                "usr/bin/sh",
                "usr/lib",
                "usr/lib/hl",
                "usr/lib/x",
                "usr/lib/y"
            ]
        );
        let hl = t.get(&"usr/lib/hl".into()).unwrap();
        assert_eq!(hl.link.as_deref(), Some(Path::new("usr/lib/x")));
        assert_eq!(hl.content, t.get(&"usr/lib/x".into()).unwrap().content);
        assert_eq!(t.layers()[1].redirected, 6);
        // A loop is an error naming the layer and the entry.
        let err = apply(&mut t, 2, vec![R::E("loop/f", file("", b"").1)]).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("255"), "{err}");
        // A directory entry replaces the symlink: later entries go under it.
        apply(
            &mut t,
            3,
            vec![R::E("lib", dir()), R::E("lib/z", file("", b"z").1)],
        )
        .unwrap();
        assert!(t.get(&"lib/z".into()).is_some());
        assert_eq!(t.layers().last().unwrap().redirected, 0);
    }

    #[test]
    fn resolves_symlink_chains() {
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("usr", dir()),
                R::E("usr/bin", dir()),
                R::E(
                    "usr/bin/cc",
                    meta(FileKind::Symlink, Some("/etc/alternatives/cc")),
                ),
                R::E("etc", dir()),
                R::E("etc/alternatives", dir()),
                R::E(
                    "etc/alternatives/cc",
                    meta(FileKind::Symlink, Some("../../opt/gcc/bin/gcc")),
                ),
                R::E("opt", dir()),
                R::E("opt/gcc", dir()),
                R::E("opt/gcc/bin", dir()),
                R::E("opt/gcc/bin/gcc", file("", b"x").1),
                R::E("lib", meta(FileKind::Symlink, Some("usr/lib"))),
                R::E("loop1", meta(FileKind::Symlink, Some("loop2"))),
                R::E("loop2", meta(FileKind::Symlink, Some("/loop1"))),
                R::E("up", meta(FileKind::Symlink, Some("../../../../opt"))),
            ],
        )
        .unwrap();
        assert_eq!(
            t.resolve_symlinks(&"/usr/bin/cc".into()).unwrap(),
            "/opt/gcc/bin/gcc"
        );
        assert_eq!(
            t.resolve_symlinks(&"/lib/x/y.so".into()).unwrap(),
            "/usr/lib/x/y.so"
        );
        assert_eq!(
            t.resolve_symlinks(&"up/gcc/bin/gcc".into()).unwrap(),
            "/opt/gcc/bin/gcc"
        );
        assert!(t.resolve_symlinks(&"/loop1".into()).is_err());
        // A link target's `..` after a symlinked directory climbs from where
        // that directory really is (`lib` is `usr/lib`), not lexically.
        assert_eq!(
            t.resolve_link(&ImagePath::root(), Path::new("lib/../bin/cc"))
                .unwrap(),
            "/opt/gcc/bin/gcc"
        );
        assert_eq!(
            t.resolve_link(&"/usr/bin".into(), Path::new("../../../../../etc"))
                .unwrap(),
            "/etc"
        );
    }
}
