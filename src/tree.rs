//! A read-only view of an image's merged filesystem, as the guards and the
//! alternatives writer need it: look up a path, list, follow symlinks
//! *inside the image* (never on the host), read a file's first bytes.
//!
//! The layer engine's merged tree implements it for real images;
//! [`MemTree`] is an in-memory one (tests, generated entries) and
//! [`Stack`] puts trees on top of each other, the way the next layers of
//! an image will.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

use crate::layer::path::MAX_SYMLINK_HOPS;
/// Paths in this view are the layer engine's own type.
pub use crate::layer::ImagePath;

/// The kind of an entry: the layer engine's own type, so a merged tree and
/// this view never disagree on what an entry is.
pub use crate::layer::FileKind;

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Symlink target as stored, or the absolute path a hard link names.
    pub link: Option<String>,
}

impl Node {
    pub fn dir(mode: u32) -> Node {
        Node {
            kind: FileKind::Dir,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            link: None,
        }
    }

    pub fn file(mode: u32, size: u64) -> Node {
        Node {
            kind: FileKind::File,
            mode,
            uid: 0,
            gid: 0,
            size,
            link: None,
        }
    }

    pub fn symlink(target: &str) -> Node {
        Node {
            kind: FileKind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: 0,
            link: Some(target.to_string()),
        }
    }
}

/// Where a path leads after following every symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The final, symlink-free path.
    pub path: ImagePath,
    pub node: Node,
    /// Every link followed, as `(link path, target as stored)`.
    pub chain: Vec<(ImagePath, String)>,
}

/// Why a path does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// `missing` does not exist (after following `chain`).
    Missing {
        missing: ImagePath,
        chain: Vec<(ImagePath, String)>,
    },
    /// A component that must be a directory is not one.
    NotDir { path: ImagePath },
    /// More than [`MAX_SYMLINK_HOPS`] links.
    Loop { chain: Vec<(ImagePath, String)> },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Missing { missing, chain } => {
                write!(f, "{missing} does not exist")?;
                if !chain.is_empty() {
                    write!(f, " (via {})", format_chain(chain))?;
                }
                Ok(())
            }
            ResolveError::NotDir { path } => write!(f, "{path} is not a directory"),
            ResolveError::Loop { chain } => {
                write!(f, "symlink loop: {}", format_chain(chain))
            }
        }
    }
}

/// `a -> b -> c` for messages.
pub fn format_chain(chain: &[(ImagePath, String)]) -> String {
    let mut s = String::new();
    for (i, (link, target)) in chain.iter().enumerate() {
        if i == 0 {
            s.push_str(&link.to_string());
        }
        s.push_str(" -> ");
        s.push_str(target);
    }
    s
}

/// Read access to a merged image filesystem, by [`ImagePath`].
pub trait ImageTree {
    /// For messages (a reference or a description).
    fn name(&self) -> String;
    /// The entry at `path`, without following a final symlink.
    fn node(&self, path: &ImagePath) -> Option<Node>;
    /// Every path (the root excepted), in [`ImagePath`] order.
    fn paths(&self) -> Vec<ImagePath>;
    /// The first `len` bytes of a regular file (or of what a hard link
    /// names).
    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>>;

    /// The names directly below `dir` (default: a scan of [`paths`]).
    ///
    /// [`paths`]: ImageTree::paths
    fn children(&self, dir: &ImagePath) -> Vec<String> {
        let depth = dir.depth() + 1;
        self.paths()
            .into_iter()
            .filter(|p| p.depth() == depth && p.starts_with(dir))
            .filter_map(|p| p.file_name().map(str::to_string))
            .collect()
    }

    /// Streams the whole content of each regular file of `paths`
    /// (symlink-free) to `visit(index, body)`, in any order. Trees over
    /// image layers override it to read each layer once; this default
    /// reads through [`read_prefix`].
    ///
    /// [`read_prefix`]: ImageTree::read_prefix
    fn visit_files(
        &self,
        paths: &[ImagePath],
        visit: &mut dyn FnMut(usize, &mut dyn std::io::Read) -> Result<()>,
    ) -> Result<()> {
        for (i, p) in paths.iter().enumerate() {
            let b = self.read_prefix(p, usize::MAX)?;
            visit(i, &mut b.as_slice())?;
        }
        Ok(())
    }

    /// Follows symlinks inside the image, like `realpath` in a chroot: an
    /// absolute target restarts at the image root, `..` stops at the root.
    fn resolve(&self, path: &ImagePath) -> std::result::Result<Resolved, ResolveError> {
        resolve_in(self, path)
    }
}

