//! `verify-chain`: each stage image records the digest of the parent it was
//! built on; a stage whose parent tag has since moved is stale. This is the
//! trap where a rebuilt `package` leaves `wrapper` on the old one while
//! every tag looks current.
//
// TODO: read the chain from a recipe/chain file as well as from flags.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::resolve_image;
use crate::labels::BASE_DIGEST;
use crate::platform::PlatformSpec;
use crate::provenance::Provenance;
use crate::reference::Reference;
use crate::transport::open_source;

/// One stage: a name (`package`, `wrapper`) and where its image is.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub reference: Reference,
}

impl std::str::FromStr for Stage {
    type Err = Error;
    /// `NAME=REF`.
    fn from_str(s: &str) -> Result<Stage> {
        let (name, r) = s
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("--stage {s:?}"), "expected NAME=REF"))?;
        if name.is_empty() {
            return Err(Error::invalid(format!("--stage {s:?}"), "empty stage name"));
        }
        Ok(Stage {
            name: name.to_string(),
            reference: Reference::parse(r)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    /// The first stage: nothing in the chain to compare with.
    Root,
    /// Its recorded parent is what the parent's reference holds now.
    Fresh,
    /// Built on a parent that is no longer current.
    Stale,
    /// Records no parent digest, so freshness cannot be shown.
    Unrecorded,
}

/// A parent digest an image records, and where it was found.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// `label org.kataglyphis.parent-digest` or `annotation org.opencontainers.image.base.digest`.
    pub source: String,
    pub digest: String,
    pub matches: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub name: String,
    pub reference: String,
    /// The image manifest's digest now.
    pub digest: String,
    /// The index the reference named, if it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    pub status: StageStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<Recorded>,
    /// The parent's current digests (manifest, and index if any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parent_current: Vec<String>,
    /// The nearest stale or unrecorded stage above this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_of: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub stages: Vec<StageReport>,
    /// Names of stages that are stale or unrecorded.
    pub stale: Vec<String>,
    pub ok: bool,
}

/// Checks every stage after the first against its parent (the stage before
/// it). `platform` picks the image when references name indexes.
pub fn verify_chain(stages: &[Stage], platform: Option<&PlatformSpec>) -> Result<ChainReport> {
    if stages.len() < 2 {
        return Err(Error::invalid(
            "verify-chain",
            "give at least two stages, parent first (--stage NAME=REF ...)",
        ));
    }
    let mut reports: Vec<StageReport> = Vec::new();
    let mut current: Vec<Vec<String>> = Vec::new();
    let mut nearest_bad: Option<String> = None;
    for (i, stage) in stages.iter().enumerate() {
        let src = open_source(&stage.reference)?;
        let img = resolve_image(src.as_ref(), platform)?;
        let digest = img.raw.digest().to_string();
        let index_digest = img.index.as_ref().map(|d| d.digest().to_string());
        let mut now = vec![digest.clone()];
        now.extend(index_digest.clone());
        let prov = Provenance::of(&img);
        let mut notes = Vec::new();
        let (status, recorded, parent_current) = if i == 0 {
            (StageStatus::Root, Vec::new(), Vec::new())
        } else {
            let parent = &stages[i - 1];
            let parent_now = &current[i - 1];
            if let Some(ps) = &prov.parent_stage {
                if *ps != parent.name {
                    notes.push(format!(
                        "records parent stage {ps:?}, the chain puts {:?} before it",
                        parent.name
                    ));
                }
            }
            let recorded: Vec<Recorded> = [
                (
                    format!("label {}", crate::labels::parent_digest()),
                    &prov.parent_digest,
                ),
                (format!("annotation {BASE_DIGEST}"), &prov.base_digest),
            ]
            .into_iter()
            .filter_map(|(source, v)| {
                v.as_ref().map(|v| {
                    let digest = bare_digest(v).to_string();
                    Recorded {
                        matches: parent_now.contains(&digest),
                        source,
                        digest,
                    }
                })
            })
            .collect();
            let status = if recorded.is_empty() {
                StageStatus::Unrecorded
            } else if recorded.iter().all(|r| r.matches) {
                StageStatus::Fresh
            } else {
                StageStatus::Stale
            };
            (status, recorded, parent_now.clone())
        };
        reports.push(StageReport {
            name: stage.name.clone(),
            reference: stage.reference.to_string(),
            digest,
            index_digest,
            status,
            recorded,
            parent_current,
            downstream_of: if status == StageStatus::Root {
                None
            } else {
                nearest_bad.clone()
            },
            notes,
        });
        if matches!(status, StageStatus::Stale | StageStatus::Unrecorded) {
            nearest_bad = Some(stage.name.clone());
        }
        current.push(now);
    }
    let stale: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.status, StageStatus::Stale | StageStatus::Unrecorded))
        .map(|r| r.name.clone())
        .collect();
    Ok(ChainReport {
        ok: stale.is_empty(),
        stale,
        stages: reports,
    })
}

/// `sha256:…` from a bare digest or a pin `REPO@sha256:…`.
fn bare_digest(v: &str) -> &str {
    v.trim()
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stages_and_pins() {
        let s: Stage = "package=oci:l:t-package-amd64".parse().unwrap();
        assert_eq!(s.name, "package");
        assert_eq!(s.reference.to_string(), "oci:l:t-package-amd64");
        assert!("nope".parse::<Stage>().is_err());
        assert!("=oci:l:t".parse::<Stage>().is_err());
        assert_eq!(bare_digest("ghcr.io/k/b@sha256:ab"), "sha256:ab");
        assert_eq!(bare_digest(" sha256:ab "), "sha256:ab");
    }
}
