//! Layers: decompression, entry paths and whiteouts, and the layer engine
//! built on them.
//!
//! - [`merged`]: the merged rootfs view of an image (metadata only);
//! - [`select`]: which trees/files/globs go into a new layer, where, owned
//!   by whom;
//! - [`writer`]: canonical tar -> diff_id -> parallel gzip / zstd -> blob,
//!   from an image ([`layer_from_image`]), a directory ([`layer_from_dir`])
//!   or generated files ([`layer_from_entries`]);
//! - [`cache`] and whole-layer reuse: reruns do no work.

pub mod append;
pub mod cache;
pub mod canon;
pub mod content;
pub mod dir;
pub mod entry;
pub mod glob;
pub mod gunzip;
pub mod gzip;
pub mod headerguard;
pub mod merged;
pub mod output;
pub mod path;
pub mod reuse;
pub mod scan;
pub mod select;
pub mod sparse;
pub mod treecache;
pub mod verify;
pub mod writer;

pub use cache::LayerCache;
pub use entry::{ContentRef, FileKind, Meta};
pub use merged::{LayerInfo, MergedTree, TreeEntry};
pub use path::ImagePath;
pub use select::{SelectRule, Selection};
pub use writer::{
    layer_from_dir, layer_from_entries, layer_from_image, BuiltLayer, LayerOptions, SyntheticEntry,
    SyntheticKind,
};

use std::io::{BufReader, Read};

use oci_spec::image::Descriptor;

use crate::error::Result;
use crate::manifest::Compression;
use crate::transport::ImageSource;

/// Opens a layer blob as an uncompressed tar stream (verified while read).
pub fn open_tar_stream<'a>(
    src: &'a dyn ImageSource,
    desc: &Descriptor,
) -> Result<Box<dyn Read + Send + 'a>> {
    let compression = Compression::of_media_type(desc.media_type())?;
    let blob = src.open_blob(desc)?;
    decompress(blob, compression)
}

/// Wraps a compressed stream in its decoder.
pub fn decompress<'a>(
    r: Box<dyn Read + Send + 'a>,
    c: Compression,
) -> Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::None => r,
        // Multi-member: parallel gzip writers emit several members. Every
        // trailer is checked, trailing data refused (see `gunzip`).
        Compression::Gzip => Box::new(gunzip::Gunzip::new(BufReader::with_capacity(1 << 20, r))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(r)
                .map_err(|e| crate::error::Error::io("zstd decoder", e))?,
        ),
    })
}
