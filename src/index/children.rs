//! The per-arch images an index is made of: naming them from a template,
//! resolving them, and the platform each index entry gets.

use oci_spec::image::{Arch, Descriptor, Platform};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::{resolve_image, ResolvedImage};
use crate::manifest::{ManifestKind, RawManifest};
use crate::platform::{platform_string, TargetArch};
use crate::provenance::Provenance;
use crate::reference::{validate_tag, Reference};
use crate::registry::RegistryOptions;
use crate::transport::{open_source_with, ImageSource};

/// The pipeline's naming: the per-arch tag is the index tag plus `-<arch>`
/// (`:latest-cross` -> `:latest-cross-riscv64`).
pub const DEFAULT_TEMPLATE: &str = "{image}-{arch}";

/// Names a child from a template. Placeholders: `{image}` (the index
/// reference as written, e.g. `oci:out:latest-cross`), `{tag}` (its tag),
/// `{arch}` (`amd64`, `arm64`, `riscv64`). A result that is a bare tag
/// (`{tag}-{arch}`) stays in the index's store; anything else is parsed as
/// a full reference (`oci:other:{tag}-{arch}`).
pub fn expand_template(image: &Reference, template: &str, arch: TargetArch) -> Result<Reference> {
    let tag = image.tag().ok_or_else(|| Error::Reference {
        input: image.to_string(),
        reason: "the index reference needs a tag (e.g. :latest-cross)".into(),
    })?;
    let expanded = template
        .replace("{image}", &image.to_string())
        .replace("{tag}", tag)
        .replace("{arch}", arch.oci_name());
    if validate_tag(&expanded).is_ok() {
        return image.with_tag(&expanded);
    }
    Reference::parse(&expanded).map_err(|e| match e {
        Error::Reference { reason, .. } => Error::Reference {
            input: expanded.clone(),
            reason: format!("from --children template {template:?}: {reason}"),
        },
        other => other,
    })
}

/// What the gates and reports need to know about a child.
#[derive(Debug, Clone, Serialize)]
pub struct ChildInfo {
    /// The arch this child stands for (from `--target-arches`).
    pub arch: TargetArch,
    /// Where it was read (normally a tag).
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// `os/arch[/variant]` of the index entry.
    pub platform: String,
    /// The arch the config names, when it is linux and one of ours.
    pub config_arch: Option<TargetArch>,
    pub provenance: Provenance,
    /// The parent stage's per-arch tag and what it holds now, when the
    /// child records a parent stage and that tag exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_now: Option<ParentNow>,
}

/// The current digest of a child's parent stage tag.
#[derive(Debug, Clone, Serialize)]
pub struct ParentNow {
    pub reference: String,
    pub digest: String,
}

/// A resolved per-arch image.
pub struct Child {
    pub info: ChildInfo,
    pub reference: Reference,
    pub raw: RawManifest,
    /// The platform its index entry carries (from the config).
    pub platform: Platform,
    pub image: ResolvedImage,
    /// Kept open to copy blobs when the child lives in another store.
    pub source: Box<dyn ImageSource>,
}

impl Child {
    /// The index entry: media type, size and digest of the manifest bytes,
    /// and the platform. No annotations, so the same children always give
    /// the same index bytes wherever they were read from.
    pub fn entry(&self) -> Descriptor {
        let mut d = self.raw.descriptor();
        d.set_platform(Some(self.platform.clone()));
        d
    }

    pub fn kind(&self) -> ManifestKind {
        self.raw.kind()
    }
}

/// A child that could not be found.
#[derive(Debug, Clone, Serialize)]
pub struct MissingChild {
    pub arch: TargetArch,
    pub reference: String,
    pub reason: String,
}

