//! Provenance recorded in images: which run built them and from which
//! parent. One type for both sides: `package`/`wrapper` write it
//! ([`crate::imageconfig::set_provenance`]), the index gates and
//! `verify-chain` ([`chain`]) read it.

pub mod chain;

use serde::Serialize;

use crate::image::ResolvedImage;
use crate::labels::{BASE_DIGEST, BASE_NAME, REVISION};

/// What an image says about its origin. Empty fields were not recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_name: Option<String>,
}

impl Provenance {
    /// What a step records on the image it writes (the labels
    /// [`crate::imageconfig::set_provenance`] sets).
    pub fn stamp(run_id: String, parent_digest: String, parent_stage: Option<String>) -> Self {
        Provenance {
            run_id: Some(run_id),
            parent_digest: Some(parent_digest),
            parent_stage,
            ..Provenance::default()
        }
    }

    /// Reads config labels and manifest annotations. Blank values count as
    /// absent: an empty label is how a build script says "unknown".
    pub fn of(img: &ResolvedImage) -> Provenance {
        let labels = img.config_labels();
        let ann = img.manifest.annotations().clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let annotation = |k: &str| ann.get(k).filter(|v| !v.trim().is_empty()).cloned();
        Provenance {
            run_id: label(&crate::labels::run_id()),
            parent_stage: label(&crate::labels::parent_stage()),
            parent_digest: label(&crate::labels::parent_digest()),
            revision: label(REVISION),
            base_digest: annotation(BASE_DIGEST),
            base_name: annotation(BASE_NAME),
        }
    }

    /// The parent digest the image records: the provenance label, else the
    /// `base.digest` annotation.
    pub fn recorded_parent(&self) -> Option<&str> {
        self.parent_digest
            .as_deref()
            .or(self.base_digest.as_deref())
    }
}
