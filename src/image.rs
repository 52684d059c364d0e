//! One image of a source, resolved for a platform: manifest, config and the
//! descriptors of its layers.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, Platform};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{RawManifest, MAX_METADATA_SIZE};
use crate::platform::{image_entries, platform_string, select_manifest, PlatformSpec};
use crate::transport::ImageSource;

/// A single-platform image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The descriptor of the image manifest (with the platform, when known).
    pub descriptor: Descriptor,
    pub raw: RawManifest,
    pub manifest: ImageManifest,
    /// The config as JSON: editing goes through this so fields oci-spec does
    /// not model (Healthcheck, Shell, OnBuild...) are never lost.
    pub config_json: Value,
    pub config: ImageConfiguration,
    /// When the reference named an index, the index's descriptor.
    pub index: Option<Descriptor>,
}

impl ResolvedImage {
    /// The config's labels, read from the JSON so any label survives
    /// (oci-spec's typed config drops what it does not model).
    pub fn config_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.config_json
            .get("config")
            .and_then(|c| c.get("Labels"))
            .and_then(|l| l.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The platform from the config (authoritative over index entries).
    pub fn platform(&self) -> Platform {
        let mut p = Platform::default();
        p.set_os(self.config.os().clone());
        p.set_architecture(self.config.architecture().clone());
        p.set_variant(self.config.variant().clone());
        p
    }

    pub fn platform_string(&self) -> String {
        platform_string(&self.platform())
    }

    /// The layer descriptors, bottom first.
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }

    /// `rootfs.diff_ids` from the config.
    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }
}

/// Resolves the source's reference to one image. An index needs `want`;
/// a manifest is checked against `want` when given.
pub fn resolve_image(src: &dyn ImageSource, want: Option<&PlatformSpec>) -> Result<ResolvedImage> {
    let root = src.resolve()?;
    let raw = src.read_manifest(&root)?;
    let (descriptor, raw, index) = if raw.kind().is_index() {
        let idx = raw.index()?;
        let images: Vec<&Descriptor> = image_entries(&idx).collect();
        let child = match (want, images.as_slice()) {
            (Some(want), _) => select_manifest(&idx, want, &src.name())?.clone(),
            // BuildKit wraps a single-platform image in an index as soon as
            // it carries attestations: that is still one image.
            (None, [one]) => (*one).clone(),
            (None, _) => {
                let plats: Vec<String> = images
                    .iter()
                    .filter_map(|d| d.platform().as_ref().map(platform_string))
                    .collect();
                return Err(Error::invalid(
                    src.name(),
                    format!(
                        "is a multi-platform index ({}); choose one with --arch",
                        plats.join(", ")
                    ),
                ));
            }
        };
        let child_raw = src.read_manifest(&child)?;
        if child_raw.kind().is_index() {
            return Err(Error::Unsupported(format!(
                "{}: nested index {} for {}",
                src.name(),
                child.digest(),
                want.map(|w| w.to_string()).unwrap_or_default()
            )));
        }
        (child, child_raw, Some(root))
    } else {
        (root, raw, None)
    };
    let manifest = raw.manifest()?;
    let config_bytes = src.read_blob(manifest.config())?;
    if config_bytes.len() as u64 > MAX_METADATA_SIZE {
        return Err(Error::invalid(src.name(), "config too large"));
    }
    let what = format!("{}: config {}", src.name(), manifest.config().digest());
    let config_json: Value =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::json(&what, e))?;
    let config: ImageConfiguration =
        serde_json::from_value(config_json.clone()).map_err(|e| Error::json(&what, e))?;
    if config.rootfs().diff_ids().len() != manifest.layers().len() {
        return Err(Error::invalid(
            &what,
            format!(
                "{} diff_ids for {} layers",
                config.rootfs().diff_ids().len(),
                manifest.layers().len()
            ),
        ));
    }
    let img = ResolvedImage {
        descriptor,
        raw,
        manifest,
        config_json,
        config,
        index,
    };
    if let Some(w) = want {
        if !w.matches(&img.platform()) {
            return Err(Error::PlatformNotFound {
                reference: src.name(),
                wanted: w.to_string(),
                available: img.platform_string(),
            });
        }
    }
    Ok(img)
}
