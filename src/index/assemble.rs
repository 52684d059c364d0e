//! Index bytes from children. Deterministic: the same children in the same
//! order give the same bytes, so `--repair` reproduces a lost index exactly.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::{canonical_json, ManifestKind, RawManifest, DOCKER_MANIFEST_LIST};

/// Which kind of index to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexFormat {
    /// `application/vnd.oci.image.index.v1+json`
    Oci,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    Docker,
}

impl IndexFormat {
    /// The format to write: the one asked for, else a Docker manifest list
    /// when every child is a Docker manifest (what `docker manifest` and
    /// nerdctl produce), else OCI.
    pub fn choose(requested: Option<IndexFormat>, kinds: &[ManifestKind]) -> Result<IndexFormat> {
        let all_docker =
            !kinds.is_empty() && kinds.iter().all(|k| *k == ManifestKind::DockerManifest);
        match requested {
            Some(IndexFormat::Docker) if !all_docker => Err(Error::invalid(
                "--format docker",
                "a Docker manifest list can only list Docker manifests, and some children are OCI manifests",
            )),
            Some(f) => Ok(f),
            None if all_docker => Ok(IndexFormat::Docker),
            None => Ok(IndexFormat::Oci),
        }
    }

    pub fn media_type(self) -> MediaType {
        match self {
            IndexFormat::Oci => MediaType::ImageIndex,
            IndexFormat::Docker => MediaType::Other(DOCKER_MANIFEST_LIST.into()),
        }
    }
}

impl FromStr for IndexFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "oci" => Ok(IndexFormat::Oci),
            "docker" => Ok(IndexFormat::Docker),
            _ => Err(Error::invalid(
                "--format",
                format!("{s:?} (expected oci or docker)"),
            )),
        }
    }
}

impl fmt::Display for IndexFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IndexFormat::Oci => "oci",
            IndexFormat::Docker => "docker",
        })
    }
}

/// Serialises an index listing `entries` in the given order. No
/// annotations or timestamps: nothing but the children decides the digest.
pub fn assemble_index(entries: &[Descriptor], format: IndexFormat) -> Result<RawManifest> {
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(format.media_type())
        .manifests(entries.to_vec())
        .build()
        .map_err(|e| Error::invalid("image index", e.to_string()))?;
    let bytes = canonical_json(&index)?;
    RawManifest::from_bytes(bytes, Some(format.media_type().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::platform::TargetArch;

    fn entries() -> Vec<Descriptor> {
        TargetArch::ALL
            .iter()
            .map(|a| {
                let mut d = Descriptor::new(
                    MediaType::ImageManifest,
                    100,
                    sha256(a.oci_name().as_bytes()),
                );
                d.set_platform(Some(a.platform()));
                d
            })
            .collect()
    }

    #[test]
    fn deterministic_and_ordered() {
        let a = assemble_index(&entries(), IndexFormat::Oci).unwrap();
        let b = assemble_index(&entries(), IndexFormat::Oci).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.kind(), ManifestKind::OciIndex);
        let idx = a.index().unwrap();
        let arches: Vec<String> = idx
            .manifests()
            .iter()
            .map(|d| d.platform().as_ref().unwrap().architecture().to_string())
            .collect();
        assert_eq!(arches, ["amd64", "arm64", "riscv64"]);
        let text = String::from_utf8(a.bytes().to_vec()).unwrap();
        assert!(
            text.starts_with(r#"{"manifests":[{"digest":"sha256:"#),
            "{text}"
        );
        assert!(text.contains(r#""variant":"v8""#));
        let d = assemble_index(&entries(), IndexFormat::Docker).unwrap();
        assert_eq!(d.kind(), ManifestKind::DockerList);
        assert_ne!(d.digest(), a.digest());
    }

    #[test]
    fn format_choice() {
        use ManifestKind::*;
        assert_eq!(
            IndexFormat::choose(None, &[DockerManifest, DockerManifest]).unwrap(),
            IndexFormat::Docker
        );
        assert_eq!(
            IndexFormat::choose(None, &[DockerManifest, OciManifest]).unwrap(),
            IndexFormat::Oci
        );
        assert_eq!(
            IndexFormat::choose(Some(IndexFormat::Oci), &[DockerManifest]).unwrap(),
            IndexFormat::Oci
        );
        assert!(IndexFormat::choose(Some(IndexFormat::Docker), &[OciManifest]).is_err());
    }
}
