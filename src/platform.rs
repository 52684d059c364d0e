//! Target architectures and platform matching.
//!
//! One function, [`select_manifest`], picks an image from an index for a
//! platform; every command uses it so that `--arch arm64` means the same
//! thing everywhere (with or without variant `v8`).

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Arch, Descriptor, ImageIndex, Os, Platform};

use crate::error::{Error, Result};

/// The architectures ocipack builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetArch {
    Amd64,
    Arm64,
    Riscv64,
}

impl TargetArch {
    pub const ALL: [TargetArch; 3] = [TargetArch::Amd64, TargetArch::Arm64, TargetArch::Riscv64];

    /// The OCI / Go name (`amd64`, `arm64`, `riscv64`).
    pub fn oci_name(self) -> &'static str {
        match self {
            TargetArch::Amd64 => "amd64",
            TargetArch::Arm64 => "arm64",
            TargetArch::Riscv64 => "riscv64",
        }
    }

    /// The GNU/kernel name (`x86_64`, `aarch64`, `riscv64`), as `uname -m`
    /// and `cc -dumpmachine` report it.
    pub fn gnu_cpu(self) -> &'static str {
        match self {
            TargetArch::Amd64 => "x86_64",
            TargetArch::Arm64 => "aarch64",
            TargetArch::Riscv64 => "riscv64",
        }
    }

    /// The Debian multiarch triple, e.g. `aarch64-linux-gnu`.
    pub fn gnu_triple(self) -> &'static str {
        match self {
            TargetArch::Amd64 => "x86_64-linux-gnu",
            TargetArch::Arm64 => "aarch64-linux-gnu",
            TargetArch::Riscv64 => "riscv64-linux-gnu",
        }
    }

    /// The ELF `e_machine` value of native binaries.
    pub fn elf_machine(self) -> u16 {
        match self {
            TargetArch::Amd64 => 62,    // EM_X86_64
            TargetArch::Arm64 => 183,   // EM_AARCH64
            TargetArch::Riscv64 => 243, // EM_RISCV
        }
    }

    /// The qemu-user binary name suffix (`qemu-<this>-static`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            TargetArch::Amd64 => "x86_64",
            TargetArch::Arm64 => "aarch64",
            TargetArch::Riscv64 => "riscv64",
        }
    }

    /// The variant written into new platforms (arm64 images conventionally
    /// carry `v8`).
    pub fn default_variant(self) -> Option<&'static str> {
        match self {
            TargetArch::Arm64 => Some("v8"),
            _ => None,
        }
    }

    pub fn oci_arch(self) -> Arch {
        match self {
            TargetArch::Amd64 => Arch::Amd64,
            TargetArch::Arm64 => Arch::ARM64,
            TargetArch::Riscv64 => Arch::RISCV64,
        }
    }

    /// The platform for an image built for this arch.
    pub fn platform(self) -> Platform {
        let mut p = Platform::default();
        p.set_os(Os::Linux);
        p.set_architecture(self.oci_arch());
        p.set_variant(self.default_variant().map(str::to_string));
        p
    }

    /// The host's architecture, if it is one we know.
    pub fn host() -> Option<TargetArch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(TargetArch::Amd64),
            "aarch64" => Some(TargetArch::Arm64),
            "riscv64" => Some(TargetArch::Riscv64),
            _ => None,
        }
    }

    /// Maps an OCI architecture name to a target arch.
    pub fn from_oci(arch: &str) -> Option<TargetArch> {
        arch.parse().ok()
    }
}

impl FromStr for TargetArch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "amd64" | "x86_64" | "x86-64" => Ok(TargetArch::Amd64),
            "arm64" | "aarch64" | "arm64/v8" => Ok(TargetArch::Arm64),
            "riscv64" => Ok(TargetArch::Riscv64),
            _ => Err(Error::UnknownArch(s.to_string())),
        }
    }
}

impl fmt::Display for TargetArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oci_name())
    }
}

/// Parses a comma-separated arch list (`amd64,arm64,riscv64`), rejecting
/// duplicates, in the order given.
pub fn parse_arch_list(s: &str) -> Result<Vec<TargetArch>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let a: TargetArch = part.parse()?;
        if out.contains(&a) {
            return Err(Error::invalid(
                "--target-arches",
                format!("{a} is listed twice"),
            ));
        }
        out.push(a);
    }
    if out.is_empty() {
        return Err(Error::invalid("--target-arches", "no architecture given"));
    }
    Ok(out)
}

/// What a caller asks for when selecting from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    pub fn linux(arch: TargetArch) -> Self {
        Self {
            os: "linux".into(),
            architecture: arch.oci_name().into(),
            variant: None,
        }
    }

    /// Whether `p` satisfies this spec. A spec without variant accepts any
    /// variant; arm64 treats "no variant" and `v8` as the same.
    pub fn matches(&self, p: &Platform) -> bool {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.architecture {
            return false;
        }
        let norm = |v: Option<&str>| -> Option<String> {
            match (self.architecture.as_str(), v) {
                ("arm64", Some("v8")) | ("arm64", None) => None,
                (_, v) => v.map(str::to_string),
            }
        };
        match &self.variant {
            None => true,
            Some(v) => norm(Some(v)) == norm(p.variant().as_deref()),
        }
    }
}

impl FromStr for PlatformSpec {
    type Err = Error;

