//! Digest-preserving copies between any source and sink.
//!
//! Order of writing: every blob, then image manifests, then indexes, then
//! tags, so no tag ever points at something incomplete.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use oci_spec::image::Descriptor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::RawManifest;
use crate::platform::{platform_string, select_manifest, PlatformSpec};
use crate::transport::{ImageSink, ImageSource};

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Copy every platform of an index (and the index itself).
    pub all: bool,
    /// Copy only this platform's image.
    pub platform: Option<PlatformSpec>,
    /// Tags to set on the destination (empty: untagged unless the sink tags).
    pub tags: Vec<String>,
    /// Without tags, list the copied image as an untagged `index.json`
    /// entry of a layout or archive destination, so that it is not garbage
    /// (`umoci gc` deletes what index.json does not reach).
    pub record_untagged: bool,
    /// Also copy each image's referrers (SBOM, provenance: artifact
    /// manifests whose subject it is), after the image and before tags.
    pub referrers: bool,
}

/// What a copy did, for `--json` and the human summary.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub tags: Vec<String>,
    pub platforms: Vec<String>,
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    pub bytes_copied: u64,
    pub manifests: usize,
    /// Referrers copied along (`--no-referrers`: none).
    pub referrers: usize,
}

/// Copies what `src` names into `dst`, preserving every byte and digest.
/// The sink is committed only if everything succeeded.
pub fn copy_image(
    src: &dyn ImageSource,
    dst: Box<dyn ImageSink>,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let root = src.resolve()?;
    let root_raw = src.read_manifest(&root)?;
    let mut images: Vec<(Descriptor, RawManifest)> = Vec::new();
    let mut indexes: Vec<RawManifest> = Vec::new();
    let mut platforms = Vec::new();
    let top: Descriptor;
    if root_raw.kind().is_index() {
        let idx = root_raw.index()?;
        if opts.all {
            for child in idx.manifests() {
                let raw = src.read_manifest(child)?;
                if raw.kind().is_index() {
                    return Err(Error::Unsupported(format!(
                        "{}: nested index {}",
                        src.name(),
                        child.digest()
                    )));
                }
                match child.platform() {
                    Some(p) if !crate::platform::is_attestation(child) => {
                        platforms.push(platform_string(p))
                    }
                    _ => {}
                }
                images.push((child.clone(), raw));
            }
            top = with_media_type(&root, &root_raw);
            indexes.push(root_raw);
        } else if let Some(want) = &opts.platform {
            let child = select_manifest(&idx, want, &src.name())?.clone();
            let raw = src.read_manifest(&child)?;
            if let Some(p) = child.platform() {
                platforms.push(platform_string(p));
            }
            top = child.clone();
            images.push((child, raw));
        } else {
            let plats: Vec<String> = crate::platform::image_entries(&idx)
                .filter_map(|d| d.platform().as_ref().map(platform_string))
                .collect();
            return Err(Error::invalid(
                src.name(),
                format!(
                    "is a multi-platform index ({}); pass --all or --arch",
                    plats.join(", ")
                ),
            ));
        }
    } else {
        let img = crate::image::resolve_image(src, opts.platform.as_ref())?;
        let mut d = with_media_type(&root, &root_raw);
        d.set_platform(Some(img.platform()));
        platforms.push(img.platform_string());
        top = d;
        images.push((top.clone(), root_raw));
    }

    // Every distinct blob, in a deterministic order.
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for (_, raw) in &images {
        let m = raw.manifest()?;
        for d in std::iter::once(m.config()).chain(m.layers()) {
            if seen.insert(d.digest().to_string()) {
                blobs.push(d.clone());
            }
        }
    }

    let copied = AtomicUsize::new(0);
    let skipped = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let copy_one = |d: &Descriptor| -> Result<()> {
        if dst.has_blob(d)? {
            skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if dst.put_blob_from(d, src)? {
            copied.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(d.size(), Ordering::Relaxed);
        } else {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    run_parallel(&blobs, dst.max_parallel(), copy_one)?;

    for (_, raw) in &images {
        dst.put_manifest(raw)?;
    }
    let mut referrers = 0;
    if opts.referrers {
        for (_, raw) in images.iter().map(|(d, r)| (d, r)) {
            referrers += crate::referrers::copy_referrers(src, &raw.descriptor(), dst.as_ref())?;
        }
    }
    for raw in &indexes {
        dst.put_manifest(raw)?;
    }
    let tag_list: Vec<(String, Descriptor)> =
        opts.tags.iter().map(|t| (t.clone(), top.clone())).collect();
    if !tag_list.is_empty() {
        dst.set_tags(&tag_list)?;
    } else if opts.record_untagged {
        dst.record_untagged(&top)?;
    }
    let destination = dst.name();
    dst.commit()?;
    Ok(CopyReport {
        source: src.name(),
        destination,
        media_type: top.media_type().to_string(),
        digest: top.digest().to_string(),
        size: top.size(),
        tags: opts.tags.clone(),
        platforms,
        blobs_copied: copied.into_inner(),
        blobs_skipped: skipped.into_inner(),
        bytes_copied: bytes.into_inner(),
        manifests: images.len() + indexes.len(),
        referrers,
    })
}

fn with_media_type(d: &Descriptor, raw: &RawManifest) -> Descriptor {
    let mut out = Descriptor::new(raw.kind().media_type(), d.size(), d.digest().clone());
    out.set_platform(d.platform().clone());
    out
}

/// Runs `f` over `items` with up to `n` threads; the first error wins and
/// stops the others from starting new items.
pub fn run_parallel<T: Sync>(
    items: &[T],
    n: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let n = n.max(1).min(items.len().max(1));
    if n == 1 {
        return items.iter().try_for_each(f);
    }
    let next = AtomicUsize::new(0);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| loop {
                if first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                if let Err(e) = f(item) {
                    if let Ok(mut slot) = first_err.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match first_err.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}
