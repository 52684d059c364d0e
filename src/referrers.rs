//! OCI 1.1 referrers: documents about an image (its SBOM, its provenance)
//! stored as artifact manifests whose `subject` is the image's manifest.
//!
//! An artifact manifest is a plain OCI image manifest with an
//! `artifactType`, the empty config (`{}`) and one layer holding the
//! document, so every registry that stores images stores it, and the
//! image's own manifest and digest are untouched. Where they are found:
//! - a layout: untagged `index.json` entries (as oras writes them);
//! - a registry: the referrers API (`GET /v2/NAME/referrers/DIGEST`), else
//!   the referrers tag schema: an index tagged `sha256-<hex>` of the
//!   subject (OCI distribution spec 1.1), see `registry::referrers`.

use std::collections::{BTreeMap, HashSet};

use oci_spec::image::{Descriptor, MediaType};
use serde::Serialize;
use serde_json::{json, Value};

use crate::digest::sha256;
use crate::endpoint::{ImageSink, ImageSource};
use crate::error::{Error, Result};
use crate::manifest::{canonical_json, RawManifest};

/// `artifactType` of an SPDX SBOM (what BuildKit, syft and oras use).
pub const SPDX_ARTIFACT_TYPE: &str = "application/spdx+json";
/// `artifactType` of an in-toto statement.
pub const IN_TOTO_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// The empty config of an artifact manifest (`{}`).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The layer title annotation (the file name `oras pull` writes).
pub const TITLE: &str = "org.opencontainers.image.title";
/// The creation time annotation.
pub const CREATED: &str = "org.opencontainers.image.created";

/// One document to attach.
#[derive(Debug, Clone)]
pub struct Document {
    /// The artifact type, also the layer's media type.
    pub artifact_type: String,
    /// File name, in the layer's title annotation.
    pub title: String,
    pub bytes: Vec<u8>,
}

/// An artifact manifest ready to store: its own bytes and the blobs it
/// names (the empty config and the document).
pub struct Artifact {
    pub manifest: RawManifest,
    /// The descriptor index.json and referrers indexes list: media type,
    /// digest, size, `artifactType` and the manifest's annotations.
    pub descriptor: Descriptor,
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

fn empty_config() -> (Descriptor, Vec<u8>) {
    let bytes = b"{}".to_vec();
    (
        Descriptor::new(MediaType::EmptyJSON, 2, sha256(&bytes)),
        bytes,
    )
}

fn subject_json(subject: &Descriptor) -> Value {
    json!({
        "mediaType": subject.media_type().to_string(),
        "digest": subject.digest().to_string(),
        "size": subject.size(),
    })
}

/// Builds the artifact manifest for `doc` about `subject`. Canonical JSON,
/// `created` from the image: the same image and document give the same
/// artifact digest.
pub fn artifact(subject: &Descriptor, doc: &Document, created: &str) -> Result<Artifact> {
    let (cfg, cfg_bytes) = empty_config();
    let layer = Descriptor::new(
        MediaType::Other(doc.artifact_type.clone()),
        doc.bytes.len() as u64,
        sha256(&doc.bytes),
    );
    let annotations: BTreeMap<String, String> = [(CREATED.to_string(), created.to_string())].into();
    let v = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": doc.artifact_type,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": cfg.digest().to_string(),
            "size": 2,
        },
        "layers": [{
            "mediaType": doc.artifact_type,
            "digest": layer.digest().to_string(),
            "size": layer.size(),
            "annotations": { TITLE: doc.title },
        }],
        "subject": subject_json(subject),
        "annotations": annotations,
    });
    let manifest = RawManifest::from_bytes(
        canonical_json(&v)?,
        Some("application/vnd.oci.image.manifest.v1+json"),
    )?;
    let mut descriptor = manifest.descriptor();
    descriptor.set_artifact_type(Some(MediaType::Other(doc.artifact_type.clone())));
    descriptor.set_annotations(Some(annotations.into_iter().collect()));
    Ok(Artifact {
        manifest,
        descriptor,
        blobs: vec![(cfg, cfg_bytes), (layer, doc.bytes.clone())],
    })
}

