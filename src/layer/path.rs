//! Entry paths of layer tars: normalisation, safety and whiteout names.

use std::path::{Component, Path, PathBuf};

/// A path inside an image: the one form every part of ocipack passes
/// around (layer engine, selections, the guards' tree view, alternatives,
/// ld.so.cache, reports). Rooted and normalised lexically: `/`, `.` and
/// `..` components are gone, `..` never climbs above the image root (as
/// containerd and umoci join a name to a root). Stored relative
/// (`usr/lib/x`; the root is empty) so it orders component by component
/// like the canonical tar order ([`sort_key`]); shown absolute
/// (`/usr/lib/x`), the form recipes, guards and reports write.
///
/// A tar entry's name goes through [`ImagePath::from_tar_name`] (or
/// [`entry_name`]), which refuses a `..` above the root instead of
/// clamping it; every other text (recipes, symlink targets being walked,
/// tests) uses the clamping [`From`] conversions.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImagePath(PathBuf);

impl ImagePath {
    /// The image root (`/`).
    pub fn root() -> ImagePath {
        ImagePath(PathBuf::new())
    }

    /// Wraps a path [`normalize`] or [`lexical`] already produced (relative,
    /// no `.`/`..`/`/` components).
    pub(crate) fn from_normalized(rel: PathBuf) -> ImagePath {
        debug_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        ImagePath(rel)
    }

    /// A tar entry's name (or a hard link's target): refuses a `..` that
    /// climbs above the root (see [`normalize`]).
    pub fn from_tar_name(raw: &Path) -> Result<ImagePath, String> {
        normalize(raw).map(ImagePath)
    }

    /// The relative form the layer engine joins and walks (`usr/lib/x`).
    pub fn rel(&self) -> &Path {
        &self.0
    }

    pub fn into_rel(self) -> PathBuf {
        self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> ImagePath {
        ImagePath(self.0.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// The directories above `self`, nearest first, the root excepted
    /// (`/a/b/c`: `/a/b`, `/a`): what a tree adds when `self` is inserted
    /// without its parents.
    pub fn ancestors(&self) -> impl Iterator<Item = ImagePath> + '_ {
        self.0
            .ancestors()
            .skip(1)
            .take_while(|a| !a.as_os_str().is_empty())
            .map(|a| ImagePath(a.to_path_buf()))
    }

    /// `self` joined with `rel` (a name or a relative path; normalised and
    /// rooted like the [`From`] conversions; an absolute `rel` starts at
    /// the root again, as a symlink target would).
    pub fn join(&self, rel: impl AsRef<Path>) -> ImagePath {
        let rel = rel.as_ref();
        if rel.has_root() {
            return ImagePath::from(rel);
        }
        ImagePath(lexical(&self.0.join(rel)))
    }

    /// The last component (`None` for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.0.file_name().and_then(|n| n.to_str())
    }

    /// Whether `self` is `base` or below it (component-wise: `/usr/lib` is
    /// not below `/usr/li`).
    pub fn starts_with(&self, base: &ImagePath) -> bool {
        self.0.starts_with(&base.0)
    }

    /// The components, outermost first.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &std::ffi::OsStr> {
        self.0.components().map(Component::as_os_str)
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        self.0.components().count()
    }
}

impl std::fmt::Display for ImagePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.0.display())
    }
}

impl std::fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl From<&Path> for ImagePath {
    fn from(p: &Path) -> ImagePath {
        ImagePath(lexical(p))
    }
}

impl From<&str> for ImagePath {
    fn from(p: &str) -> ImagePath {
        ImagePath::from(Path::new(p))
    }
}

impl From<&String> for ImagePath {
    fn from(p: &String) -> ImagePath {
        ImagePath::from(Path::new(p))
    }
}

impl From<String> for ImagePath {
    fn from(p: String) -> ImagePath {
        ImagePath::from(Path::new(&p))
    }
}

impl PartialEq<str> for ImagePath {
    /// Compares against the displayed (absolute) form without allocating.
    fn eq(&self, other: &str) -> bool {
        match other.strip_prefix('/') {
            Some(rest) => self.0.as_os_str() == rest,
            None => false,
        }
    }
}

impl PartialEq<&str> for ImagePath {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl serde::Serialize for ImagePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back through the clamping conversion: a cache file on disk never
/// yields a path outside the image.
impl<'de> serde::Deserialize<'de> for ImagePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ImagePath, D::Error> {
        String::deserialize(d).map(ImagePath::from)
    }
}

/// Prefix of a whiteout entry's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name marking its directory as opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What a tar entry's *name* means for the merged filesystem (not what the
/// entry is: that is [`super::entry::FileKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// An ordinary entry at this normalised path.
    Regular(PathBuf),
    /// Deletes this path (and everything below it) from lower layers.
    Whiteout(PathBuf),
    /// Hides everything lower layers had below this directory.
    Opaque(PathBuf),
}

