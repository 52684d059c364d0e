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
    /// The final, symlink-free absolute path.
    pub path: String,
    pub node: Node,
    /// Every link followed, as `(link path, target as stored)`.
    pub chain: Vec<(String, String)>,
}

/// Why a path does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// `missing` does not exist (after following `chain`).
    Missing {
        missing: String,
        chain: Vec<(String, String)>,
    },
    /// A component that must be a directory is not one.
    NotDir { path: String },
    /// More than [`MAX_SYMLINK_HOPS`] links.
    Loop { chain: Vec<(String, String)> },
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
pub fn format_chain(chain: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (link, target)) in chain.iter().enumerate() {
        if i == 0 {
            s.push_str(link);
        }
        s.push_str(" -> ");
        s.push_str(target);
    }
    s
}

/// Read access to a merged image filesystem. Paths are absolute and
/// normalised (`/usr/bin/cc`; the root is `/`).
pub trait ImageTree {
    /// For messages (a reference or a description).
    fn name(&self) -> String;
    /// The entry at `path`, without following a final symlink.
    fn node(&self, path: &str) -> Option<Node>;
    /// Every path, sorted.
    fn paths(&self) -> Vec<String>;
    /// The first `len` bytes of a regular file (or of what a hard link
    /// names).
    fn read_prefix(&self, path: &str, len: usize) -> Result<Vec<u8>>;

    /// The names directly below `dir` (default: a scan of [`paths`]).
    ///
    /// [`paths`]: ImageTree::paths
    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.paths()
            .into_iter()
            .filter_map(|p| {
                let rest = p.strip_prefix(&prefix)?;
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Follows symlinks inside the image, like `realpath` in a chroot: an
    /// absolute target restarts at the image root, `..` stops at the root.
    fn resolve(&self, path: &str) -> std::result::Result<Resolved, ResolveError> {
        resolve_in(self, path)
    }
}

fn resolve_in<T: ImageTree + ?Sized>(
    tree: &T,
    path: &str,
) -> std::result::Result<Resolved, ResolveError> {
    let mut chain: Vec<(String, String)> = Vec::new();
    // Components still to walk, in reverse order (a stack).
    let mut todo: Vec<String> = split(path).rev().map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut node = Node::dir(0o755);
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." | "" => continue,
            ".." => {
                done.pop();
                node = Node::dir(0o755);
                continue;
            }
            _ => {}
        }
        if !matches!(node.kind, FileKind::Dir) {
            return Err(ResolveError::NotDir { path: join(&done) });
        }
        done.push(c);
        let here = join(&done);
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
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(split(&target).rev().map(str::to_string));
            node = Node::dir(0o755);
            continue;
        }
        node = n;
    }
    Ok(Resolved {
        path: join(&done),
        node,
        chain,
    })
}

fn split(p: &str) -> impl DoubleEndedIterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty())
}

fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", parts.join("/"))
    }
}

/// The parent directory of an absolute path (`/` for top-level entries).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// An in-memory tree: tests, and the entries a step generates itself.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    name: String,
    entries: BTreeMap<String, (Node, Vec<u8>)>,
}

impl MemTree {
    pub fn new(name: impl Into<String>) -> MemTree {
        MemTree {
            name: name.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Adds an entry, creating missing parent directories (0755, root).
    pub fn insert(&mut self, path: &str, node: Node, content: Vec<u8>) {
        let mut p = parent(path);
        while p != "/" && !self.entries.contains_key(p) {
            self.entries
                .insert(p.to_string(), (Node::dir(0o755), Vec::new()));
            p = parent(p);
        }
        self.entries.insert(path.to_string(), (node, content));
    }

    pub fn add_dir(&mut self, path: &str) -> &mut Self {
        self.insert(path, Node::dir(0o755), Vec::new());
        self
    }

    pub fn add_file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.insert(
            path,
            Node::file(0o644, content.len() as u64),
            content.to_vec(),
        );
        self
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(path, Node::symlink(target), Vec::new());
        self
    }

    /// Removes an entry and everything below it.
    pub fn remove(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.entries
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    pub fn add_hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut n = Node::file(0o644, 0);
        n.kind = FileKind::HardLink;
        n.link = Some(target.to_string());
        self.insert(path, n, Vec::new());
        self
    }
}

impl ImageTree for MemTree {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn node(&self, path: &str) -> Option<Node> {
        if path == "/" {
            return Some(Node::dir(0o755));
        }
        self.entries.get(path).map(|(n, _)| n.clone())
    }

