//! The namespace of the labels ocipack writes and reads itself (run id,
//! parent digest and stage, guard waivers): `org.kataglyphis` by default,
//! the seed pipeline's, so its images and digests stay as they are; another
//! project sets its own with `--label-prefix` / `$OCIPACK_LABEL_PREFIX`.
//! One value per process: writers and readers must agree on it.
//!
//! Also the home of the standard OCI label and annotation names ocipack
//! reads or writes, so a name is spelt in one place.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The prefix used unless another is set.
pub const DEFAULT_PREFIX: &str = "org.kataglyphis";

static PREFIX: OnceLock<String> = OnceLock::new();

/// Sets the prefix for this process, before any label is read or written.
/// It must be a reverse-DNS name (`com.example.ci`), as the OCI annotation
/// rules ask.
pub fn set_prefix(prefix: &str) -> Result<()> {
    let valid = !prefix.is_empty()
        && prefix.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if !valid {
        return Err(Error::invalid(
            format!("label prefix {prefix:?}"),
            "expected a reverse-DNS name such as com.example.ci",
        ));
    }
    if PREFIX.set(prefix.to_string()).is_err() && self::prefix() != prefix {
        return Err(Error::invalid(
            format!("label prefix {prefix:?}"),
            format!("already set to {:?}", self::prefix()),
        ));
    }
    Ok(())
}

/// The prefix in use.
pub fn prefix() -> &'static str {
    PREFIX.get().map(String::as_str).unwrap_or(DEFAULT_PREFIX)
}

/// `<prefix>.<name>`.
pub fn label(name: &str) -> String {
    format!("{}.{name}", prefix())
}

/// Label: the id of the pipeline run that built the image.
pub fn run_id() -> String {
    label("run-id")
}

/// Label: the digest of the image this one was built on.
pub fn parent_digest() -> String {
    label("parent-digest")
}

/// Label: the name of the stage this one was built on (`package`, ...).
pub fn parent_stage() -> String {
    label("parent-stage")
}

/// Label (OCI): the source revision (git commit) the image was built from.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// Manifest annotation (OCI): the digest of the base image.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Manifest annotation (OCI): the name of the base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";

/// Label: the guards waived for this image, with reasons.
pub fn guard_waivers() -> String {
    label("guard-waivers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_validation() {
        // No test sets the prefix: every pinned digest uses the default.
        assert_eq!(run_id(), "org.kataglyphis.run-id");
        assert_eq!(guard_waivers(), "org.kataglyphis.guard-waivers");
        for bad in ["", "Com.Example", "a..b", "a.b.", "a b"] {
            assert!(set_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(prefix(), DEFAULT_PREFIX);
    }
}