/// Stores `docs` about `subject` in `sink`: blobs, then each artifact
/// manifest as a referrer. Returns the artifacts' descriptors (empty when
/// the sink cannot hold referrers, e.g. a Docker archive).
pub fn attach(
    sink: &dyn ImageSink,
    subject: &Descriptor,
    docs: &[Document],
    created: &str,
) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for doc in docs {
        let a = artifact(subject, doc, created)?;
        for (d, bytes) in &a.blobs {
            if !sink.has_blob(d)? {
                sink.put_blob(d, &mut bytes.as_slice())?;
            }
        }
        if sink.put_referrer(&a.manifest, &a.descriptor, subject)? {
            out.push(a.descriptor);
        }
    }
    Ok(out)
}

/// The descriptor a referrers list gives for a stored artifact manifest:
/// its media type, digest, size, `artifactType` (the manifest's, else its
/// config's media type, as the distribution spec says) and annotations.
pub fn referrer_descriptor(raw: &RawManifest) -> Result<Descriptor> {
    let m = raw.manifest()?;
    let mut d = raw.descriptor();
    let at = m
        .artifact_type()
        .clone()
        .unwrap_or_else(|| m.config().media_type().clone());
    d.set_artifact_type(Some(at));
    d.set_annotations(m.annotations().clone());
    Ok(d)
}

/// Whether `raw` is an image manifest whose subject is `subject`.
pub fn refers_to(raw: &RawManifest, subject: &str) -> bool {
    !raw.kind().is_index()
        && raw
            .manifest()
            .ok()
            .and_then(|m| m.subject().clone())
            .is_some_and(|s| s.digest().as_ref() == subject)
}

/// The referrers of `subject` among the entries of a layout's or
/// archive's `index.json`: every image manifest entry whose manifest names
/// `subject` (an artifact is read only when its entry could be one: an
/// image manifest, not the subject itself).
pub fn in_index(
    index: &crate::layout::IndexFile,
    subject: &Descriptor,
    read: impl Fn(&Descriptor) -> Result<RawManifest>,
) -> Result<Vec<Descriptor>> {
    let mut out: Vec<Descriptor> = Vec::new();
    for e in index.entries()? {
        if e.digest() == subject.digest()
            || !matches!(e.media_type(), MediaType::ImageManifest)
            || out.iter().any(|o| o.digest() == e.digest())
        {
            continue;
        }
        let raw = read(&e)?;
        if refers_to(&raw, subject.digest().as_ref()) {
            out.push(referrer_descriptor(&raw)?);
        }
    }
    Ok(out)
}

/// Adds `desc` to a referrers index (the tag schema's) unless its digest
/// is listed; returns whether it changed.
pub fn add_to_index(index: &mut Value, desc: &Descriptor) -> Result<bool> {
    let list = index
        .as_object_mut()
        .ok_or_else(|| Error::invalid("referrers index", "not a JSON object"))?
        .entry("manifests")
        .or_insert_with(|| Value::Array(Vec::new()));
    let arr = list
        .as_array_mut()
        .ok_or_else(|| Error::invalid("referrers index", "\"manifests\" is not an array"))?;
    let digest = desc.digest().to_string();
    if arr
        .iter()
        .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
    {
        return Ok(false);
    }
    arr.push(serde_json::to_value(desc).map_err(|e| Error::json("descriptor", e))?);
    Ok(true)
}

/// An empty referrers index.
pub fn empty_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    })
}

/// The tag of the referrers tag schema for `digest`: `sha256-<hex>`.
pub fn schema_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// One referrer, for listings and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Referrer {
    /// The manifest it refers to.
    pub subject: String,
    /// The subject's platform, when it is an entry of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Referrer {
    fn of(subject: &Descriptor, platform: Option<String>, d: &Descriptor) -> Referrer {
        Referrer {
            subject: subject.digest().to_string(),
            platform,
            digest: d.digest().to_string(),
            media_type: d.media_type().to_string(),
            artifact_type: d
                .artifact_type()
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            size: d.size(),
            annotations: d
                .annotations()
                .as_ref()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }
    }
}

