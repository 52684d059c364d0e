//! Layout integrity (issue 11, defects 5-9 and `fsck`): what is already in
//! a destination is verified before it is trusted, files get the modes other
//! tools expect, nothing is silently lost or left behind, and `ocipack fsck`
//! finds (and repairs) what a crash or a full disk leaves.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use oci_spec::image::{Descriptor, MediaType};
use ocipack::digest::sha256;
use ocipack::layout::Layout;
use ocipack::manifest::canonical_json;
use serde_json::json;

/// A tar holding one file `name` with `data`.
fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// Writes a one-layer image (uncompressed layer) tagged `tag` (untagged if
/// empty); returns (manifest, layer) descriptors.
fn image(layout: &Path, tag: &str, layer_tar: &[u8]) -> (Descriptor, Descriptor) {
    let l = Layout::open_or_create(layout).unwrap();
    let layer = l
        .write_blob_bytes(layer_tar, MediaType::ImageLayer)
        .unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar).to_string()]}
    });
    let cfg = l
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let man = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": layer.size(), "digest": layer.digest().to_string()}]
    });
    let man = l
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    if !tag.is_empty() {
        l.set_tags(&[(tag.to_string(), man.clone())]).unwrap();
    }
    (man, layer)
}

fn blob(layout: &Path, d: &Descriptor) -> PathBuf {
    layout.join("blobs/sha256").join(d.digest().digest())
}

fn oci(dir: &Path, sel: &str) -> String {
    format!("oci:{}{sel}", dir.display())
}

fn index_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// Tags of an archive's index.json (read back by ocipack inspect of the tar
/// through skopeo's view: the tar member itself).
fn archive_tags(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg("index.json")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -xOf {}", tar.display());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    tags.sort();
    tags
}

// Defect 7: a copy by digest into a destination without a tag wrote blobs
// and no index.json entry, so `umoci gc` deleted them all.
#[test]
fn copy_by_digest_without_tag_records_an_untagged_entry() {
    common::tools::require("umoci");
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (man, layer) = image(&src, "v1", &tar_with("f", b"kept"));
    let by_digest = oci(&src, &format!("@{}", man.digest()));
    ocipack_ok(&["copy", &by_digest, &oci(&dst, "")]);
    let idx = index_json(&dst);
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{idx}");
    assert_eq!(entries[0]["digest"], man.digest().to_string());
    assert!(entries[0]["annotations"].is_null(), "untagged: {idx}");
    // Copying it again adds no duplicate.
    ocipack_ok(&["copy", &by_digest, &oci(&dst, "")]);
    assert_eq!(index_json(&dst)["manifests"].as_array().unwrap().len(), 1);
    // umoci gc keeps what index.json references.
    common::tools::run_ok("umoci", &["gc", "--layout", &dst.display().to_string()]);
    assert!(blob(&dst, &layer).is_file(), "umoci gc removed the layer");
    // The same into an archive.
    let tar = t.path().join("a.tar");
    ocipack_ok(&[
        "copy",
        &by_digest,
        &format!("oci-archive:{}", tar.display()),
    ]);
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("index.json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifests"][0]["digest"], man.digest().to_string(), "{v}");
}

// Defect 7: concurrent copies into one oci-archive all exited 0 and all but
// one tag were lost.
#[test]
fn concurrent_copies_into_one_archive_keep_every_tag() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    image(&src, "v1", &tar_with("f", &vec![3u8; 1 << 20]));
    let tar = t.path().join("a.tar");
    let n = 6;
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_ocipack"))
                .args([
                    "copy",
                    &oci(&src, ":v1"),
                    &format!("oci-archive:{}:t{i}", tar.display()),
                ])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    assert_eq!(archive_tags(&tar), want);
    // No temp file is left beside the archive.
    for e in fs::read_dir(t.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".ocipack-tmp"), "{name} left behind");
    }
}