/// Resolves one child (a registry is read with `registry`). `Ok(Err(_))`
/// means "not there" (a completeness matter); `Err` means something is
/// wrong with what is there.
pub fn resolve_child(
    arch: TargetArch,
    reference: &Reference,
    registry: &RegistryOptions,
) -> Result<std::result::Result<Child, MissingChild>> {
    let missing = |e: Error| MissingChild {
        arch,
        reference: reference.to_string(),
        reason: e.to_string(),
    };
    let source = match open_source_with(reference, registry) {
        Ok(s) => s,
        Err(e @ Error::NotFound { .. }) => return Ok(Err(missing(e))),
        Err(e) => return Err(e),
    };
    let root = match source.resolve() {
        Ok(d) => d,
        Err(e @ Error::NotFound { .. }) => return Ok(Err(missing(e))),
        Err(e) => return Err(e),
    };
    let raw = source.read_manifest(&root)?;
    if raw.kind().is_index() {
        return Err(Error::invalid(
            reference.to_string(),
            format!(
                "is an index ({}), not a single-platform image; an index entry must be one image",
                raw.digest()
            ),
        ));
    }
    let image = resolve_image(source.as_ref(), None)?;
    if image.raw.digest() != raw.digest() {
        return Err(Error::invalid(
            reference.to_string(),
            format!(
                "changed while being read ({} then {})",
                raw.digest(),
                image.raw.digest()
            ),
        ));
    }
    let platform = entry_platform(&image);
    let config_arch = if platform.os().to_string() == "linux" {
        TargetArch::from_oci(&platform.architecture().to_string())
    } else {
        None
    };
    let info = ChildInfo {
        arch,
        reference: reference.to_string(),
        digest: raw.digest().to_string(),
        media_type: raw.kind().media_type().to_string(),
        size: raw.size(),
        platform: platform_string(&platform),
        config_arch,
        provenance: Provenance::of(&image),
        parent_now: None,
    };
    Ok(Ok(Child {
        info,
        reference: reference.clone(),
        raw,
        platform,
        image,
        source,
    }))
}

/// Looks up the parent stage's per-arch tag beside the child, named as the
/// pipeline names it: `<index tag>-<parent stage>-<arch>` (e.g.
/// `latest-cross-package-riscv64`). `None` when the child records no parent
/// stage or the tag does not exist; errors other than "not found" count.
pub fn parent_now(
    child: &Child,
    index_tag: &str,
    registry: &RegistryOptions,
) -> Result<Option<ParentNow>> {
    let Some(stage) = &child.info.provenance.parent_stage else {
        return Ok(None);
    };
    let tag = format!("{index_tag}-{stage}-{}", child.info.arch);
    if validate_tag(&tag).is_err() {
        return Ok(None);
    }
    let r = child.reference.with_tag(&tag)?;
    let found = open_source_with(&r, registry).and_then(|s| s.resolve());
    match found {
        Ok(d) => Ok(Some(ParentNow {
            reference: r.to_string(),
            digest: d.digest().to_string(),
        })),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The platform for an index entry, from the image config (the config is
/// what a runtime checks; a tag's descriptor may carry none). arm64 entries
/// always get variant `v8` when the config names none, since the config of a
/// plain arm64 image often omits it while pullers and `docker manifest`
/// write `v8`; a variant the config does name is kept.
pub fn entry_platform(img: &ResolvedImage) -> Platform {
    let mut p = img.platform();
    p.set_os_version(img.config.os_version().clone());
    p.set_os_features(img.config.os_features().clone());
    if *p.architecture() == Arch::ARM64 && p.variant().is_none() {
        p.set_variant(Some("v8".into()));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let img = Reference::parse("oci:out:latest-cross").unwrap();
        let c = expand_template(&img, DEFAULT_TEMPLATE, TargetArch::Riscv64).unwrap();
        assert_eq!(c.to_string(), "oci:out:latest-cross-riscv64");
        let c = expand_template(&img, "{tag}-wrapper-{arch}", TargetArch::Arm64).unwrap();
        assert_eq!(c.to_string(), "oci:out:latest-cross-wrapper-arm64");
        let c = expand_template(&img, "oci:other:{tag}-{arch}", TargetArch::Amd64).unwrap();
        assert_eq!(c.to_string(), "oci:other:latest-cross-amd64");
        let reg = Reference::parse("docker://127.0.0.1:5000/k/img:latest").unwrap();
        let c = expand_template(&reg, DEFAULT_TEMPLATE, TargetArch::Amd64).unwrap();
        assert_eq!(c.to_string(), "docker://127.0.0.1:5000/k/img:latest-amd64");
        let untagged = Reference::parse("oci:out").unwrap();
        assert!(expand_template(&untagged, DEFAULT_TEMPLATE, TargetArch::Amd64).is_err());
        assert!(expand_template(&img, "bad tag {arch}", TargetArch::Amd64).is_err());
    }
}
