//! Entry metadata: the leaf every part of the layer engine shares (scan,
//! merged view, selection, canonical writer, caches), so an entry's kind,
//! mode and owner have one type from the tar header they are read from to
//! the tar header they are written to: [`Meta`], embedded by the merged
//! view's `TreeEntry` (plus its layer and content) and the writer's
//! `OutEntry` (plus its body and inode), both readable as a `Meta`.
//!
//! Paths are not part of it: a path inside an image is an
//! [`super::path::ImagePath`] everywhere (layer engine, guards, reports).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// What a filesystem entry is (not what its tar name means for the merged
/// tree: that is [`super::path::EntryName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
}

/// Where an entry's content lives: the layer (index in the manifest) and
/// the entry's position in that layer's tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ContentRef {
    pub layer: u32,
    pub ordinal: u64,
}

/// Tar metadata of one entry, as read from a layer and as kept by the
/// merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    /// Symlink target verbatim, or hard-link target normalised.
    pub link: Option<PathBuf>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub dev: Option<(u32, u32)>,
}
