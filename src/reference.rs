//! Image references: one parser used by every command.
//!
//! Accepted forms:
//! - `oci:DIR[:TAG|@sha256:…]` and BuildKit's `oci-layout://DIR[:TAG|@sha256:…]`
//! - `oci-archive:FILE[:TAG]`
//! - `docker-archive:FILE[:NAME[:TAG]|:@INDEX]` (skopeo's syntax)
//! - `docker://HOST/REPO[:TAG|@DIGEST]` and a bare `HOST/REPO[:TAG|@DIGEST]`

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::image::Digest;

use crate::digest::parse_sha256;
use crate::error::{Error, Result};

/// What a reference selects inside a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Tag(t) => write!(f, ":{t}"),
            Selector::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Which image of a Docker archive (`docker save`'s `manifest.json` can
/// hold several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveImage {
    /// A fully qualified name and tag as skopeo normalises them
    /// (`base` is `docker.io/library/base:latest`), matched against
    /// `RepoTags` and written there.
    Named { name: String, tag: String },
    /// The zero-based position in `manifest.json` (skopeo's `:@N`).
    Index(usize),
}

impl fmt::Display for ArchiveImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveImage::Named { name, tag } => write!(f, "{name}:{tag}"),
            ArchiveImage::Index(i) => write!(f, "@{i}"),
        }
    }
}

impl ArchiveImage {
    /// Parses what follows `FILE:` as skopeo does: `@N`, or a Docker
    /// reference with a tag (`latest` when missing), never a digest.
    pub fn parse(s: &str) -> std::result::Result<ArchiveImage, String> {
        if let Some(n) = s.strip_prefix('@') {
            return n
                .parse::<usize>()
                .map(ArchiveImage::Index)
                .map_err(|_| format!("invalid image index @{n} (expected @0, @1, ...)"));
        }
        let r = parse_registry(s)?;
        if r.digest.is_some() {
            return Err("docker-archive references take a tag, not a digest".into());
        }
        Ok(ArchiveImage::Named {
            name: r.name(),
            tag: r.tag.unwrap_or_else(|| "latest".into()),
        })
    }
}

/// A reference to an image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// Registry host with optional port (`docker.io` is normalised to the
    /// Docker Hub API host by the registry transport).
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// The selector: the digest when given (it is immutable), else the tag,
    /// else `latest`.
    pub fn selector(&self) -> Selector {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Selector::Digest(d.clone()),
            (None, Some(t)) => Selector::Tag(t.clone()),
            (None, None) => Selector::Tag("latest".into()),
        }
    }

    /// `HOST/REPO` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// The pin for this repository and a digest: `HOST/REPO@sha256:…`.
    pub fn pin(&self, digest: &Digest) -> String {
        format!("{}@{}", self.name(), digest)
    }

    /// A copy of this reference with another tag.
    pub fn with_tag(&self, tag: &str) -> RegistryRef {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Any image reference ocipack understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An OCI image layout directory.
    Layout {
        path: PathBuf,
        selector: Option<Selector>,
    },
    /// A tar file holding an OCI image layout (`nerdctl save`, skopeo's
    /// `oci-archive:`).
    Archive {
        path: PathBuf,
        tag: Option<String>,
    },
    /// A `docker save` / `skopeo copy docker-archive:` tar.
    DockerArchive {
        path: PathBuf,
        image: Option<ArchiveImage>,
    },
    Registry(RegistryRef),
}

