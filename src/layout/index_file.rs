//! `index.json` semantics shared by layout directories and archives: tags
//! are `org.opencontainers.image.ref.name` annotations.

use oci_spec::image::{Descriptor, ImageIndex};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{canonical_json, REF_NAME};
use crate::reference::{normalize_image_name, Selector};

/// A parsed `index.json`, kept as JSON so entries written by other tools
/// survive our updates unchanged.
#[derive(Debug, Clone)]
pub struct IndexFile {
    value: Value,
    what: String,
}

impl IndexFile {
    pub fn empty() -> Self {
        IndexFile {
            value: serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": []
            }),
            what: "index.json".into(),
        }
    }

    /// Parses and validates; `what` names the file in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
        // Validate through the typed model: every entry must be a descriptor.
        let typed: ImageIndex =
            serde_json::from_value(value.clone()).map_err(|e| Error::json(what, e))?;
        for d in typed.manifests() {
            crate::digest::check_sha256(d.digest())
                .map_err(|e| Error::invalid(what, e.to_string()))?;
        }
        Ok(IndexFile {
            value,
            what: what.to_string(),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        canonical_json(&self.value)
    }

    /// All entries as descriptors.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let typed: ImageIndex =
            serde_json::from_value(self.value.clone()).map_err(|e| Error::json(&self.what, e))?;
        Ok(typed.manifests().clone())
    }

    /// `(tag, descriptor)` for every tagged entry, in file order.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|d| tag_of(&d).map(|t| (t, d)))
            .collect())
    }

    /// Resolves a selector to the entry it names. Without a selector the index
    /// must hold exactly one entry.
    pub fn resolve(&self, selector: Option<&Selector>, location: &str) -> Result<Descriptor> {
        let entries = self.entries()?;
        match selector {
            // Referrers (artifact manifests listed untagged, as oras does)
            // are documents about an image, not one to pick.
            None => match distinct(
                entries
                    .iter()
                    .filter(|d| d.artifact_type().is_none())
                    .collect(),
            )
            .as_slice()
            {
                [one] => Ok((*one).clone()),
                [] => Err(Error::not_found("any image", location)),
                many => Err(Error::invalid(
                    location,
                    format!(
                        "holds {} images; name one with :TAG or @DIGEST (tags: {})",
                        many.len(),
                        list_tags(&entries)
                    ),
                )),
            },
            Some(Selector::Tag(t)) => {
                let mut found: Vec<&Descriptor> = entries
                    .iter()
                    .filter(|d| tag_of(d).as_deref() == Some(t.as_str()))
                    .collect();
                if found.is_empty() {
                    // BuildKit and containerd write the tag part of the
                    // image name as ref.name (`latest`) and the full name
                    // in io.containerd.image.name: match that name the way
                    // containerd/nerdctl do, after normalising both sides.
                    found = entries.iter().filter(|d| names_image(d, t)).collect();
                }
                // One image under several names (BuildKit's `name=a,b`
                // writes an entry per name) is still one image.
                match distinct(found).as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => Err(Error::not_found(
                        format!("tag {t:?}"),
                        format!("{location} (tags: {})", list_tags(&entries)),
                    )),
                    _ => Err(Error::invalid(
                        location,
                        format!("tag {t:?} names more than one entry"),
                    )),
                }
            }
            Some(Selector::Digest(d)) => entries
                .iter()
                .find(|e| e.digest() == d)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("manifest {d}"), location)),
        }
    }

    /// Points `tag` at `desc`, replacing any entry that had that tag.
    /// `desc` may carry a platform and annotations; the tag annotation is
    /// added to them.
    pub fn set_tag(&mut self, tag: &str, desc: &Descriptor) -> Result<()> {
        self.remove_tag(tag);
        let mut d = desc.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.to_string(), tag.to_string());
        d.set_annotations(Some(ann));
        self.push(&d)
    }

    /// Adds an untagged entry unless the same digest is already listed.
    pub fn add_untagged(&mut self, desc: &Descriptor) -> Result<()> {
        if self.entries()?.iter().any(|e| e.digest() == desc.digest()) {
            return Ok(());
        }
        let mut d = desc.clone();
        if let Some(mut a) = d.annotations().clone() {
            a.remove(REF_NAME);
            d.set_annotations(if a.is_empty() { None } else { Some(a) });
        }
        self.push(&d)
    }

    pub fn remove_tag(&mut self, tag: &str) {
        if let Some(list) = self.manifests_mut() {
            list.retain(|e| {
                e.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(|v| v.as_str())
                    != Some(tag)
            });
        }
    }

    fn push(&mut self, d: &Descriptor) -> Result<()> {
        let v = serde_json::to_value(d).map_err(|e| Error::json("descriptor", e))?;
        let obj = self
            .value
            .as_object_mut()
            .ok_or_else(|| Error::invalid(&self.what, "not a JSON object"))?;
        let list = obj
            .entry("manifests")
            .or_insert_with(|| Value::Array(Vec::new()));
        match list.as_array_mut() {
            Some(a) => {
                a.push(v);
                Ok(())
            }
            None => Err(Error::invalid(&self.what, "\"manifests\" is not an array")),
        }
    }

    fn manifests_mut(&mut self) -> Option<&mut Vec<Value>> {
        self.value
            .get_mut("manifests")
            .and_then(|m| m.as_array_mut())
    }
}