    fn paths(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn read_prefix(&self, path: &str, len: usize) -> Result<Vec<u8>> {
        let mut p = path.to_string();
        for _ in 0..2 {
            match self.entries.get(&p) {
                Some((n, _)) if n.kind == FileKind::HardLink => {
                    p = n.link.clone().unwrap_or_default();
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

    fn node(&self, path: &str) -> Option<Node> {
        self.layers.iter().rev().find_map(|t| t.node(path))
    }

    fn paths(&self) -> Vec<String> {
        let mut all: Vec<String> = self.layers.iter().flat_map(|t| t.paths()).collect();
        all.sort();
        all.dedup();
        all
    }

    fn read_prefix(&self, path: &str, len: usize) -> Result<Vec<u8>> {
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
        let r = t.resolve("/usr/bin/cc").unwrap();
        assert_eq!(r.path, "/opt/gcc-16.1.0/bin/gcc");
        assert_eq!(r.node.kind, FileKind::File);
        assert_eq!(
            format_chain(&r.chain),
            "/usr/bin/cc -> /etc/alternatives/cc -> /opt/gcc-16.1.0/bin/gcc"
        );
        assert_eq!(
            t.resolve("/lib/libc.so.6").unwrap().path,
            "/usr/lib/libc.so.6"
        );
        // `..` never climbs above the image root.
        assert_eq!(t.resolve("/up").unwrap().path, "/usr/lib/libc.so.6");
        assert_eq!(
            t.resolve("/opt/gcc-16.1.0/bin/cc").unwrap().path,
            "/opt/gcc-16.1.0/bin/gcc"
        );
        assert_eq!(t.resolve("/").unwrap().path, "/");
    }

    #[test]
    fn reports_dangling_loops_and_non_dirs() {
        let t = tree();
        match t.resolve("/dangling").unwrap_err() {
            ResolveError::Missing { missing, chain } => {
                assert_eq!(missing, "/nowhere");
                assert_eq!(chain.len(), 1);
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            t.resolve("/loop/a").unwrap_err(),
            ResolveError::Loop { .. }
        ));
        assert!(matches!(
            t.resolve("/usr/lib/libc.so.6/x").unwrap_err(),
            ResolveError::NotDir { .. }
        ));
    }

    #[test]
    fn prefixes_children_and_stacks() {
        let t = tree();
        assert_eq!(
            t.read_prefix("/opt/gcc-16.1.0/bin/x86_64-linux-gnu-gcc", 2)
                .unwrap(),
            b"\x7fE"
        );
        assert!(t.read_prefix("/usr/bin/cc", 4).is_err());
        assert_eq!(t.children("/loop"), ["a", "b"]);
        assert!(t.children("/").contains(&"usr".to_string()));

        let mut upper = MemTree::new("upper");
        upper.add_symlink("/usr/bin/cc", "/usr/lib/libc.so.6");
        let s = Stack {
            layers: vec![&t, &upper],
        };
        assert_eq!(s.resolve("/usr/bin/cc").unwrap().path, "/usr/lib/libc.so.6");
        assert_eq!(s.read_prefix("/usr/lib/libc.so.6", 10).unwrap(), b"libc");
        assert!(s.paths().windows(2).all(|w| w[0] < w[1]));
    }
}