/// Transports of skopeo (containers/image) that ocipack does not read or
/// write, so their prefixes get a precise error instead of a registry
/// lookup.
const FOREIGN_TRANSPORTS: &[&str] = &[
    "containers-storage",
    "dir",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

const SUPPORTED_TRANSPORTS: &str =
    "oci:DIR[:TAG], oci-layout://DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], docker://HOST/REPO[:TAG]";

/// Refuses an unknown `word:` prefix that is not a registry `HOST:PORT/`:
/// without this, `dir:x` would be looked up on Docker Hub and retried.
/// A bare reference needs a `/` before any tag (`HOST/REPO:TAG`), so
/// `name:tag` is read as a transport; `docker://name:tag` is Docker Hub.
fn check_transport(input: &str) -> std::result::Result<(), String> {
    let name = input.split('@').next().unwrap_or(input);
    let Some((word, rest)) = name.split_once(':') else {
        return Ok(());
    };
    if word.contains('/') || word.starts_with('[') {
        return Ok(());
    }
    let port_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if port_len > 0 && rest[port_len..].starts_with('/') && !word.is_empty() {
        return Ok(());
    }
    if FOREIGN_TRANSPORTS.contains(&word) {
        return Err(format!(
            "skopeo's {word}: transport is not supported by ocipack (supported: {SUPPORTED_TRANSPORTS}); copy it with skopeo to oci: or docker-archive: first"
        ));
    }
    Err(format!(
        "unknown transport {word:?} (supported: {SUPPORTED_TRANSPORTS}); a Docker Hub image with a tag is written docker://{input}"
    ))
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference> {
        let err = |reason: &str| Error::Reference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input
            .strip_prefix("oci-layout://")
            .or_else(|| input.strip_prefix("oci:"))
        {
            let (path, selector) = split_path_selector(rest).map_err(|r| err(&r))?;
            return Ok(Reference::Layout { path, selector });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, selector) = split_path_selector(rest).map_err(|r| err(&r))?;
            let tag = match selector {
                None => None,
                Some(Selector::Tag(t)) => Some(t),
                Some(Selector::Digest(_)) => {
                    return Err(err("oci-archive references take a tag, not a digest"))
                }
            };
            return Ok(Reference::Archive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            // As skopeo: the file name ends at the first ':'.
            let (path, image) = match rest.split_once(':') {
                Some((p, i)) => (p, Some(ArchiveImage::parse(i).map_err(|r| err(&r))?)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(err("missing file"));
            }
            return Ok(Reference::DockerArchive {
                path: PathBuf::from(path),
                image,
            });
        }
        let rest = match input.strip_prefix("docker://") {
            Some(r) => r,
            None => {
                check_transport(input).map_err(|r| err(&r))?;
                input
            }
        };
        if rest.contains("://") {
            return Err(err(&format!(
                "unknown transport (supported: {SUPPORTED_TRANSPORTS})"
            )));
        }
        parse_registry(rest)
            .map(Reference::Registry)
            .map_err(|r| err(&r))
    }

    /// The tag this reference names, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Reference::Layout {
                selector: Some(Selector::Tag(t)),
                ..
            } => Some(t),
            Reference::Archive { tag: Some(t), .. } => Some(t),
            Reference::DockerArchive {
                image: Some(ArchiveImage::Named { tag, .. }),
                ..
            } => Some(tag),
            Reference::Registry(r) if r.digest.is_none() => r.tag.as_deref(),
            _ => None,
        }
    }

    /// The same store with another tag (used to derive per-arch tags).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag).map_err(|r| Error::Reference {
            input: tag.to_string(),
            reason: r,
        })?;
        Ok(match self {
            Reference::Layout { path, .. } => Reference::Layout {
                path: path.clone(),
                selector: Some(Selector::Tag(tag.to_string())),
            },
            Reference::Archive { path, .. } => Reference::Archive {
                path: path.clone(),
                tag: Some(tag.to_string()),
            },
            Reference::DockerArchive {
                path,
                image: Some(ArchiveImage::Named { name, .. }),
            } => Reference::DockerArchive {
                path: path.clone(),
                image: Some(ArchiveImage::Named {
                    name: name.clone(),
                    tag: tag.to_string(),
                }),
            },
            Reference::DockerArchive { .. } => {
                return Err(Error::Reference {
                    input: self.to_string(),
                    reason: format!(
                        "cannot derive tag {tag:?} without a name (docker-archive:FILE:NAME:TAG)"
                    ),
                })
            }
            Reference::Registry(r) => Reference::Registry(r.with_tag(tag)),
        })
    }

    /// Pin to `digest` in the same store: `oci:DIR@sha256:…` or
    /// `HOST/REPO@sha256:…`.
    pub fn pin(&self, digest: &Digest) -> String {
        match self {
            Reference::Layout { path, .. } => format!("oci:{}@{}", path.display(), digest),
            Reference::Archive { path, .. } => format!("oci-archive:{}@{}", path.display(), digest),
            Reference::DockerArchive { path, .. } => {
                format!("docker-archive:{}@{}", path.display(), digest)
            }
            Reference::Registry(r) => r.pin(digest),
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Layout { path, selector } => {
                write!(f, "oci:{}", path.display())?;
                if let Some(s) = selector {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            Reference::Archive { path, tag } => {
                write!(f, "oci-archive:{}", path.display())?;
                if let Some(t) = tag {
                    write!(f, ":{t}")?;
                }
                Ok(())
            }
            Reference::DockerArchive { path, image } => {
                write!(f, "docker-archive:{}", path.display())?;
                if let Some(i) = image {
                    write!(f, ":{i}")?;
                }
                Ok(())
            }
            Reference::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

/// Splits `DIR[:TAG|@sha256:…]`. A trailing `:x` counts as a tag only if
/// it is a valid tag (so `./dir:with:colons/x` stays a path).
fn split_path_selector(rest: &str) -> std::result::Result<(PathBuf, Option<Selector>), String> {
    if let Some(idx) = rest.rfind('@') {
        let (path, dig) = (&rest[..idx], &rest[idx + 1..]);
        if dig.contains(':') {
            let d = parse_sha256(dig).map_err(|e| e.to_string())?;
            if path.is_empty() {
                return Err("missing directory".into());
            }
            return Ok((PathBuf::from(path), Some(Selector::Digest(d))));
        }
    }
    if let Some(idx) = rest.rfind(':') {
        let (path, tag) = (&rest[..idx], &rest[idx + 1..]);
        if !tag.contains('/') {
            validate_tag(tag)?;
            if path.is_empty() {
                return Err("missing directory".into());
            }
            return Ok((PathBuf::from(path), Some(Selector::Tag(tag.to_string()))));
        }
    }
    if rest.is_empty() {
        return Err("missing directory".into());
    }
    Ok((PathBuf::from(rest), None))
}

/// A tag as the distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(format!(
            "invalid tag {tag:?} (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
        ));
    }
    Ok(())
}