/// Entries with distinct digests, first occurrence kept.
fn distinct(entries: Vec<&Descriptor>) -> Vec<&Descriptor> {
    let mut out: Vec<&Descriptor> = Vec::new();
    for e in entries {
        if !out.iter().any(|o| o.digest() == e.digest()) {
            out.push(e);
        }
    }
    out
}

/// The tag of an index.json entry.
pub fn tag_of(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned()
}

/// The `io.containerd.image.name` annotation: the full image name BuildKit's
/// OCI exporter and containerd's archive exporter record beside the tag-only
/// ref.name (`docker.io/library/base-riscv64:latest` beside `latest`).
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// The full image name of an index.json entry, if recorded.
pub fn image_name_of(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(CONTAINERD_IMAGE_NAME))
        .cloned()
}

/// Whether `wanted` names the entry's `io.containerd.image.name`: equal as
/// written, or equal once both are normalised as containerd's
/// `ParseDockerRef` does (`base-riscv64` = `base-riscv64:latest` =
/// `docker.io/library/base-riscv64:latest`).
fn names_image(d: &Descriptor, wanted: &str) -> bool {
    let Some(name) = image_name_of(d) else {
        return false;
    };
    if name == wanted {
        return true;
    }
    match (normalize_image_name(&name), normalize_image_name(wanted)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn list_tags(entries: &[Descriptor]) -> String {
    let tags: Vec<String> = entries
        .iter()
        .filter_map(|d| match (tag_of(d), image_name_of(d)) {
            (Some(t), Some(n)) => Some(format!("{t} ({n})")),
            (t, n) => t.or(n),
        })
        .collect();
    if tags.is_empty() {
        "none".into()
    } else {
        tags.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use oci_spec::image::MediaType;

    #[test]
    fn tags_replace_and_resolve() {
        let mut idx = IndexFile::empty();
        let a = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"a"));
        let b = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"b"));
        idx.set_tag("x", &a).unwrap();
        idx.set_tag("y", &a).unwrap();
        idx.set_tag("x", &b).unwrap();
        let tags = idx.tags().unwrap();
        assert_eq!(tags.len(), 2);
        let sel = Selector::Tag("x".into());
        assert_eq!(idx.resolve(Some(&sel), "l").unwrap().digest(), b.digest());
        let err = idx.resolve(None, "l").unwrap_err().to_string();
        assert!(err.contains("x") && err.contains("y"), "{err}");
        let err = idx
            .resolve(Some(&Selector::Tag("z".into())), "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"z\""), "{err}");
    }

    /// index.json as BuildKit's client writes it (client/ociindex): the tag
    /// part of the normalised name as ref.name, the full name beside it. Two
    /// exports into one directory keep both entries (both `latest`).
    #[test]
    fn buildkit_names_resolve_like_containerd() {
        let mut idx = IndexFile::empty();
        for (arch, body) in [("riscv64", b"r"), ("arm64", b"a")] {
            let mut d = Descriptor::new(MediaType::ImageManifest, 1, sha256(body));
            d.set_annotations(Some(
                [
                    (REF_NAME.to_string(), "latest".to_string()),
                    (
                        CONTAINERD_IMAGE_NAME.to_string(),
                        format!("docker.io/library/base-{arch}:latest"),
                    ),
                ]
                .into(),
            ));
            idx.push(&d).unwrap();
        }
        // `name=base-riscv64,ghcr.io/k/base:riscv64`: a second entry for the
        // same manifest.
        let mut again = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"r"));
        again.set_annotations(Some(
            [
                (REF_NAME.to_string(), "riscv64".to_string()),
                (
                    CONTAINERD_IMAGE_NAME.to_string(),
                    "ghcr.io/k/base:riscv64".to_string(),
                ),
            ]
            .into(),
        ));
        idx.push(&again).unwrap();
        let want = sha256(b"r");
        for t in [
            "base-riscv64",
            "base-riscv64:latest",
            "library/base-riscv64",
            "docker.io/library/base-riscv64:latest",
        ] {
            let got = idx.resolve(Some(&Selector::Tag(t.into())), "l").unwrap();
            assert_eq!(got.digest(), &want, "{t}");
        }
        let err = idx
            .resolve(Some(&Selector::Tag("latest".into())), "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one"), "{err}");
        let err = idx
            .resolve(Some(&Selector::Tag("base-amd64".into())), "l")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("latest (docker.io/library/base-arm64:latest)"),
            "{err}"
        );
    }

    /// A layout holding one image and its referrers (untagged artifact
    /// entries, as oras writes them) still names that image without a tag.
    #[test]
    fn referrers_do_not_make_an_untagged_reference_ambiguous() {
        let mut idx = IndexFile::empty();
        let image = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"i"));
        let mut sbom = Descriptor::new(MediaType::ImageManifest, 1, sha256(b"s"));
        sbom.set_artifact_type(Some(MediaType::Other("application/spdx+json".into())));
        idx.add_untagged(&sbom).unwrap();
        idx.add_untagged(&image).unwrap();
        assert_eq!(idx.resolve(None, "l").unwrap().digest(), image.digest());
    }

    #[test]
    fn malformed_index_is_rejected() {
        assert!(IndexFile::parse(b"{\"schemaVersion\":2,", "index.json").is_err());
        assert!(IndexFile::parse(
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"x"}]}"#,
            "index.json"
        )
        .is_err());
        let bad = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":1,"digest":"sha256:../../../etc/passwd"}]}"#;
        assert!(IndexFile::parse(bad.as_bytes(), "index.json").is_err());
    }
}