/// Normalises a tar entry name (or a hard link's target) to a path relative
/// to the image root, the way containerd (`filepath.Clean` then a join to
/// the root) and umoci (`CleanPath` + securejoin) read names:
///
/// - `/`, `.` and `./` name the root itself (the empty path);
/// - an absolute name is rooted inside the image: `/etc/x` is `etc/x`;
/// - `.` components are dropped and `a/../b` is cleaned lexically to `b`.
///
/// Only a `..` that climbs above the root is refused, since it would escape
/// it (containerd and umoci clamp it to the root instead; a writer that
/// emits one is broken or hostile, so refusing is the safer reading).
/// Writes through symlinks are refused where entries are applied, not here.
pub fn normalize(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("path contains '..' above the root".into());
                }
            }
            Component::Prefix(_) => return Err("path has a non-Unix prefix".into()),
        }
    }
    Ok(out)
}

/// Classifies a normalised path as a regular entry, whiteout or opaque marker.
pub fn classify(path: PathBuf) -> Result<EntryName, String> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(EntryName::Regular(path));
    };
    if name == OPAQUE_MARKER {
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok(EntryName::Opaque(parent));
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty()
            || target == "."
            || target == ".."
            || target.starts_with(WHITEOUT_PREFIX)
        {
            return Err(format!("invalid whiteout name {name:?}"));
        }
        return Ok(EntryName::Whiteout(path.with_file_name(target)));
    }
    Ok(EntryName::Regular(path))
}

/// Reads a layer entry's name: [`normalize`] then [`classify`], refusing
/// what no reader can apply safely: a whiteout of the root, and a root
/// entry (`/`, `.`, `./`) that is not a directory (umoci refuses it too; a
/// symlink there would redirect every later write). A directory entry for
/// the root is kept (as the empty path): its mode, owner and times are the
/// root's, which umoci applies as well (containerd ignores them).
/// Every reader of layer names (merged view, unpack, guards) goes through
/// here so they agree on what an entry means.
pub fn entry_name(raw: &Path, is_dir: bool) -> Result<EntryName, String> {
    let kind = classify(normalize(raw)?)?;
    match &kind {
        EntryName::Whiteout(p) if p.as_os_str().is_empty() => Err("whiteout of the root".into()),
        EntryName::Regular(p) if p.as_os_str().is_empty() && !is_dir => {
            Err("names the root directory but is not a directory".into())
        }
        _ => Ok(kind),
    }
}

/// Longest symlink chain followed when a path is looked up inside an
/// image, by the merged view and the guards' tree alike (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Longest symlink chain followed while placing a layer entry whose parent
/// is a link: containerd's `fs.RootPath` and umoci's securejoin both stop
/// after 255 links. The merged view and unpack share it.
pub const MAX_ENTRY_LINK_HOPS: usize = 255;

/// The components of a symlink target that matter when it is resolved
/// inside a root: names and `..` (`/` and `.` drop out, since an absolute
/// target starts again at the image root). Shared by the merged view and
/// unpack so both read links the same way.
pub fn link_components(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// A byte key whose order is the canonical entry order: path components
/// compared one by one, so parents sort before children and a directory's
/// subtree is contiguous (`a/b`, `a/b/c`, `a/b.txt`). `/` becomes NUL, which
/// sorts below every byte a file name can hold.
pub fn sort_key(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut k = Vec::with_capacity(path.as_os_str().len());
    for (i, c) in path.components().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(c.as_os_str().as_bytes());
    }
    k
}

/// The path a [`sort_key`] was made from.
pub fn key_path(key: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes: Vec<u8> = key.iter().map(|&b| if b == 0 { b'/' } else { b }).collect();
    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
}

/// The key range holding every descendant of `key` (not `key` itself).
pub fn descendants_range(key: &[u8]) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
    use std::ops::Bound;
    if key.is_empty() {
        return (Bound::Excluded(Vec::new()), Bound::Unbounded);
    }
    let mut lo = key.to_vec();
    lo.push(0);
    let mut hi = key.to_vec();
    hi.push(1);
    (Bound::Included(lo), Bound::Excluded(hi))
}

