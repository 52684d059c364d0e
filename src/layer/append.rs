//! A new image = a base image + new layers: config (`diff_ids`, history,
//! `created`) and manifest written in the base's own dialect (OCI or Docker
//! media types, never mixed), base blobs copied into the output layout.
//! Nothing is tagged here: the caller points a tag at the result last.

use oci_spec::image::{Descriptor, MediaType};
use serde::Serialize;
use serde_json::{json, Value};

use super::output::BuiltLayer;
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::layout::Layout;
use crate::manifest::{
    canonical_json, Compression, RawManifest, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD,
};
use crate::transport::ImageSource;

/// A layer to append and the history line describing it.
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub layer: BuiltLayer,
    pub created_by: String,
}

/// What [`append_layers`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct AppendedImage {
    /// The manifest, with the platform from the config.
    pub descriptor: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The layer media type matching the base manifest's dialect.
pub fn layer_media_type(docker: bool, compression: Compression) -> MediaType {
    match (docker, compression) {
        (false, c) => c.oci_media_type(),
        (true, Compression::Gzip) => MediaType::Other(DOCKER_LAYER_GZIP.into()),
        (true, Compression::Zstd) => MediaType::Other(DOCKER_LAYER_ZSTD.into()),
        (true, Compression::None) => {
            MediaType::Other("application/vnd.docker.image.rootfs.diff.tar".into())
        }
    }
}

/// Writes `base` + `layers` as a new image into `out`.
pub fn append_layers(
    src: &dyn ImageSource,
    base: &ResolvedImage,
    layers: &[NewLayer],
    out: &Layout,
    epoch: Option<u64>,
) -> Result<AppendedImage> {
    let docker = base.raw.kind().is_docker();
    // Base layers first: the new manifest must never reference a blob the
    // layout lacks.
    for d in base.layers() {
        if !out.has_blob(d)? {
            let mut r = src.open_blob(d)?;
            out.put_blob(d, &mut r)?;
        }
    }
    let what = format!("config of {}", src.name());
    let mut config = base.config_json.clone();
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::invalid(&what, "not a JSON object"))?;
    let created = epoch.map(crate::timestamp::rfc3339);
    if let Some(c) = &created {
        obj.insert("created".into(), json!(c));
    }
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let diff_ids = rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::invalid(&what, "rootfs.diff_ids is not a list"))?;
    for l in layers {
        diff_ids.push(json!(l.layer.diff_id.to_string()));
    }
    // History is optional; extend it when the base keeps one, so entries
    // stay aligned with layers.
    let keep_history = obj.get("history").is_some_and(Value::is_array) || base.layers().is_empty();
    if keep_history {
        let hist = obj.entry("history").or_insert_with(|| json!([]));
        if let Some(h) = hist.as_array_mut() {
            for l in layers {
                let mut e = json!({"created_by": l.created_by, "comment": "ocipack"});
                if let Some(c) = &created {
                    e["created"] = json!(c);
                }
                h.push(e);
            }
        }
    }
    let config_bytes = canonical_json(&config)?;
    let config_mt = base.manifest.config().media_type().clone();
    let config_desc = out.write_blob_bytes(&config_bytes, config_mt)?;

    let mut manifest: Value = serde_json::from_slice(base.raw.bytes())
        .map_err(|e| Error::json(format!("manifest {}", base.raw.digest()), e))?;
    let m = manifest
        .as_object_mut()
        .ok_or_else(|| Error::invalid("manifest", "not a JSON object"))?;
    m.insert(
        "config".into(),
        json!({
            "mediaType": config_desc.media_type().to_string(),
            "digest": config_desc.digest().to_string(),
            "size": config_desc.size(),
        }),
    );
    let mut descs: Vec<Descriptor> = base.layers().to_vec();
    let list = m
        .entry("layers")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| Error::invalid("manifest", "layers is not a list"))?;
    for l in layers {
        let d = &l.layer.descriptor;
        let c = Compression::of_media_type(d.media_type())?;
        let mt = layer_media_type(docker, c);
        list.push(json!({
            "mediaType": mt.to_string(),
            "digest": d.digest().to_string(),
            "size": d.size(),
        }));
        descs.push(Descriptor::new(mt, d.size(), d.digest().clone()));
    }
    let bytes = canonical_json(&manifest)?;
    let raw = RawManifest::from_bytes(bytes, Some(base.raw.kind().media_type().as_ref()))?;
    let mut desc = raw.descriptor();
    out.put_blob(&desc, &mut raw.bytes())?;
    desc.set_platform(Some(base.platform()));
    Ok(AppendedImage {
        descriptor: desc,
        config: config_desc,
        layers: descs,
    })
}
