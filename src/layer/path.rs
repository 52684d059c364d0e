//! Entry paths of layer tars: normalisation, safety and whiteout names.

use std::path::{Component, Path, PathBuf};

/// Prefix of a whiteout entry's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name marking its directory as opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What a layer entry means for the merged filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An ordinary entry at this normalised path.
    Regular(PathBuf),
    /// Deletes this path (and everything below it) from lower layers.
    Whiteout(PathBuf),
    /// Hides everything lower layers had below this directory.
    Opaque(PathBuf),
}

/// Normalises a tar entry path to a relative path with no `.` components.
/// Refuses `..` components and absolute paths with a reason, since they
/// would escape the root.
pub fn normalize(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok(out)
}

/// Classifies a normalised path as a regular entry, whiteout or opaque marker.
pub fn classify(path: PathBuf) -> Result<EntryKind, String> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(EntryKind::Regular(path));
    };
    if name == OPAQUE_MARKER {
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok(EntryKind::Opaque(parent));
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty()
            || target == "."
            || target == ".."
            || target.starts_with(WHITEOUT_PREFIX)
        {
            return Err(format!("invalid whiteout name {name:?}"));
        }
        return Ok(EntryKind::Whiteout(path.with_file_name(target)));
    }
    Ok(EntryKind::Regular(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(
            normalize(Path::new("./a/./b/")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(normalize(Path::new("a/../../etc")).is_err());
        assert!(normalize(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn whiteouts() {
        assert_eq!(
            classify("a/.wh.b".into()).unwrap(),
            EntryKind::Whiteout("a/b".into())
        );
        assert_eq!(
            classify("a/.wh..wh..opq".into()).unwrap(),
            EntryKind::Opaque("a".into())
        );
        assert_eq!(
            classify("a/b".into()).unwrap(),
            EntryKind::Regular("a/b".into())
        );
        assert!(classify("a/.wh...".into()).is_err());
    }
}
