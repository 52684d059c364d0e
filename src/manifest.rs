//! Manifests as they are stored: raw bytes plus a typed view.
//!
//! ocipack never re-serialises a manifest it did not create, so Docker
//! schema 2 manifests and manifest lists (BuildKit, `nerdctl save`) keep
//! their bytes and digests. The typed view uses `oci-spec`: Docker's JSON
//! has the same shape, its media types land in `MediaType::Other`.

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;

use crate::digest::sha256;
use crate::error::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The annotation that names a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest manifest or config ocipack will load into memory. Layers are
/// always streamed; metadata blobs are small by nature, and a bound stops a
/// hostile descriptor from exhausting memory.
pub const MAX_METADATA_SIZE: u64 = 32 * 1024 * 1024;

/// The kinds of manifest ocipack reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl ManifestKind {
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerList)
    }

    pub fn is_docker(self) -> bool {
        matches!(
            self,
            ManifestKind::DockerManifest | ManifestKind::DockerList
        )
    }

    pub fn media_type(self) -> MediaType {
        match self {
            ManifestKind::OciManifest => MediaType::ImageManifest,
            ManifestKind::OciIndex => MediaType::ImageIndex,
            ManifestKind::DockerManifest => MediaType::Other(DOCKER_MANIFEST.into()),
            ManifestKind::DockerList => MediaType::Other(DOCKER_MANIFEST_LIST.into()),
        }
    }

    pub fn from_media_type(mt: &str) -> Option<ManifestKind> {
        match mt {
            "application/vnd.oci.image.manifest.v1+json" => Some(ManifestKind::OciManifest),
            "application/vnd.oci.image.index.v1+json" => Some(ManifestKind::OciIndex),
            DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerList),
            _ => None,
        }
    }
}

/// Whether a media type names a manifest or an index (as opposed to a blob).
pub fn is_manifest_media_type(mt: &MediaType) -> bool {
    ManifestKind::from_media_type(mt.as_ref()).is_some()
}

/// A manifest or index: its exact bytes, digest and kind.
#[derive(Debug, Clone)]
pub struct RawManifest {
    bytes: Vec<u8>,
    digest: Digest,
    kind: ManifestKind,
}

impl RawManifest {
    /// Classifies verified bytes. `declared` is the media type from the
    /// descriptor or HTTP header that led here, if any; the JSON's own
    /// `mediaType` wins when present, and the shape decides otherwise.
    pub fn from_bytes(bytes: Vec<u8>, declared: Option<&str>) -> Result<RawManifest> {
        let digest = sha256(&bytes);
        let what = format!("manifest {digest}");
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::json(&what, e))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid(&what, "not a JSON object"))?;
        if obj.get("schemaVersion").and_then(|s| s.as_u64()) != Some(2) {
            return Err(Error::invalid(
                &what,
                "schemaVersion is not 2 (Docker schema 1 manifests are not supported)",
            ));
        }
        let own = obj.get("mediaType").and_then(|m| m.as_str());
        let kind = own
            .and_then(ManifestKind::from_media_type)
            .or_else(|| declared.and_then(ManifestKind::from_media_type))
            .or_else(|| {
                if obj.contains_key("manifests") {
                    Some(ManifestKind::OciIndex)
                } else if obj.contains_key("layers") && obj.contains_key("config") {
                    Some(ManifestKind::OciManifest)
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                Error::invalid(
                    &what,
                    format!("unknown manifest media type {:?}", own.or(declared)),
                )
            })?;
        let raw = RawManifest {
            bytes,
            digest,
            kind,
        };
        // Validate the typed view now, so a malformed manifest fails here with
        // its digest rather than deep inside a command.
        if kind.is_index() {
            raw.index()?;
        } else {
            raw.manifest()?;
        }
        Ok(raw)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// A descriptor for these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.kind.media_type(), self.size(), self.digest.clone())
    }

    pub fn manifest(&self) -> Result<ImageManifest> {
        if self.kind.is_index() {
            return Err(Error::invalid(
                format!("manifest {}", self.digest),
                "is an index, not an image manifest",
            ));
        }
        let m: ImageManifest = serde_json::from_slice(&self.bytes)
            .map_err(|e| Error::json(format!("image manifest {}", self.digest), e))?;
        for d in std::iter::once(m.config()).chain(m.layers()) {
            crate::digest::check_sha256(d.digest())?;
        }
        Ok(m)
    }

    pub fn index(&self) -> Result<ImageIndex> {
        if !self.kind.is_index() {
            return Err(Error::invalid(
                format!("manifest {}", self.digest),
                "is an image manifest, not an index",
            ));
        }
        let i: ImageIndex = serde_json::from_slice(&self.bytes)
            .map_err(|e| Error::json(format!("image index {}", self.digest), e))?;
        for d in i.manifests() {
            crate::digest::check_sha256(d.digest())?;
        }
        Ok(i)
    }
}