fn resolve_in<T: ImageTree + ?Sized>(
    tree: &T,
    path: &ImagePath,
) -> std::result::Result<Resolved, ResolveError> {
    let mut chain: Vec<(ImagePath, String)> = Vec::new();
    // Components still to walk, in reverse order (a stack).
    let mut todo: Vec<String> = path
        .components()
        .rev()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let mut done = ImagePath::root();
    let mut node = Node::dir(0o755);
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." | "" => continue,
            ".." => {
                done = done.parent();
                node = Node::dir(0o755);
                continue;
            }
            _ => {}
        }
        if !matches!(node.kind, FileKind::Dir) {
            return Err(ResolveError::NotDir { path: done });
        }
        done = done.join(&c);
        let here = done.clone();
        let Some(n) = tree.node(&here) else {
            return Err(ResolveError::Missing {
                missing: here,
                chain,
            });
        };
        if n.kind == FileKind::Symlink {
            let target = n.link.clone().unwrap_or_default();
            chain.push((here, target.clone()));
            if chain.len() > MAX_SYMLINK_HOPS {
                return Err(ResolveError::Loop { chain });
            }
            done = done.parent();
            if target.starts_with('/') {
                done = ImagePath::root();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_string),
            );
            node = Node::dir(0o755);
            continue;
        }
        node = n;
    }
    Ok(Resolved {
        path: done,
        node,
        chain,
    })
}

/// An in-memory tree: tests, and the entries a step generates itself.
/// Its builders take anything that names an [`ImagePath`] (`"/usr/bin/cc"`).
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    name: String,
    entries: BTreeMap<ImagePath, (Node, Vec<u8>)>,
}

