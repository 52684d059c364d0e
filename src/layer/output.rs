//! What writing a layer takes and gives ([`LayerOptions`], [`BuiltLayer`]):
//! the writer, the layer cache and whole-layer reuse all speak it, so it
//! sits below them.

use std::path::PathBuf;

use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use super::gzip;
use super::path::ImagePath;
use crate::manifest::Compression;

/// Default zstd level (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How layers are written. Everything here except `threads`, `cache` and
/// `reuse_layers` is part of the output: it goes into cache keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
    /// Clamp for every mtime, and the mtime of created parent directories.
    pub source_date_epoch: Option<u64>,
    /// libdeflate level, 1-12.
    pub gzip_level: u32,
    /// zstd level, 1-19.
    pub zstd_level: i32,
    /// Directory of the layer cache (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// Reuse a source layer's blob when the selection is exactly that layer.
    pub reuse_layers: bool,
}

impl Default for LayerOptions {
    /// gzip, all cores, `SOURCE_DATE_EPOCH` from the environment, no cache.
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            source_date_epoch: source_date_epoch_from_env(),
            gzip_level: gzip::DEFAULT_LEVEL,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            cache: None,
            reuse_layers: true,
        }
    }
}

/// `SOURCE_DATE_EPOCH` when it is set to an integer.
pub fn source_date_epoch_from_env() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// A layer written into a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltLayer {
    /// Media type (OCI, by compression), digest and size of the blob.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Entries in the tar.
    pub entries: u64,
    /// A cache hit or a source layer reused as is: nothing was compressed.
    pub reused: bool,
    /// Regular files in the layer (hard links excluded).
    pub paths: Vec<ImagePath>,
}
