//! `ocipack inspect`: what an image or index is, as data.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::image::resolve_image;
use crate::platform::{is_attestation, platform_string, PlatformSpec};
use crate::transport::ImageSource;

#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    pub created: Option<String>,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: String,
    pub config_digest: String,
    pub config: ConfigSummary,
    pub annotations: BTreeMap<String, String>,
    pub layers: Vec<LayerSummary>,
    pub total_layer_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<String>,
    /// A BuildKit attestation manifest (in-toto statements about a sibling
    /// image), not an image.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attestation: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InspectReport {
    Image {
        reference: String,
        /// When the reference named an index, its digest.
        index_digest: Option<String>,
        #[serde(flatten)]
        image: Box<ImageInfo>,
    },
    Index {
        reference: String,
        media_type: String,
        digest: String,
        size: u64,
        manifests: Vec<IndexEntry>,
    },
}

/// Inspects what `src` names; an index is summarised unless `want` picks
/// one of its images.
pub fn inspect(src: &dyn ImageSource, want: Option<&PlatformSpec>) -> Result<InspectReport> {
    let root = src.resolve()?;
    let raw = src.read_manifest(&root)?;
    if raw.kind().is_index() && want.is_none() {
        let idx = raw.index()?;
        return Ok(InspectReport::Index {
            reference: src.name(),
            media_type: raw.kind().media_type().to_string(),
            digest: raw.digest().to_string(),
            size: raw.size(),
            manifests: idx
                .manifests()
                .iter()
                .map(|d| IndexEntry {
                    media_type: d.media_type().to_string(),
                    digest: d.digest().to_string(),
                    size: d.size(),
                    platform: d.platform().as_ref().map(platform_string),
                    attestation: is_attestation(d),
                })
                .collect(),
        });
    }
    let img = resolve_image(src, want)?;
    let cfg = img.config.config().clone().unwrap_or_default();
    let layers: Vec<LayerSummary> = img
        .layers()
        .iter()
        .zip(img.diff_ids())
        .map(|(d, id)| LayerSummary {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size(),
            diff_id: id.clone(),
        })
        .collect();
    Ok(InspectReport::Image {
        reference: src.name(),
        index_digest: img.index.as_ref().map(|d| d.digest().to_string()),
        image: Box::new(ImageInfo {
            media_type: img.raw.kind().media_type().to_string(),
            digest: img.raw.digest().to_string(),
            size: img.raw.size(),
            platform: img.platform_string(),
            config_digest: img.manifest.config().digest().to_string(),
            config: ConfigSummary {
                created: img.config.created().clone(),
                env: cfg.env().clone().unwrap_or_default(),
                entrypoint: cfg.entrypoint().clone(),
                cmd: cfg.cmd().clone(),
                user: cfg.user().clone(),
                working_dir: cfg.working_dir().clone(),
                labels: cfg
                    .labels()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            },
            annotations: img
                .manifest
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            total_layer_size: layers.iter().map(|l| l.size).sum(),
            layers,
        }),
    })
}
