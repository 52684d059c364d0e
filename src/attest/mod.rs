//! The evidence every image `package`, `wrapper` and `build` write carries
//! (issue 14): an SPDX 2.3 SBOM of what the step added and of the base's
//! packages, and an in-toto v1 statement with a SLSA provenance v1
//! predicate. Both are attached to the image as OCI referrers
//! ([`crate::referrers`]); the image's own manifest is not changed.
//!
//! Deterministic: the same inputs give the same bytes (times from the
//! image's `created`, the document namespace from the image digest, files
//! sorted, no random ids, no wall clock).

pub mod files;
pub mod packages;
pub mod provenance;
pub mod sbom;

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;

use crate::endpoint::ImageSource;
use crate::guard::GuardReport;
use crate::layer::{ImagePath, MergedTree};
use crate::platform::TargetArch;
use crate::referrers::{Document, IN_TOTO_ARTIFACT_TYPE, SPDX_ARTIFACT_TYPE};

/// Where an added layer's files come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Selected from an input image: destination path -> source path
    /// (absolute), so relocations (`/opt/llvm-target` ->
    /// `/usr/local/llvm-target`) name their source.
    Input {
        name: String,
        paths: BTreeMap<ImagePath, ImagePath>,
    },
    /// A repository directory (as the recipe names it, relative to the
    /// recipe) placed at `dest`.
    Dir { dir: String, dest: ImagePath },
    /// Written by ocipack (`ld.so.conf.d`, alternatives, files).
    System,
}

/// A layer the step added, with its origin.
#[derive(Debug, Clone)]
pub struct AddedLayer {
    pub name: String,
    pub descriptor: Descriptor,
    pub origin: Origin,
}

/// An image the step read (base or input).
#[derive(Debug, Clone)]
pub struct InputImage {
    pub name: String,
    /// The reference as given.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
    pub platform: String,
}

/// A recipe-side file the step read (recipe, versions file).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    /// The path as given on the command line.
    pub path: String,
    pub sha256: String,
}

/// Everything the documents say about one step's image.
pub struct Evidence<'a> {
    /// `package` or `wrapper`.
    pub step: String,
    pub arch: TargetArch,
    pub build_arch: TargetArch,
    /// The image's manifest descriptor (the subject).
    pub image: Descriptor,
    /// The image's name in the documents (its tag).
    pub image_name: String,
    pub created: String,
    pub run_id: String,
    pub base: InputImage,
    pub inputs: Vec<InputImage>,
    pub layers: Vec<AddedLayer>,
    pub sources: Vec<SourceFile>,
    pub recipe_name: String,
    /// Every recipe variable with its final value.
    pub variables: BTreeMap<String, String>,
    pub sets: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    /// `--waive` from the command line.
    pub waivers: BTreeMap<String, String>,
    pub guards: &'a GuardReport,
    /// The base's merged tree and source, for its package database.
    pub base_tree: &'a MergedTree,
    pub base_src: &'a dyn ImageSource,
    /// Where the added layers were written (read back for checksums).
    pub out: &'a dyn ImageSource,
}

/// File names of the documents (the layer title: what `oras pull` writes).
pub const SBOM_TITLE: &str = "sbom.spdx.json";
pub const PROVENANCE_TITLE: &str = "provenance.intoto.json";

/// Builds both documents: the SBOM, then the provenance (which lists the
/// SBOM among its byproducts).
pub fn documents(ev: &Evidence<'_>) -> crate::Result<Vec<Document>> {
    let sbom = sbom::build(ev)?;
    let sbom_bytes = crate::manifest::canonical_json(&sbom)?;
    let prov = provenance::build(ev, &sbom_bytes)?;
    let prov_bytes = crate::manifest::canonical_json(&prov)?;
    Ok(vec![
        Document {
            artifact_type: SPDX_ARTIFACT_TYPE.into(),
            title: SBOM_TITLE.into(),
            bytes: sbom_bytes,
        },
        Document {
            artifact_type: IN_TOTO_ARTIFACT_TYPE.into(),
            title: PROVENANCE_TITLE.into(),
            bytes: prov_bytes,
        },
    ])
}

/// `sha256:<hex>` -> `<hex>`.
pub(crate) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// An SPDX timestamp (`YYYY-MM-DDThh:mm:ssZ`, no fractions) of an RFC
/// 3339 time.
pub(crate) fn spdx_time(created: &str) -> String {
    crate::imageconfig::rfc3339(crate::imageconfig::parse_rfc3339(created).unwrap_or(0))
}
