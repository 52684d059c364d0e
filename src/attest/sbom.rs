//! The SPDX 2.3 JSON document of one image: the image as the described
//! package, every regular file the step added (SHA-1 and SHA-256, size and
//! origin in the file's comment, since SPDX 2.3 files have no size field),
//! the base image as a package with its digest and the base's installed
//! packages with purls, and each input image as a package.

use crate::layer::ImagePath;
use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

use super::files::{hash_layers, FileSum};
use super::packages::{self, Package};
use super::{hex_of, spdx_time, Evidence, InputImage, Origin};
use crate::error::Result;

/// The largest package database read (a large Ubuntu status is ~3 MiB).
const MAX_DB: u64 = 64 << 20;

/// SPDX ids allow letters, digits, `.` and `-`.
fn spdx_id(prefix: &str, s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{clean}")
}

/// The purl of an image: `pkg:oci/NAME@DIGEST?arch=ARCH`, NAME the last
/// component of the repository (registry) or the layout/archive file's
/// name; a layout named `.` (an input read from the output layout) or
/// nothing at all is named by its tag.
fn oci_purl(reference: &str, digest: &str, arch: &str) -> String {
    let rest = ["docker://", "oci-archive:", "docker-archive:", "oci:"]
        .iter()
        .find_map(|t| reference.strip_prefix(t))
        .unwrap_or(reference);
    let rest = rest.split('@').next().unwrap_or(rest);
    let last = rest.rsplit('/').next().unwrap_or(rest);
    let (base, tag) = match last.split_once(':') {
        Some((b, t)) => (b, t),
        None => (last, ""),
    };
    let pick = if matches!(base, "" | "." | "..") {
        tag
    } else {
        base
    };
    let name: String = pick
        .trim_end_matches(".tar")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = if name.is_empty() {
        "image".into()
    } else {
        name
    };
    format!(
        "pkg:oci/{name}@{}?arch={arch}",
        digest.replacen(':', "%3A", 1)
    )
}

fn image_package(id: &str, img: &InputImage, arch: &str, comment: &str) -> Value {
    json!({
        "SPDXID": id,
        "name": img.name,
        "versionInfo": img.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(&img.digest)}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": oci_purl(&img.reference, &img.digest, arch),
        }],
        "comment": comment,
    })
}

