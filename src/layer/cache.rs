//! The layer cache: a rerun with unchanged inputs returns the earlier
//! layer's descriptor without decompressing or compressing anything.
//!
//! Keys are sha256 over everything the output depends on:
//! - image layers: the source layer digests, the selection, the writer
//!   settings (compression, level, block size, epoch) and the engine version;
//! - directories: a fingerprint of the walk (paths, types, modes, owners,
//!   mtimes and ctimes to the nanosecond, inodes, sizes, link targets,
//!   xattrs), the destination and the same settings. ctime changes on every
//!   write, chmod or xattr change, so a stale hit needs a deliberate forgery.
//!
//! A hit counts only if the blob is present in the output layout with the
//! recorded size. Entries are small JSON files, written atomically; a
//! corrupt or unreadable entry is a miss.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::gzip;
use super::output::{BuiltLayer, LayerOptions};
use super::select::Selection;
use crate::atomic;
use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::layout::Layout;
use crate::manifest::{canonical_json, Compression};

/// Bump when the writer's output changes for equal inputs.
/// (2: reused layers' diff_ids are verified ones; entries written before
/// that are not trusted.)
pub const ENGINE_VERSION: &str = "ocipack-layer-2";

/// A cache directory.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayerCache { dir: dir.into() }
    }

    pub(crate) fn from_options(opts: &LayerOptions) -> Option<Self> {
        opts.cache.as_ref().map(LayerCache::new)
    }

    /// `$OCIPACK_CACHE_DIR`, else `$XDG_CACHE_HOME/ocipack`, else
    /// `$HOME/.cache/ocipack`.
    pub fn default_dir() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("OCIPACK_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("ocipack")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("ocipack")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.json"))
    }

    /// The cached layer for `key`, if its blob is in `out`.
    pub fn get(&self, key: &str, out: &Layout) -> Option<BuiltLayer> {
        let bytes = std::fs::read(self.entry_path(key)).ok()?;
        let mut built: BuiltLayer = serde_json::from_slice(&bytes).ok()?;
        if !out.has_blob(&built.descriptor).ok()? {
            return None;
        }
        built.reused = true;
        tracing::debug!(key, digest = %built.descriptor.digest(), "layer cache hit");
        Some(built)
    }

    /// Records a layer; failures only cost a future rebuild.
    pub fn put(&self, key: &str, built: &BuiltLayer) {
        let r = (|| -> Result<()> {
            let p = self.entry_path(key);
            atomic::create_dir_all(atomic::parent_dir(&p))?;
            let mut b = built.clone();
            b.reused = false;
            atomic::write_file(&p, &canonical_json(&b)?)
        })();
        if let Err(e) = r {
            tracing::warn!("layer cache: {e}");
        }
    }
}

/// The writer settings that shape the output.
fn settings(opts: &LayerOptions) -> serde_json::Value {
    json!({
        "engine": ENGINE_VERSION,
        "compression": opts.compression,
        "level": match opts.compression {
            Compression::Gzip => i64::from(opts.gzip_level),
            Compression::Zstd => i64::from(opts.zstd_level),
            Compression::None => 0,
        },
        "gzip_block": gzip::BLOCK_SIZE,
        "epoch": opts.source_date_epoch,
        "reuse": opts.reuse_layers,
    })
}

fn hash(v: &serde_json::Value) -> Result<String> {
    Ok(sha256(&canonical_json(v)?).digest().to_string())
}

/// Key of a layer selected from an image.
pub fn image_key(img: &ResolvedImage, sel: &Selection, opts: &LayerOptions) -> Result<String> {
    let layers: Vec<String> = img
        .layers()
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    hash(&json!({
        "kind": "image",
        "layers": layers,
        "selection": serde_json::to_value(sel).map_err(|e| Error::json("selection", e))?,
        "settings": settings(opts),
    }))
}

/// Key of a layer made from a directory walk.
pub fn dir_key(
    fingerprint: &str,
    dest: &str,
    owner: Option<(u64, u64)>,
    opts: &LayerOptions,
) -> Result<String> {
    hash(&json!({
        "kind": "dir",
        "walk": fingerprint,
        "dest": dest,
        "owner": owner,
        "settings": settings(opts),
    }))
}