/// Normalises a path lexically: drops `/` and `.`, keeps `..` out of the
/// root (used for lookups, never for writing).
pub(crate) fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Why a file named like a whiteout cannot go into a layer.
pub(crate) fn whiteout_name_reason() -> &'static str {
    "its name starts with \".wh.\": in a layer it would be a whiteout, deleting \
     files of the layers below (OCI image spec), not a file; rename it \
     (umoci refuses such names too)"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses() {
        let n = |s: &str| normalize(Path::new(s));
        assert_eq!(n("./a/./b/").unwrap(), PathBuf::from("a/b"));
        // The root itself, however it is spelled.
        for root in ["/", ".", "./", "//", "/./", "./."] {
            assert_eq!(n(root).unwrap(), PathBuf::new(), "{root}");
        }
        // Absolute names are rooted inside the image.
        assert_eq!(n("/etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(n("//usr//bin/").unwrap(), PathBuf::from("usr/bin"));
        // `..` that stays inside is cleaned like filepath.Clean.
        assert_eq!(n("a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(n("/a/b/../../c").unwrap(), PathBuf::from("c"));
        assert_eq!(n("a/..").unwrap(), PathBuf::new());
        // ...and refused where it climbs above the root.
        for bad in ["..", "../etc", "a/../../etc", "/../etc", "./.."] {
            let e = n(bad).unwrap_err();
            assert!(e.contains("'..'"), "{bad}: {e}");
        }
    }

    #[test]
    fn image_paths_have_one_form() {
        // However it is spelled, a path prints, compares and serialises
        // rooted, and gives the relative form for keys and host joins.
        for spelled in [
            "usr/lib/x",
            "/usr/lib/x",
            "./usr//lib/./x/",
            "/usr/bin/../lib/x",
        ] {
            let p = ImagePath::from(spelled);
            assert_eq!(p, "/usr/lib/x", "{spelled}");
            assert_eq!(p.rel(), Path::new("usr/lib/x"));
            assert_eq!(p.to_string(), "/usr/lib/x");
            assert_eq!(serde_json::to_string(&p).unwrap(), "\"/usr/lib/x\"");
            let back: ImagePath = serde_json::from_str("\"usr/lib/x\"").unwrap();
            assert_eq!(back, p);
        }
        let root = ImagePath::root();
        assert!(root.is_root() && root == "/" && root.rel() == Path::new(""));
        assert_eq!(ImagePath::from("/"), root);
        assert_ne!(ImagePath::from("/usr"), "usr");
        // User text and symlink targets clamp `..` at the root (a chroot);
        // a tar name refuses it.
        assert_eq!(ImagePath::from("/../../etc/passwd"), "/etc/passwd");
        assert!(ImagePath::from_tar_name(Path::new("../etc/passwd")).is_err());
        assert_eq!(
            ImagePath::from_tar_name(Path::new("./etc/passwd")).unwrap(),
            "/etc/passwd"
        );
        // Joins stay normalised and rooted; an absolute part starts over.
        let lib = ImagePath::from("/usr/lib");
        assert_eq!(lib.join("x"), "/usr/lib/x");
        assert_eq!(lib.join(""), "/usr/lib");
        assert_eq!(lib.join("../../../bin"), "/bin");
        assert_eq!(lib.join("/opt"), "/opt");
        assert_eq!(lib.parent(), "/usr");
        let up: Vec<String> = lib.join("x").ancestors().map(|a| a.to_string()).collect();
        assert_eq!(up, ["/usr/lib", "/usr"]);
        assert_eq!(root.ancestors().count(), 0);
        assert_eq!(root.parent(), "/");
        assert_eq!(lib.file_name(), Some("lib"));
        assert!(lib.join("x").starts_with(&lib));
        assert!(!ImagePath::from("/usr/libexec").starts_with(&lib));
    }

    #[test]
    fn entry_names_agree_on_the_root() {
        assert_eq!(
            entry_name(Path::new("/"), true).unwrap(),
            EntryName::Regular(PathBuf::new())
        );
        assert_eq!(
            entry_name(Path::new("/etc/.wh.x"), false).unwrap(),
            EntryName::Whiteout("etc/x".into())
        );
        assert_eq!(
            entry_name(Path::new("/.wh..wh..opq"), false).unwrap(),
            EntryName::Opaque(PathBuf::new())
        );
        assert!(entry_name(Path::new("./"), false).is_err());
        assert!(entry_name(Path::new("a/.."), false).is_err());
        assert!(entry_name(Path::new("../x"), true).is_err());
    }

    #[test]
    fn whiteouts() {
        assert_eq!(
            classify("a/.wh.b".into()).unwrap(),
            EntryName::Whiteout("a/b".into())
        );
        assert_eq!(
            classify("a/.wh..wh..opq".into()).unwrap(),
            EntryName::Opaque("a".into())
        );
        assert_eq!(
            classify("a/b".into()).unwrap(),
            EntryName::Regular("a/b".into())
        );
        assert!(classify("a/.wh...".into()).is_err());
    }

    #[test]
    fn sort_keys_order_parents_first_and_subtrees_together() {
        let mut v = vec!["a/b.txt", "a/b/c", "a", "a/b", "a-b", "a/b/c/d", "b"];
        v.sort_by_key(|p| sort_key(Path::new(p)));
        assert_eq!(v, ["a", "a/b", "a/b/c", "a/b/c/d", "a/b.txt", "a-b", "b"]);
        assert_eq!(key_path(&sort_key(Path::new("x/y/z"))), Path::new("x/y/z"));
        let k = sort_key(Path::new("a/b"));
        let r = descendants_range(&k);
        let mut m = std::collections::BTreeMap::new();
        for p in &v {
            m.insert(sort_key(Path::new(p)), *p);
        }
        let sub: Vec<_> = m.range(r).map(|(_, p)| *p).collect();
        assert_eq!(sub, ["a/b/c", "a/b/c/d"]);
    }
}