/// The base's installed packages: dpkg, else apk.
fn base_packages(ev: &Evidence<'_>) -> Result<Vec<Package>> {
    let read = |p: &str| -> Option<String> {
        let path = ImagePath::from(p);
        ev.base_tree
            .get(&ev.base_tree.resolve_symlinks(&path).ok()?)?;
        ev.base_tree
            .read_file(ev.base_src, &path, MAX_DB)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let os = read("etc/os-release")
        .or_else(|| read("usr/lib/os-release"))
        .and_then(|s| packages::os_id(&s));
    if let Some(status) = read("var/lib/dpkg/status") {
        return Ok(packages::dpkg(&status, os.as_deref().unwrap_or("debian")));
    }
    if let Some(db) = read("lib/apk/db/installed") {
        return Ok(packages::apk(&db, os.as_deref().unwrap_or("alpine")));
    }
    Ok(Vec::new())
}

/// Where a file came from, in words, and the input package it was
/// expanded from.
fn origin(ev: &Evidence<'_>, f: &FileSum) -> (String, Option<String>) {
    let layer = &ev.layers[f.layer];
    let at = format!("layer {} ({})", layer.name, layer.descriptor.digest());
    match &layer.origin {
        Origin::Input { name, paths } => {
            let src = paths
                .get(&f.path)
                .cloned()
                .unwrap_or_else(|| f.path.clone());
            let img = ev.inputs.iter().find(|i| &i.name == name);
            let digest = img.map(|i| i.digest.as_str()).unwrap_or("");
            (
                format!(
                    "{} bytes; from input {name} ({digest}) path {src}; {at}",
                    f.size
                ),
                Some(spdx_id("Input", name)),
            )
        }
        Origin::Dir { dir, dest } => {
            let rel = f
                .path
                .rel()
                .strip_prefix(dest.rel())
                .unwrap_or(f.path.rel())
                .display();
            (
                format!(
                    "{} bytes; from repository directory {}/{rel}; {at}",
                    f.size,
                    dir.trim_end_matches('/')
                ),
                None,
            )
        }
        Origin::System => (
            format!("{} bytes; generated system file (ocipack); {at}", f.size),
            None,
        ),
    }
}

/// Builds the document.
pub fn build(ev: &Evidence<'_>) -> Result<Value> {
    let arch = ev.arch.oci_name();
    let descs: Vec<_> = ev.layers.iter().map(|l| l.descriptor.clone()).collect();
    let files = hash_layers(ev.out, &descs)?;
    let digest = ev.image.digest().to_string();
    let image_id = "SPDXRef-Image";
    let mut rel = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut relate = |a: &str, kind: &str, b: &str| {
        rel.push(json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}))
    };

    // Files, sorted by path (hash_layers returns them so).
    let mut file_values = Vec::new();
    let mut sha1s = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let id = format!("SPDXRef-File-{n}");
        let (comment, from) = origin(ev, f);
        file_values.push(json!({
            "SPDXID": id,
            "fileName": format!(".{}", f.path),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": f.sha1},
                {"algorithm": "SHA256", "checksumValue": f.sha256},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": comment,
        }));
        relate(image_id, "CONTAINS", &id);
        if let Some(input) = from {
            relate(&id, "EXPANDED_FROM_ARCHIVE", &input);
        }
        sha1s.push(f.sha1.clone());
    }
    // SPDX 2.3 section 7.9: SHA-1 of the sorted, concatenated file SHA-1s.
    sha1s.sort();
    let verification = hex::encode(Sha1::digest(sha1s.concat().as_bytes()));

    let mut pkgs = vec![json!({
        "SPDXID": image_id,
        "name": ev.image_name,
        "versionInfo": digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": true,
        "packageVerificationCode": {"packageVerificationCodeValue": verification},
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(&digest)}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": oci_purl(&ev.image_name, &digest, arch),
        }],
        "comment": format!(
            "ocipack {} image for linux/{arch}, run {}; the files are those this step added",
            ev.step, ev.run_id
        ),
    })];
    pkgs.push(image_package(
        "SPDXRef-Base",
        &ev.base,
        arch,
        &format!("base image {} ({})", ev.base.reference, ev.base.platform),
    ));
    relate(image_id, "DESCENDANT_OF", "SPDXRef-Base");
    for i in &ev.inputs {
        let id = spdx_id("Input", &i.name);
        pkgs.push(image_package(
            &id,
            i,
            arch,
            &format!("input {} {} ({})", i.name, i.reference, i.platform),
        ));
        relate(&id, "BUILD_DEPENDENCY_OF", image_id);
    }
    let mut seen = BTreeMap::new();
    for p in base_packages(ev)? {
        let mut id = spdx_id(p.kind, &format!("{}-{}", p.name, p.arch));
        let n = seen.entry(id.clone()).or_insert(0u32);
        *n += 1;
        if *n > 1 {
            id = format!("{id}-{n}");
        }
        pkgs.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(),
            }],
        }));
        relate("SPDXRef-Base", "CONTAINS", &id);
    }

    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} ({})", ev.image_name, digest),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/ocipack/{}-{}",
            ev.image_name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.', "-"),
            digest.replacen(':', "-", 1)
        ),
        "creationInfo": {
            "created": spdx_time(&ev.created),
            "creators": [format!("Tool: ocipack-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": [image_id],
        "packages": pkgs,
        "files": file_values,
        "relationships": rel,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_purls() {
        assert_eq!(spdx_id("Input", "venv export"), "SPDXRef-Input-venv-export");
        assert_eq!(
            oci_purl("oci:fixtures/base:base", "sha256:ab", "amd64"),
            "pkg:oci/base@sha256%3Aab?arch=amd64"
        );
        let purl = |r: &str| oci_purl(r, "sha256:ab", "arm64");
        // An input read from the output layout is named by its tag.
        assert_eq!(
            purl("oci:.:latest-cross-package-arm64"),
            "pkg:oci/latest-cross-package-arm64@sha256%3Aab?arch=arm64"
        );
        assert_eq!(
            purl("docker://registry.example:5000/kataglyphis/runtime:latest-cross"),
            "pkg:oci/runtime@sha256%3Aab?arch=arm64"
        );
        assert_eq!(
            purl("docker://registry.example/r/base@sha256:cd"),
            "pkg:oci/base@sha256%3Aab?arch=arm64"
        );
        assert_eq!(
            purl("oci-archive:/tmp/Images/App.tar:v1"),
            "pkg:oci/app@sha256%3Aab?arch=arm64"
        );
        assert_eq!(
            purl("latest-cross-amd64"),
            "pkg:oci/latest-cross-amd64@sha256%3Aab?arch=arm64"
        );
        assert_eq!(purl("oci:.:"), "pkg:oci/image@sha256%3Aab?arch=arm64");
    }
}
