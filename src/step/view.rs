//! [`ImageTree`] views for the guards and the alternatives: an image's
//! merged tree, a selection from one (the payload as it will land), and a
//! repository directory. File heads are read in one pass per layer and
//! cached, never file by file.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::elf::HEADER_LEN;
use crate::error::{Error, Result};
use crate::layer::select::Picks;
use crate::layer::{FileKind, MergedTree, TreeEntry};
use crate::transport::ImageSource;
use crate::tree::{ImagePath, ImageTree, MemTree, Node};

fn node_of(e: &TreeEntry, owner: Option<(u64, u64)>) -> Node {
    let (uid, gid) = owner.unwrap_or((e.uid, e.gid));
    Node {
        // A hard link's bytes are its target's; for the guards it is a file.
        kind: if e.kind == FileKind::HardLink {
            FileKind::File
        } else {
            e.kind
        },
        mode: e.mode,
        uid,
        gid,
        size: e.size,
        link: match e.kind {
            FileKind::Symlink => e.link.as_ref().map(|l| l.display().to_string()),
            _ => None,
        },
    }
}

/// An image's merged tree.
pub struct MergedImage<'a> {
    pub name: String,
    pub tree: &'a MergedTree,
    pub src: &'a dyn ImageSource,
    heads: Mutex<HashMap<ImagePath, Vec<u8>>>,
}