/// The referrers of what `src` resolves to: of the manifest, or of an
/// index and every one of its entries (each per-arch image's documents are
/// found from the index digest alone). Sorted by subject order, then
/// artifact type and digest; `artifact_type` filters.
pub fn list(src: &dyn ImageSource, artifact_type: Option<&str>) -> Result<Vec<Referrer>> {
    let root = src.resolve()?;
    let raw = src.read_manifest(&root)?;
    let mut subjects: Vec<(Descriptor, Option<String>)> = vec![(raw.descriptor(), None)];
    if raw.kind().is_index() {
        for child in raw.index()?.manifests() {
            let p = child
                .platform()
                .as_ref()
                .map(crate::platform::platform_string);
            subjects.push((child.clone(), p));
        }
    }
    let mut out = Vec::new();
    for (s, platform) in subjects {
        let mut found: Vec<Referrer> = src
            .referrers(&s)?
            .iter()
            .map(|d| Referrer::of(&s, platform.clone(), d))
            .filter(|r| artifact_type.is_none_or(|t| r.artifact_type == t))
            .collect();
        found.sort_by(|a, b| (&a.artifact_type, &a.digest).cmp(&(&b.artifact_type, &b.digest)));
        out.extend(found);
    }
    Ok(out)
}

/// Copies the referrers of `subject` from `src` to `dst` (blobs, then each
/// artifact manifest as a referrer). Returns how many were stored.
pub fn copy_referrers(
    src: &dyn ImageSource,
    subject: &Descriptor,
    dst: &dyn ImageSink,
) -> Result<usize> {
    let mut n = 0;
    let mut seen = HashSet::new();
    for d in src.referrers(subject)? {
        if !seen.insert(d.digest().to_string()) {
            continue;
        }
        let raw = src.read_manifest(&d)?;
        if !refers_to(&raw, subject.digest().as_ref()) {
            return Err(Error::invalid(
                format!("{} referrer {}", src.name(), d.digest()),
                format!("its subject is not {}", subject.digest()),
            ));
        }
        let m = raw.manifest()?;
        for b in std::iter::once(m.config()).chain(m.layers()) {
            if !dst.has_blob(b)? {
                dst.put_blob_from(b, src)?;
            }
        }
        if dst.put_referrer(&raw, &referrer_descriptor(&raw)?, subject)? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::new(MediaType::ImageManifest, 123, sha256(b"image"))
    }

    #[test]
    fn artifact_manifests_are_canonical_and_refer_to_the_subject() {
        let doc = Document {
            artifact_type: SPDX_ARTIFACT_TYPE.into(),
            title: "sbom.spdx.json".into(),
            bytes: b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
        };
        let a = artifact(&subject(), &doc, "1970-01-01T00:00:00Z").unwrap();
        let b = artifact(&subject(), &doc, "1970-01-01T00:00:00Z").unwrap();
        assert_eq!(a.manifest.digest(), b.manifest.digest());
        assert!(refers_to(&a.manifest, subject().digest().as_ref()));
        assert!(!refers_to(&a.manifest, sha256(b"other").as_ref()));
        let m = a.manifest.manifest().unwrap();
        assert_eq!(
            m.artifact_type().as_ref().map(|t| t.to_string()).as_deref(),
            Some(SPDX_ARTIFACT_TYPE)
        );
        assert_eq!(m.config().media_type(), &MediaType::EmptyJSON);
        // The empty config is the spec's: `{}`, 2 bytes.
        assert_eq!(
            m.config().digest().to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let d = referrer_descriptor(&a.manifest).unwrap();
        assert_eq!(d.artifact_type(), a.descriptor.artifact_type());
        assert_eq!(d.digest(), a.descriptor.digest());
    }

    #[test]
    fn referrers_index_adds_once() {
        let mut idx = empty_index();
        let d = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"x"));
        assert!(add_to_index(&mut idx, &d).unwrap());
        assert!(!add_to_index(&mut idx, &d).unwrap());
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(schema_tag("sha256:abc"), "sha256-abc");
    }
}
