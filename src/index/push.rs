//! Pushing one stage image (`build --push-all`'s intermediates): by digest,
//! then its tag, then a fresh read of the tag, so the pin handed on is what
//! the destination serves and a tag that moved meanwhile is caught.

use serde::Serialize;

use crate::copy::{copy_image, CopyOptions};
use crate::digest::parse_sha256;
use crate::error::{Error, Result};
use crate::index::gates::Gate;
use crate::platform::PlatformSpec;
use crate::reference::Reference;
use crate::registry::{Progress, RegistryOptions, RegistrySink, TransferLog};
use crate::transport::{open_sink_with, open_source_with, ImageSink, ImageSource};

/// One image pushed.
#[derive(Debug, Clone, Serialize)]
pub struct PushedImage {
    pub source: String,
    pub destination: String,
    pub digest: String,
    /// `REPO@sha256:…` of what the destination serves for the tag.
    pub pin: String,
    /// The tag re-read to another digest and `force` let it through.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferLog>,
}

/// Copies the single image `src` names to `dest` (which needs a tag) and
/// re-reads `dest`'s tag through a new connection. A tag that then resolves
/// to another digest fails the freshness gate unless `force`.
pub fn push_image(
    src: &Reference,
    dest: &Reference,
    registry: &RegistryOptions,
    force: bool,
) -> Result<PushedImage> {
    push_platform_image(src, None, dest, registry, force)
}

/// [`push_image`] of one platform's image: from an index, that child only
/// (a multi-arch base pushed as `<tag>-base-<arch>`); a single image must
/// be of that platform.
pub fn push_platform_image(
    src: &Reference,
    platform: Option<&PlatformSpec>,
    dest: &Reference,
    registry: &RegistryOptions,
    force: bool,
) -> Result<PushedImage> {
    let source = open_source_with(src, registry)?;
    push_source_image(source.as_ref(), src, platform, dest, registry, force)
}

/// [`push_platform_image`] from a source already open (`name` is its
/// reference, for the report): a build republishes its base from the
/// source it built on, so the pushed base is the one the packages name
/// (not what the tag says by then) and its blobs are not downloaded again.
/// `registry` is the destination's.
pub fn push_source_image(
    source: &dyn ImageSource,
    name: &Reference,
    platform: Option<&PlatformSpec>,
    dest: &Reference,
    registry: &RegistryOptions,
    force: bool,
) -> Result<PushedImage> {
    let tag = dest.tag().ok_or_else(|| Error::Reference {
        input: dest.to_string(),
        reason: "needs a tag".into(),
    })?;
    source.resolve()?;
    let (sink, log): (Box<dyn ImageSink>, _) = match dest {
        Reference::Registry(r) => {
            let s = RegistrySink::open(r, registry)?;
            let log = s.log();
            (Box::new(s), Some(log))
        }
        other => (open_sink_with(other, registry)?, None),
    };
    let opts = CopyOptions {
        tags: vec![tag.to_string()],
        platform: platform.cloned(),
        referrers: true,
        ..CopyOptions::default()
    };
    let report = copy_image(source, sink, &opts)?;
    let quiet = RegistryOptions {
        progress: Progress::hidden(),
        ..registry.clone()
    };
    let now = open_source_with(dest, &quiet)?.resolve()?;
    let mut forced = false;
    if now.digest().to_string() != report.digest {
        if !force {
            return Err(Error::Gate {
                gate: Gate::Freshness.to_string(),
                reason: format!(
                    "{dest} resolves to {} after pushing {}",
                    now.digest(),
                    report.digest
                ),
            });
        }
        forced = true;
    }
    let pushed = parse_sha256(&report.digest)?;
    Ok(PushedImage {
        source: name.to_string(),
        destination: dest.to_string(),
        digest: report.digest.clone(),
        pin: dest.pin(if forced { now.digest() } else { &pushed }),
        forced,
        transfer: log.and_then(|l| l.lock().ok().map(|l| l.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_between_layouts_and_pins_what_is_served() {
        let tmp = tempfile::tempdir().unwrap();
        let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/base");
        let src = Reference::parse(&format!("oci:{}:base-arm64", fx.display())).unwrap();
        let dest =
            Reference::parse(&format!("oci:{}:t-package-arm64", tmp.path().display())).unwrap();
        let p = push_image(&src, &dest, &RegistryOptions::default(), false).unwrap();
        assert_eq!(p.pin, format!("oci:{}@{}", tmp.path().display(), p.digest));
        assert!(!p.forced && p.transfer.is_none());
        let untagged = Reference::parse(&format!("oci:{}", tmp.path().display())).unwrap();
        assert!(push_image(&src, &untagged, &RegistryOptions::default(), false).is_err());
    }

    #[test]
    fn pushes_one_platform_of_an_index() {
        let tmp = tempfile::tempdir().unwrap();
        let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/base");
        let index = Reference::parse(&format!("oci:{}:base", fx.display())).unwrap();
        let single = Reference::parse(&format!("oci:{}:base-riscv64", fx.display())).unwrap();
        let dest =
            Reference::parse(&format!("oci:{}:t-base-riscv64", tmp.path().display())).unwrap();
        let riscv = PlatformSpec::linux(crate::platform::TargetArch::Riscv64);
        let opts = RegistryOptions::default();
        // The index's riscv64 child is the image tagged base-riscv64.
        let p = push_platform_image(&index, Some(&riscv), &dest, &opts, false).unwrap();
        let want = crate::transport::open_source_with(&single, &opts)
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(p.digest, want.digest().to_string());
        // Without a platform an index is refused; a single image of another
        // platform too.
        assert!(push_image(&index, &dest, &opts, false).is_err());
        let arm = PlatformSpec::linux(crate::platform::TargetArch::Arm64);
        assert!(push_platform_image(&single, Some(&arm), &dest, &opts, false).is_err());
    }
}