impl<'a> MergedImage<'a> {
    pub fn new(name: String, tree: &'a MergedTree, src: &'a dyn ImageSource) -> Self {
        MergedImage {
            name,
            tree,
            src,
            heads: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the first [`HEADER_LEN`] bytes of every regular file among
    /// `paths`, one pass per layer.
    pub fn prefetch(&self, paths: &[ImagePath]) -> Result<()> {
        let wanted: Vec<&ImagePath> = paths
            .iter()
            .filter(|p| self.tree.get(p).is_some_and(TreeEntry::is_regular))
            .collect();
        let heads = self.tree.read_files(self.src, &wanted, HEADER_LEN as u64)?;
        let mut cache = self
            .heads
            .lock()
            .map_err(|_| Error::invalid("cache", "poisoned"))?;
        for (p, h) in wanted.into_iter().zip(heads) {
            cache.insert(p.clone(), h);
        }
        Ok(())
    }

    /// Every path.
    pub fn all_paths(&self) -> Vec<ImagePath> {
        self.tree
            .iter()
            .filter(|e| !e.path.is_root())
            .map(|e| e.path.clone())
            .collect()
    }
}

impl ImageTree for MergedImage<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn node(&self, path: &ImagePath) -> Option<Node> {
        if path.is_root() {
            // A layer's `/` (or `./`) entry sets the root's metadata.
            return Some(
                self.tree
                    .root()
                    .map(|e| node_of(e, None))
                    .unwrap_or_else(|| Node::dir(0o755)),
            );
        }
        self.tree.get(path).map(|e| node_of(e, None))
    }

    fn paths(&self) -> Vec<ImagePath> {
        self.all_paths()
    }

    fn visit_files(
        &self,
        paths: &[ImagePath],
        visit: &mut dyn FnMut(usize, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let wanted: Vec<(usize, &ImagePath)> = paths.iter().enumerate().collect();
        visit_merged(self.tree, self.src, &wanted, visit).map_err(|e| e.in_input(self.name.clone()))
    }

    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>> {
        if len <= HEADER_LEN {
            if let Ok(cache) = self.heads.lock() {
                if let Some(h) = cache.get(path) {
                    return Ok(h[..len.min(h.len())].to_vec());
                }
            }
        }
        self.tree
            .read_file(self.src, path, len as u64)
            .map_err(|e| e.in_input(self.name.clone()))
    }
}

/// Streams whole regular files of a merged tree to `visit`, by index into
/// `wanted` ([`MergedTree::visit_contents`]: one partial pass per layer, each
/// body read once; a body two requested paths share is buffered so each
/// index gets its own reader).
pub fn visit_merged(
    tree: &MergedTree,
    src: &dyn ImageSource,
    wanted: &[(usize, &ImagePath)],
    visit: &mut dyn FnMut(usize, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let paths: Vec<&ImagePath> = wanted.iter().map(|(_, p)| *p).collect();
    tree.visit_contents(src, &paths, &mut |layer, idx, body| {
        if let [only] = idx {
            return visit(wanted[*only].0, body);
        }
        let mut buf = Vec::new();
        body.read_to_end(&mut buf)
            .map_err(|e| Error::from_io(layer, e))?;
        for &k in idx {
            visit(wanted[k].0, &mut buf.as_slice())?;
        }
        Ok(())
    })
}

/// What a selection puts in the new layer, at its destination paths.
pub struct Selected {
    pub name: String,
    nodes: std::collections::BTreeMap<ImagePath, Node>,
    heads: HashMap<ImagePath, Vec<u8>>,
    /// Destination -> path in the input, for whole-file reads.
    sources: HashMap<ImagePath, ImagePath>,
    // Shared with the step's plan, which owns the input: a selection is
    // read again (whole files, for the ld.so.cache) after planning.
    tree: Arc<MergedTree>,
    src: Arc<dyn ImageSource>,
}

impl Selected {
    /// Reads the heads of every selected regular file (one pass per source
    /// layer) so the ELF guard can judge the payload before it is written.
    pub fn new(
        name: String,
        picks: &Picks<'_>,
        tree: Arc<MergedTree>,
        src: Arc<dyn ImageSource>,
    ) -> Result<Self> {
        let mut nodes = std::collections::BTreeMap::new();
        let mut regular: Vec<(ImagePath, &ImagePath)> = Vec::new();
        for p in picks.values() {
            let dest = p.dest.clone();
            nodes.insert(dest.clone(), node_of(p.entry, p.owner));
            if p.entry.is_regular() {
                regular.push((dest, &p.entry.path));
            }
        }
        // The layer writer adds missing parent directories; so does the view.
        let dests: Vec<ImagePath> = nodes.keys().cloned().collect();
        for d in dests {
            let missing: Vec<ImagePath> = d
                .ancestors()
                .take_while(|p| !nodes.contains_key(p))
                .collect();
            for p in missing {
                nodes.insert(p, Node::dir(0o755));
            }
        }
        let from: Vec<&ImagePath> = regular.iter().map(|(_, s)| *s).collect();
        let heads_v = tree.read_files(src.as_ref(), &from, HEADER_LEN as u64)?;
        let sources = regular
            .iter()
            .map(|(d, s)| (d.clone(), (*s).clone()))
            .collect();
        let heads = regular.into_iter().map(|(d, _)| d).zip(heads_v).collect();
        Ok(Selected {
            name,
            nodes,
            heads,
            sources,
            tree,
            src,
        })
    }

    pub fn regular_paths(&self) -> Vec<ImagePath> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.kind == FileKind::File)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl ImageTree for Selected {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn visit_files(
        &self,
        paths: &[ImagePath],
        visit: &mut dyn FnMut(usize, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let mut wanted = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let s = self
                .sources
                .get(p)
                .ok_or_else(|| Error::not_found(format!("regular file {p}"), self.name.clone()))?;
            wanted.push((i, s));
        }
        visit_merged(&self.tree, self.src.as_ref(), &wanted, visit)
    }

    fn node(&self, path: &ImagePath) -> Option<Node> {
        self.nodes.get(path).cloned()
    }

    fn paths(&self) -> Vec<ImagePath> {
        self.nodes.keys().cloned().collect()
    }

    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>> {
        self.heads
            .get(path)
            .map(|h| h[..len.min(h.len())].to_vec())
            .ok_or_else(|| Error::not_found(format!("regular file {path}"), self.name.clone()))
    }
}

/// A repository directory placed at `dest`, for the guards (small trees:
/// scripts, config files).
pub fn dir_tree(dir: &Path, dest: &ImagePath, owner: Option<(u64, u64)>) -> Result<MemTree> {
    use std::os::unix::fs::MetadataExt;
    let mut t = MemTree::new(format!("{} -> {dest}", dir.display()));
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(|e| Error::io(dir, e.into()))?;
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
        let path = dest.join(rel);
        let md = e
            .path()
            .symlink_metadata()
            .map_err(|err| Error::io(e.path(), err))?;
        let (uid, gid) = owner.unwrap_or((u64::from(md.uid()), u64::from(md.gid())));
        let mode = md.mode() & 0o7777;
        let ft = md.file_type();
        let (node, content) = if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).map_err(|err| Error::io(e.path(), err))?;
            (Node::symlink(&target.display().to_string()), Vec::new())
        } else if ft.is_dir() {
            (Node::dir(mode), Vec::new())
        } else {
            let mut f = std::fs::File::open(e.path()).map_err(|err| Error::io(e.path(), err))?;
            // A library is read whole: the ld.so.cache writer needs its
            // dynamic section (repository trees are small).
            let name = e.file_name().to_string_lossy();
            let limit = if name.contains(".so") {
                u64::MAX
            } else {
                HEADER_LEN as u64
            };
            let mut head = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut f, limit), &mut head)
                .map_err(|err| Error::io(e.path(), err))?;
            (Node::file(mode, md.len()), head)
        };
        t.insert(path, Node { uid, gid, ..node }, content);
    }
    Ok(t)
}
