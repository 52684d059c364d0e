//! Verifying an image's layers without keeping anything from them, for
//! callers that reuse a base's blobs and `diff_id`s byte for byte (`append`
//! copies the base's layers and `rootfs.diff_ids` into the new image
//! without otherwise reading them).
//!
//! Each layer is decoded to its end and checked against its `diff_id` (see
//! [`Check::Full`]). With a cache, a verified (blob digest, diff_id) pair
//! is remembered as an empty marker file, written only after the check
//! passed, so a rerun reads nothing; equal blob digests mean equal bytes.

use std::path::PathBuf;

use oci_spec::image::Descriptor;

use super::cache::LayerCache;
use super::scan::{walk_layer, Check};
use crate::atomic;
use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::transport::ImageSource;

fn marker(cache: &LayerCache, desc: &Descriptor, diff_id: &str) -> PathBuf {
    let key = sha256(format!("verified-1 {} {diff_id}", desc.digest()).as_bytes());
    cache.dir().join("verified").join(key.digest())
}

/// Verifies every layer of `img` (blob digest, compression trailers,
/// diff_id), skipping pairs the cache records as verified.
pub fn verify_layers(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    cache: Option<&LayerCache>,
) -> Result<()> {
    for (i, desc) in img.layers().iter().enumerate() {
        let diff_id = img.diff_ids().get(i).ok_or_else(|| {
            Error::invalid(
                desc.digest().to_string(),
                "the config's rootfs.diff_ids has no entry for this layer",
            )
        })?;
        let m = cache.map(|c| marker(c, desc, diff_id));
        if m.as_ref().is_some_and(|m| m.is_file()) {
            continue;
        }
        walk_layer(src, desc, Check::Full(diff_id), |_, _| Ok(true))?;
        if let Some(m) = m {
            let r = atomic::create_dir_all(atomic::parent_dir(&m))
                .and_then(|()| atomic::write_file(&m, b""));
            if let Err(e) = r {
                tracing::warn!("layer cache: {e}");
            }
        }
    }
    Ok(())
}