/// Serialises with sorted object keys and no whitespace. oci-spec keeps
/// annotations and labels in `HashMap`s, whose order changes per process,
/// and structs serialise in field order: every object's keys are sorted
/// here explicitly (by bytes, as a `BTreeMap` orders them), so the bytes,
/// and so the digests, stay the same even if some dependency turns on
/// serde_json's `preserve_order` (then `Map` keeps insertion order).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value).map_err(|e| Error::json("serialising", e))?;
    serde_json::to_vec(&sorted(v)).map_err(|e| Error::json("serialising", e))
}

/// `v` with every object's keys inserted in sorted order.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Compression of a layer, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// gzip or zstd by the stream's first bytes (their magic numbers);
    /// `None` for anything else.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    pub fn of_media_type(mt: &MediaType) -> Result<Compression> {
        match mt {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(Compression::None),
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                Ok(Compression::Gzip)
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                Ok(Compression::Zstd)
            }
            MediaType::Other(s) => match s.as_str() {
                DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER => Ok(Compression::Gzip),
                DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
                "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
                other => Err(Error::Unsupported(format!("layer media type {other:?}"))),
            },
            other => Err(Error::Unsupported(format!(
                "layer media type {:?}",
                other.as_ref()
            ))),
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(Error::invalid(
                "--compression",
                format!("{s:?} (expected gzip, zstd or none)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

    #[test]
    fn docker_manifest_keeps_bytes() {
        let raw = RawManifest::from_bytes(DOCKER.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.kind(), ManifestKind::DockerManifest);
        assert_eq!(raw.bytes(), DOCKER.as_bytes());
        assert_eq!(raw.digest(), &sha256(DOCKER.as_bytes()));
        assert_eq!(raw.manifest().unwrap().config().size(), 2);
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(RawManifest::from_bytes(b"{".to_vec(), None).is_err());
        assert!(RawManifest::from_bytes(b"[]".to_vec(), None).is_err());
        assert!(RawManifest::from_bytes(br#"{"schemaVersion":1}"#.to_vec(), None).is_err());
        let bad_digest = DOCKER.replace("sha256:4413", "sha256:../");
        assert!(RawManifest::from_bytes(bad_digest.into_bytes(), None).is_err());
    }

    #[test]
    fn canonical_json_is_sorted() {
        let mut m = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b", "y"] {
            m.insert(k.to_string(), 1);
        }
        assert_eq!(
            canonical_json(&m).unwrap(),
            br#"{"a":1,"b":1,"m":1,"y":1,"z":1}"#
        );
    }

    /// Fails if key order ever follows declaration or insertion order (a
    /// dependency enabling serde_json's `preserve_order` would do that):
    /// every digest ocipack writes depends on it.
    #[test]
    fn canonical_json_key_order_is_by_bytes_whatever_the_input_order() {
        #[derive(Serialize)]
        struct S {
            zeta: u8,
            #[serde(rename = "Labels")]
            labels: std::collections::HashMap<String, u8>,
            alpha: Vec<serde_json::Value>,
        }
        let nested: serde_json::Value =
            serde_json::from_str(r#"{"y":1,"b":{"d":1,"c":2}}"#).unwrap();
        let s = S {
            zeta: 1,
            labels: [("b".to_string(), 2), ("a".to_string(), 1)].into(),
            alpha: vec![nested],
        };
        assert_eq!(
            canonical_json(&s).unwrap(),
            br#"{"Labels":{"a":1,"b":2},"alpha":[{"b":{"c":2,"d":1},"y":1}],"zeta":1}"#
        );
        // Byte order: uppercase before lowercase, `é` (0xC3...) last.
        let v: serde_json::Value =
            serde_json::from_str(r#"{"é":1,"b":2,"B":3,"a_":4,"a":5}"#).unwrap();
        assert_eq!(
            canonical_json(&v).unwrap(),
            r#"{"B":3,"a":5,"a_":4,"b":2,"é":1}"#.as_bytes()
        );
    }
}