impl MemTree {
    pub fn new(name: impl Into<String>) -> MemTree {
        MemTree {
            name: name.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Adds an entry, creating missing parent directories (0755, root).
    /// The root itself is not an entry.
    pub fn insert(&mut self, path: impl Into<ImagePath>, node: Node, content: Vec<u8>) {
        let path = path.into();
        if path.is_root() {
            return;
        }
        let missing: Vec<ImagePath> = path
            .ancestors()
            .take_while(|p| !self.entries.contains_key(p))
            .collect();
        for p in missing {
            self.entries.insert(p, (Node::dir(0o755), Vec::new()));
        }
        self.entries.insert(path, (node, content));
    }

    pub fn add_dir(&mut self, path: impl Into<ImagePath>) -> &mut Self {
        self.insert(path, Node::dir(0o755), Vec::new());
        self
    }

    pub fn add_file(&mut self, path: impl Into<ImagePath>, content: &[u8]) -> &mut Self {
        self.insert(
            path,
            Node::file(0o644, content.len() as u64),
            content.to_vec(),
        );
        self
    }

    pub fn add_symlink(&mut self, path: impl Into<ImagePath>, target: &str) -> &mut Self {
        self.insert(path, Node::symlink(target), Vec::new());
        self
    }

    /// Removes an entry and everything below it.
    pub fn remove(&mut self, path: &ImagePath) {
        self.entries.retain(|p, _| !p.starts_with(path));
    }

    /// A hard link to `target` (an absolute path in the image).
    pub fn add_hardlink(&mut self, path: impl Into<ImagePath>, target: &str) -> &mut Self {
        let mut n = Node::file(0o644, 0);
        n.kind = FileKind::HardLink;
        n.link = Some(ImagePath::from(target).to_string());
        self.insert(path, n, Vec::new());
        self
    }
}

impl ImageTree for MemTree {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn node(&self, path: &ImagePath) -> Option<Node> {
        if path.is_root() {
            return Some(Node::dir(0o755));
        }
        self.entries.get(path).map(|(n, _)| n.clone())
    }

    fn paths(&self) -> Vec<ImagePath> {
        self.entries.keys().cloned().collect()
    }

    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>> {
        let mut p = path.clone();
        for _ in 0..2 {
            match self.entries.get(&p) {
                Some((n, _)) if n.kind == FileKind::HardLink => {
                    p = ImagePath::from(n.link.as_deref().unwrap_or_default());
                }
                Some((n, c)) if n.kind == FileKind::File => {
                    return Ok(c[..len.min(c.len())].to_vec());
                }
                _ => break,
            }
        }
        Err(Error::not_found(
            format!("regular file {path}"),
            self.name.clone(),
        ))
    }
}

/// Trees on top of each other: a path comes from the topmost tree that has
/// it. (No whiteouts: the steps only add.)
pub struct Stack<'a> {
    pub layers: Vec<&'a dyn ImageTree>,
}

impl ImageTree for Stack<'_> {
    fn name(&self) -> String {
        self.layers
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn node(&self, path: &ImagePath) -> Option<Node> {
        self.layers.iter().rev().find_map(|t| t.node(path))
    }

    fn paths(&self) -> Vec<ImagePath> {
        let mut all: Vec<ImagePath> = self.layers.iter().flat_map(|t| t.paths()).collect();
        all.sort();
        all.dedup();
        all
    }

    fn visit_files(
        &self,
        paths: &[ImagePath],
        visit: &mut dyn FnMut(usize, &mut dyn std::io::Read) -> Result<()>,
    ) -> Result<()> {
        // Each path from the topmost tree that has it, each tree once.
        let mut by_tree: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in paths.iter().enumerate() {
            match self.layers.iter().rposition(|t| t.node(p).is_some()) {
                Some(t) => by_tree.entry(t).or_default().push(i),
                None => return Err(Error::not_found(format!("regular file {p}"), self.name())),
            }
        }
        for (t, idx) in by_tree {
            let sub: Vec<ImagePath> = idx.iter().map(|&i| paths[i].clone()).collect();
            self.layers[t].visit_files(&sub, &mut |k, r| visit(idx[k], r))?;
        }
        Ok(())
    }

    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>> {
        for t in self.layers.iter().rev() {
            if t.node(path).is_some() {
                return t.read_prefix(path, len);
            }
        }
        Err(Error::not_found(
            format!("regular file {path}"),
            self.name(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> MemTree {
        let mut t = MemTree::new("test");
        t.add_file("/opt/gcc-16.1.0/bin/gcc", b"\x7fELF")
            .add_symlink("/opt/gcc-16.1.0/bin/cc", "gcc")
            .add_symlink("/etc/alternatives/cc", "/opt/gcc-16.1.0/bin/gcc")
            .add_symlink("/usr/bin/cc", "/etc/alternatives/cc")
            .add_symlink("/lib", "usr/lib")
            .add_file("/usr/lib/libc.so.6", b"libc")
            .add_symlink("/loop/a", "b")
            .add_symlink("/loop/b", "a")
            .add_symlink("/up", "../../../usr/lib/libc.so.6")
            .add_symlink("/dangling", "/nowhere/x")
            .add_hardlink(
                "/opt/gcc-16.1.0/bin/x86_64-linux-gnu-gcc",
                "/opt/gcc-16.1.0/bin/gcc",
            );
        t
    }

    #[test]
    fn resolves_chains_inside_the_image() {
        let t = tree();
        let r = t.resolve(&"/usr/bin/cc".into()).unwrap();
        assert_eq!(r.path, "/opt/gcc-16.1.0/bin/gcc");
        assert_eq!(r.node.kind, FileKind::File);
        assert_eq!(
            format_chain(&r.chain),
            "/usr/bin/cc -> /etc/alternatives/cc -> /opt/gcc-16.1.0/bin/gcc"
        );
        assert_eq!(
            t.resolve(&"/lib/libc.so.6".into()).unwrap().path,
            "/usr/lib/libc.so.6"
        );
        // `..` never climbs above the image root.
        assert_eq!(t.resolve(&"/up".into()).unwrap().path, "/usr/lib/libc.so.6");
        assert_eq!(
            t.resolve(&"/opt/gcc-16.1.0/bin/cc".into()).unwrap().path,
            "/opt/gcc-16.1.0/bin/gcc"
        );
        assert_eq!(t.resolve(&"/".into()).unwrap().path, "/");
    }

    #[test]
    fn reports_dangling_loops_and_non_dirs() {
        let t = tree();
        match t.resolve(&"/dangling".into()).unwrap_err() {
            ResolveError::Missing { missing, chain } => {
                assert_eq!(missing, "/nowhere");
                assert_eq!(chain.len(), 1);
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            t.resolve(&"/loop/a".into()).unwrap_err(),
            ResolveError::Loop { .. }
        ));
        assert!(matches!(
            t.resolve(&"/usr/lib/libc.so.6/x".into()).unwrap_err(),
            ResolveError::NotDir { .. }
        ));
    }

    #[test]
    fn prefixes_children_and_stacks() {
        let t = tree();
        assert_eq!(
            t.read_prefix(&"/opt/gcc-16.1.0/bin/x86_64-linux-gnu-gcc".into(), 2)
                .unwrap(),
            b"\x7fE"
        );
        assert!(t.read_prefix(&"/usr/bin/cc".into(), 4).is_err());
        assert_eq!(t.children(&"/loop".into()), ["a", "b"]);
        assert!(t.children(&"/".into()).contains(&"usr".to_string()));

        let mut upper = MemTree::new("upper");
        upper.add_symlink("/usr/bin/cc", "/usr/lib/libc.so.6");
        let s = Stack {
            layers: vec![&t, &upper],
        };
        assert_eq!(
            s.resolve(&"/usr/bin/cc".into()).unwrap().path,
            "/usr/lib/libc.so.6"
        );
        assert_eq!(
            s.read_prefix(&"/usr/lib/libc.so.6".into(), 10).unwrap(),
            b"libc"
        );
        assert!(s.paths().windows(2).all(|w| w[0] < w[1]));
    }
}