/// An image name normalised as containerd's `ParseDockerRef` does
/// (`base-riscv64` -> `docker.io/library/base-riscv64:latest`; with a
/// digest the tag is dropped), or None if it is not a valid name. Used to
/// match `io.containerd.image.name` in layouts BuildKit wrote.
pub fn normalize_image_name(name: &str) -> Option<String> {
    let r = parse_registry(name).ok()?;
    Some(match (&r.digest, &r.tag) {
        (Some(d), _) => format!("{}@{d}", r.name()),
        (None, t) => format!("{}:{}", r.name(), t.as_deref().unwrap_or("latest")),
    })
}

fn parse_registry(rest: &str) -> std::result::Result<RegistryRef, String> {
    let (name, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(parse_sha256(d).map_err(|e| e.to_string())?)),
        None => (rest, None),
    };
    // A tag follows the last ':' after the last '/'.
    let last_slash = name.rfind('/').unwrap_or(0);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => {
            let i = last_slash + i;
            let tag = &name[i + 1..];
            validate_tag(tag)?;
            (&name[..i], Some(tag.to_string()))
        }
        None => (name, None),
    };
    if name.is_empty() {
        return Err("missing repository".into());
    }
    let (host, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => {
            let repo = if name.contains('/') {
                name.to_string()
            } else {
                format!("library/{name}")
            };
            ("docker.io".to_string(), repo)
        }
    };
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !repository.split('/').all(valid_component) {
        return Err(format!(
            "invalid repository {repository:?} (lowercase letters, digits and . _ - separated by /)"
        ));
    }
    Ok(RegistryRef {
        host,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn layout_forms() {
        assert_eq!(
            Reference::parse("oci:out/layout:latest-cross-riscv64").unwrap(),
            Reference::Layout {
                path: "out/layout".into(),
                selector: Some(Selector::Tag("latest-cross-riscv64".into()))
            }
        );
        assert_eq!(
            Reference::parse("oci-layout:///abs/dir:v1").unwrap(),
            Reference::Layout {
                path: "/abs/dir".into(),
                selector: Some(Selector::Tag("v1".into()))
            }
        );
        let r = Reference::parse(&format!("oci:dir@{D}")).unwrap();
        assert!(matches!(
            r,
            Reference::Layout {
                selector: Some(Selector::Digest(_)),
                ..
            }
        ));
        assert_eq!(
            Reference::parse("oci:some/dir").unwrap(),
            Reference::Layout {
                path: "some/dir".into(),
                selector: None
            }
        );
        assert!(Reference::parse("oci::tag").is_err());
        assert!(Reference::parse("oci:dir:bad tag").is_err());
    }

    #[test]
    fn archive_forms() {
        assert_eq!(
            Reference::parse("oci-archive:/tmp/a.tar:base").unwrap(),
            Reference::Archive {
                path: "/tmp/a.tar".into(),
                tag: Some("base".into())
            }
        );
        assert!(Reference::parse(&format!("oci-archive:a.tar@{D}")).is_err());
    }

    #[test]
    fn registry_forms() {
        let r = Reference::parse("docker://127.0.0.1:5000/team/img:latest-cross").unwrap();
        let Reference::Registry(r) = r else { panic!() };
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/img");
        assert_eq!(r.tag.as_deref(), Some("latest-cross"));
        let Reference::Registry(r) = Reference::parse("ghcr.io/k/b:cross-android-arm64").unwrap()
        else {
            panic!()
        };
        assert_eq!((r.host.as_str(), r.repository.as_str()), ("ghcr.io", "k/b"));
        let Reference::Registry(r) = Reference::parse("ubuntu").unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("docker.io", "library/ubuntu")
        );
        assert_eq!(r.selector(), Selector::Tag("latest".into()));
        let Reference::Registry(r) = Reference::parse(&format!("localhost:5000/x@{D}")).unwrap()
        else {
            panic!()
        };
        assert!(r.digest.is_some());
        assert!(Reference::parse("docker://Host/UPPER:x").is_err());
        assert!(Reference::parse("ftp://x/y").is_err());
    }

    #[test]
    fn docker_archive_forms() {
        let named = |n: &str, t: &str| {
            Some(ArchiveImage::Named {
                name: n.into(),
                tag: t.into(),
            })
        };
        let cases = [
            ("docker-archive:/tmp/x.tar", None),
            (
                "docker-archive:x.tar:base",
                named("docker.io/library/base", "latest"),
            ),
            (
                "docker-archive:x.tar:base:v1",
                named("docker.io/library/base", "v1"),
            ),
            (
                "docker-archive:x.tar:docker.io/library/base:v1",
                named("docker.io/library/base", "v1"),
            ),
            (
                "docker-archive:x.tar:localhost:5000/team/img:t",
                named("localhost:5000/team/img", "t"),
            ),
            ("docker-archive:x.tar:@2", Some(ArchiveImage::Index(2))),
        ];
        for (input, image) in cases {
            let r = Reference::parse(input).unwrap();
            let Reference::DockerArchive { image: got, .. } = &r else {
                panic!("{input}: {r:?}")
            };
            assert_eq!(got, &image, "{input}");
            // Display round-trips.
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
        let r = Reference::parse("docker-archive:x.tar:base:v1").unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            "docker-archive:x.tar:docker.io/library/base:v2"
        );
        assert!(Reference::parse("docker-archive:x.tar")
            .unwrap()
            .with_tag("v2")
            .is_err());
        for bad in [
            "docker-archive:",
            "docker-archive::base",
            "docker-archive:x.tar:",
            "docker-archive:x.tar:@-1",
            "docker-archive:x.tar:Upper",
            &format!("docker-archive:x.tar:base@{D}"),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_transports_are_named() {
        for (input, says) in [
            (
                "containers-storage:img",
                "skopeo's containers-storage: transport",
            ),
            ("dir:/tmp/x", "skopeo's dir: transport"),
            (
                "docker-daemon:img:latest",
                "skopeo's docker-daemon: transport",
            ),
            ("foo:bar", "unknown transport \"foo\""),
            ("ftp://x/y", "unknown transport"),
        ] {
            let e = Reference::parse(input).unwrap_err().to_string();
            assert!(e.contains(says), "{input}: {e}");
            assert!(e.contains("docker-archive:FILE"), "{input}: {e}");
        }
        // Registries with ports, bare names and explicit Docker Hub stay registries.
        for ok in [
            "localhost:5000/repo",
            "localhost:5000/repo:tag",
            "127.0.0.1:5000/a/b:c",
            "registry.example:443/x",
            "ubuntu",
            "ghcr.io/k/b:tag",
            "docker://foo:bar",
            &format!("ubuntu@{D}"),
        ] {
            assert!(
                matches!(Reference::parse(ok), Ok(Reference::Registry(_))),
                "{ok}: {:?}",
                Reference::parse(ok)
            );
        }
    }

    #[test]
    fn image_names_normalise_like_containerd() {
        let full = Some("docker.io/library/base-riscv64:latest".to_string());
        assert_eq!(normalize_image_name("base-riscv64"), full);
        assert_eq!(normalize_image_name("base-riscv64:latest"), full);
        assert_eq!(normalize_image_name("library/base-riscv64"), full);
        assert_eq!(
            normalize_image_name("docker.io/library/base-riscv64:latest"),
            full
        );
        assert_eq!(
            normalize_image_name("ghcr.io/k/b:x").as_deref(),
            Some("ghcr.io/k/b:x")
        );
        assert_eq!(
            normalize_image_name(&format!("b:x@{D}")),
            Some(format!("docker.io/library/b@{D}"))
        );
        assert_eq!(normalize_image_name("Bad Name"), None);
    }

    #[test]
    fn derived_tags_and_pins() {
        let r = Reference::parse("oci:out:latest-cross").unwrap();
        let child = r.with_tag("latest-cross-arm64").unwrap();
        assert_eq!(child.to_string(), "oci:out:latest-cross-arm64");
        assert!(r.with_tag("../x").is_err());
    }
}
