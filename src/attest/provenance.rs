//! The in-toto Statement v1 with a SLSA provenance v1 predicate of one
//! image: subject = the image manifest digest; resolved dependencies =
//! base, every input image by digest, recipe files by SHA-256; external
//! parameters = step, arch, variables, `--set` and `--versions` values,
//! waivers; internal parameters = the run id (the same as the image's
//! run-id label) and the guards' results. No start/finish times: the
//! statement is reproducible like the image.

use serde_json::{json, Value};

use super::{hex_of, Evidence, SBOM_TITLE};
use crate::digest::sha256;
use crate::error::Result;
use crate::referrers::SPDX_ARTIFACT_TYPE;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// How ocipack builds: a recipe step over base and input images.
pub const BUILD_TYPE: &str = "urn:ocipack:build-type:recipe-step:v1";
/// The builder: ocipack itself (a purl is a URI).
pub const BUILDER_ID: &str = "pkg:cargo/ocipack";

/// Builds the statement; `sbom` is the SBOM document, listed as a byproduct.
pub fn build(ev: &Evidence<'_>, sbom: &[u8]) -> Result<Value> {
    let mut deps = vec![json!({
        "name": "base",
        "uri": ev.base.reference,
        "digest": {"sha256": hex_of(&ev.base.digest)},
        "annotations": {"platform": ev.base.platform},
    })];
    for i in &ev.inputs {
        deps.push(json!({
            "name": format!("input:{}", i.name),
            "uri": i.reference,
            "digest": {"sha256": hex_of(&i.digest)},
            "annotations": {"platform": i.platform},
        }));
    }
    for f in &ev.sources {
        deps.push(json!({
            "name": f.name,
            "uri": f.path,
            "digest": {"sha256": f.sha256},
        }));
    }
    let inputs: serde_json::Map<String, Value> = ev
        .inputs
        .iter()
        .map(|i| (i.name.clone(), Value::String(i.reference.clone())))
        .collect();
    let guards = serde_json::to_value(ev.guards).map_err(|e| crate::Error::json("guards", e))?;
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": ev.image_name,
            "digest": {"sha256": hex_of(ev.image.digest().as_ref())},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "step": ev.step,
                    "recipe": ev.recipe_name,
                    "targetArch": ev.arch.oci_name(),
                    "base": ev.base.reference,
                    "inputs": inputs,
                    "variables": ev.variables,
                    "sets": ev.sets,
                    "versions": ev.versions,
                    "waivers": ev.waivers,
                },
                "internalParameters": {
                    "runId": ev.run_id,
                    "buildArch": ev.build_arch.oci_name(),
                    "created": ev.created,
                    "guards": guards,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"ocipack": env!("CARGO_PKG_VERSION")},
                },
                "metadata": {"invocationId": ev.run_id},
                "byproducts": [{
                    "name": SBOM_TITLE,
                    "digest": {"sha256": hex_of(sha256(sbom).as_ref())},
                    "mediaType": SPDX_ARTIFACT_TYPE,
                }],
            },
        },
    }))
}