    /// Accepts `ARCH`, `OS/ARCH` or `OS/ARCH/VARIANT`, with arch aliases.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [a] => ("linux", *a, None),
            [o, a] => (*o, *a, None),
            [o, a, v] => (*o, *a, Some(v.to_string())),
            _ => return Err(Error::UnknownArch(s.to_string())),
        };
        let architecture = match arch.parse::<TargetArch>() {
            Ok(t) => t.oci_name().to_string(),
            Err(_) => arch.to_string(),
        };
        Ok(Self {
            os: os.to_string(),
            architecture,
            variant,
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Formats a platform as `os/arch[/variant]`.
pub fn platform_string(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// BuildKit's annotation on the attestation manifests it adds to an image
/// index (exporter/containerimage/writer.go): `vnd.docker.reference.type:
/// attestation-manifest`, with `vnd.docker.reference.digest` naming the
/// image it describes and platform `unknown/unknown`.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Whether an index entry is an attestation manifest (an in-toto statement
/// about a sibling image), never an image of its own.
pub fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|t| t == ATTESTATION_MANIFEST);
    let unknown = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"
    });
    annotated || unknown
}

/// The entries of an index that are images: attestation manifests skipped.
pub fn image_entries(index: &ImageIndex) -> impl Iterator<Item = &Descriptor> {
    index.manifests().iter().filter(|d| !is_attestation(d))
}

/// Picks the one manifest of `index` that matches `want`. Attestation
/// manifests and entries without a platform (referrers) are ignored; more
/// than one match is an error, since silently taking the first is how stale
/// images ship.
pub fn select_manifest<'a>(
    index: &'a ImageIndex,
    want: &PlatformSpec,
    reference: &str,
) -> Result<&'a Descriptor> {
    let matches: Vec<&Descriptor> = image_entries(index)
        .filter(|d| d.platform().as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::PlatformNotFound {
            reference: reference.to_string(),
            wanted: want.to_string(),
            available: available_platforms(index),
        }),
        many => Err(Error::invalid(
            reference,
            format!(
                "{} manifests match platform {want}: {}",
                many.len(),
                many.iter()
                    .map(|d| d.digest().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn available_platforms(index: &ImageIndex) -> String {
    let list: Vec<String> = image_entries(index)
        .filter_map(|d| d.platform().as_ref().map(platform_string))
        .collect();
    if list.is_empty() {
        "none (no entry has a platform)".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plat(arch: &str, variant: Option<&str>) -> Platform {
        let mut p = Platform::default();
        p.set_os(Os::Linux);
        p.set_architecture(Arch::from(arch));
        p.set_variant(variant.map(str::to_string));
        p
    }

    #[test]
    fn aliases() {
        assert_eq!("x86_64".parse::<TargetArch>().unwrap(), TargetArch::Amd64);
        assert_eq!("aarch64".parse::<TargetArch>().unwrap(), TargetArch::Arm64);
        assert_eq!(
            "riscv64".parse::<TargetArch>().unwrap(),
            TargetArch::Riscv64
        );
        assert!("mips".parse::<TargetArch>().is_err());
    }

    #[test]
    fn arm64_variants_match_each_other() {
        let with_v8: PlatformSpec = "linux/arm64/v8".parse().unwrap();
        let plain: PlatformSpec = "aarch64".parse().unwrap();
        assert!(with_v8.matches(&plat("arm64", None)));
        assert!(with_v8.matches(&plat("arm64", Some("v8"))));
        assert!(plain.matches(&plat("arm64", Some("v8"))));
        assert!(!plain.matches(&plat("amd64", None)));
        let v7: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert!(!v7.matches(&plat("arm", Some("v6"))));
    }

    /// BuildKit's index for one platform with provenance: the attestation
    /// (unknown/unknown, vnd.docker.reference.type) is never selected nor
    /// listed as a platform.
    #[test]
    fn attestation_manifests_are_skipped() {
        let d = |b: &[u8], p: Platform, att: bool| {
            let mut d = Descriptor::new(
                oci_spec::image::MediaType::ImageManifest,
                1,
                crate::digest::sha256(b),
            );
            d.set_platform(Some(p));
            if att {
                d.set_annotations(Some(
                    [(REFERENCE_TYPE.to_string(), ATTESTATION_MANIFEST.to_string())].into(),
                ));
            }
            d
        };
        let mut unknown = Platform::default();
        unknown.set_os(Os::Other("unknown".into()));
        unknown.set_architecture(Arch::Other("unknown".into()));
        let mut idx = ImageIndex::default();
        idx.set_manifests(vec![
            d(b"img", plat("amd64", None), false),
            d(b"att", unknown.clone(), true),
        ]);
        assert_eq!(image_entries(&idx).count(), 1);
        let got = select_manifest(&idx, &PlatformSpec::linux(TargetArch::Amd64), "r").unwrap();
        assert_eq!(got.digest(), &crate::digest::sha256(b"img"));
        let err = select_manifest(&idx, &PlatformSpec::linux(TargetArch::Riscv64), "r")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("unknown"), "{err}");
        // Without the annotation, unknown/unknown alone marks it too.
        assert!(is_attestation(&d(b"x", unknown, false)));
    }

    #[test]
    fn arch_list() {
        assert_eq!(
            parse_arch_list("amd64, aarch64").unwrap(),
            vec![TargetArch::Amd64, TargetArch::Arm64]
        );
        assert!(parse_arch_list("amd64,x86_64").is_err());
        assert!(parse_arch_list("").is_err());
    }
}
