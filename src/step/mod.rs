//! Image steps (`package`, `wrapper`): the parts that do not depend on how
//! layers are written. Inputs are resolved for the target, the system
//! layer's entries are computed (files, symlinks, alternatives), the final
//! config is assembled from the base's, and the image is written and
//! tagged last, once every guard passed.

pub mod exec;
pub mod run;
pub mod system;
pub mod view;

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;
use serde_json::Value;

use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::image::{resolve_image, ResolvedImage};
use crate::imageconfig;
use crate::layout::Layout;
use crate::manifest::canonical_json;
use crate::platform::{PlatformSpec, TargetArch};
use crate::provenance::Provenance;
use crate::recipe::{InputPlatform, Recipe};
use crate::transport::ImageSource;

/// Resolves an input image for `arch`. `Target` inputs must be the target
/// platform. `Any` inputs (the cross lane's artifacts: build-arch images
/// holding target payload) take the target's entry of an index when there
/// is one, else the build arch's, and any single image.
pub fn resolve_input(
    src: &dyn ImageSource,
    platform: InputPlatform,
    arch: TargetArch,
    build_arch: TargetArch,
) -> Result<ResolvedImage> {
    let target = PlatformSpec::linux(arch);
    match platform {
        InputPlatform::Target => resolve_image(src, Some(&target)),
        InputPlatform::Any => {
            let root = src.resolve()?;
            let raw = src.read_manifest(&root)?;
            if !raw.kind().is_index() {
                return resolve_image(src, None);
            }
            match resolve_image(src, Some(&target)) {
                Ok(img) => Ok(img),
                Err(Error::PlatformNotFound { .. }) => {
                    resolve_image(src, Some(&PlatformSpec::linux(build_arch)))
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// A run id derived from what went in, so a rerun with the same inputs
/// gives the same image (pass `--run-id` to stamp a pipeline run).
pub fn derive_run_id(parts: &[&str]) -> String {
    let d = sha256(parts.join("\n").as_bytes());
    let hex = d.digest().to_string();
    format!("ocipack-{}", &hex[..16])
}

/// The image's creation time: `SOURCE_DATE_EPOCH` when given, else the
/// base's own `created` (never the wall clock: reruns must match).
pub fn created(source_date_epoch: Option<u64>, base_config: &Value) -> String {
    match source_date_epoch {
        Some(e) => imageconfig::rfc3339(e),
        None => base_config
            .get("created")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| imageconfig::rfc3339(0)),
    }
}

/// A layer added by the step, for the config's history and the report.
#[derive(Debug, Clone, Serialize)]
pub struct AddedLayer {
    /// Recipe layer name (`toolchains`, `system`...).
    pub name: String,
    pub descriptor: Descriptor,
    pub diff_id: String,
    pub entries: u64,
    /// Nothing was compressed (cache hit or source layer reused).
    pub reused: bool,
}

/// Builds the final config from the base's: platform, recipe edits, one
/// history entry per added layer, provenance, waivers.
pub fn final_config(
    base: &ResolvedImage,
    recipe: &Recipe,
    added: &[AddedLayer],
    provenance: &Provenance,
    waiver_label: Option<&str>,
    created: &str,
) -> Result<Value> {
    let mut cfg = base.config_json.clone();
    imageconfig::set_platform(&mut cfg, recipe.arch)?;
    imageconfig::apply_edit(&mut cfg, &recipe.config)?;
    for l in added {
        imageconfig::add_layer(
            &mut cfg,
            &l.diff_id,
            created,
            &format!(
                "ocipack {}: {} layer ({} entries, recipe {})",
                kind_name(recipe),
                l.name,
                l.entries,
                recipe.name
            ),
        )?;
    }
    imageconfig::set_provenance(&mut cfg, provenance)?;
    if let Some(w) = waiver_label {
        let mut labels = BTreeMap::new();
        labels.insert(crate::guard::waiver_label(), w.to_string());
        imageconfig::set_labels(&mut cfg, &labels)?;
    }
    imageconfig::set_created(&mut cfg, created)?;
    Ok(cfg)
}

fn kind_name(r: &Recipe) -> &'static str {
    match r.kind {
        crate::recipe::RecipeKind::Package => "package",
        crate::recipe::RecipeKind::Wrapper => "wrapper",
    }
}

/// Manifest annotations: the recipe's plus `base.digest`/`base.name`.
///
/// `base.name` must be a fully qualified image reference, so it is written
/// only for registry bases: a layout or archive path is not one, and
/// recording it would make the same build staged in another directory
/// produce other digests.
pub fn annotations(
    recipe: &Recipe,
    base: &crate::reference::Reference,
    base_digest: &str,
) -> BTreeMap<String, String> {
    let name = match base {
        crate::reference::Reference::Registry(r) => Some(r.to_string()),
        _ => None,
    };
    let mut a = recipe.annotations.clone();
    a.extend(imageconfig::base_annotations(name.as_deref(), base_digest));
    a
}

/// Writes config and manifest blobs (canonical JSON) into `out`; returns
/// the manifest's descriptor with the platform set. Tags are the caller's
/// last step.
pub fn write_image(
    out: &Layout,
    config: &Value,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
    arch: TargetArch,
) -> Result<(Descriptor, ImageManifest)> {
    let cfg_bytes = canonical_json(config)?;
    let cfg_desc = out.write_blob_bytes(&cfg_bytes, MediaType::ImageConfig)?;
    let mut b = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(cfg_desc)
        .layers(layers);
    if !annotations.is_empty() {
        b = b.annotations(
            annotations
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let manifest = b
        .build()
        .map_err(|e| Error::invalid("image manifest", e.to_string()))?;
    let bytes = canonical_json(&manifest)?;
    let mut desc = out.write_blob_bytes(&bytes, MediaType::ImageManifest)?;
    desc.set_platform(Some(arch.platform()));
    Ok((desc, manifest))
}

/// The base's layers must be in the output layout: copied blob by blob
/// (verified, skipped when present), never recompressed.
pub fn copy_base_layers(src: &dyn ImageSource, base: &ResolvedImage, out: &Layout) -> Result<u64> {
    let mut copied = 0;
    for d in base.layers() {
        if out.has_blob(d)? {
            continue;
        }
        let mut r = src.open_blob(d)?;
        out.put_blob(d, &mut r)?;
        copied += 1;
    }
    Ok(copied)
}

/// What a step prints with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    pub arch: TargetArch,
    pub reference: String,
    pub digest: String,
    pub size: u64,
    /// The pin to use downstream: `REF@sha256:...`.
    pub pin: String,
    pub config_digest: String,
    pub base: String,
    pub base_digest: String,
    pub run_id: String,
    /// Base layers (reused byte for byte) then added layers.
    pub base_layers: Vec<Descriptor>,
    pub added_layers: Vec<AddedLayer>,
    pub guards: crate::guard::GuardReport,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_ids_are_stable_and_input_dependent() {
        let a = derive_run_id(&["sha256:1", "sha256:2"]);
        assert_eq!(a, derive_run_id(&["sha256:1", "sha256:2"]));
        assert_ne!(a, derive_run_id(&["sha256:1", "sha256:3"]));
        assert!(a.starts_with("ocipack-") && a.len() == 24);
    }

    #[test]
    fn created_prefers_source_date_epoch() {
        let base = json!({"created": "2023-11-14T22:13:20Z"});
        assert_eq!(created(Some(0), &base), "1970-01-01T00:00:00Z");
        assert_eq!(created(None, &base), "2023-11-14T22:13:20Z");
        assert_eq!(created(None, &json!({})), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn resolves_inputs_of_the_fixtures() {
        use crate::reference::Reference;
        use crate::transport::open_source;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let open = |s: &str| {
            let r: Reference = format!("oci:{}", root.join(s).display()).parse().unwrap();
            open_source(&r).unwrap()
        };
        // The base index: the target's entry.
        let base = open("base:base");
        let img = resolve_input(
            base.as_ref(),
            InputPlatform::Target,
            TargetArch::Arm64,
            TargetArch::Amd64,
        )
        .unwrap();
        assert_eq!(img.platform_string(), "linux/arm64/v8");
        // A cross artifact is an amd64 image with riscv64 payload: "any".
        let art = open("artifacts:cross-android-riscv64");
        let img = resolve_input(
            art.as_ref(),
            InputPlatform::Any,
            TargetArch::Riscv64,
            TargetArch::Amd64,
        )
        .unwrap();
        assert_eq!(img.platform_string(), "linux/amd64");
        // ...and refused where the target platform is required.
        assert!(resolve_input(
            art.as_ref(),
            InputPlatform::Target,
            TargetArch::Riscv64,
            TargetArch::Amd64
        )
        .is_err());
    }
}
