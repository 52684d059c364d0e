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

// fsck: every defect a crash, a bad disk or a hostile hand can leave is
// found, named, and (for leftovers) repaired; referenced blobs never go.
#[test]
fn fsck_finds_and_repairs_layout_defects() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    copy_tree(&fixtures().join("base"), &l);
    let clean = ocipack_ok(&["fsck", "--json", &oci(&l, "")]);
    let v: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["blobs"].as_u64().unwrap() > 5 && v["layers"].as_u64().unwrap() >= 2,
        "{v}"
    );
    // The archive form of the same layout.
    let tar = t.path().join("base.tar");
    ocipack_ok(&[
        "copy",
        "--all",
        &oci(&l, ":base"),
        &format!("oci-archive:{}:base", tar.display()),
    ]);
    ocipack_ok(&["fsck", &format!("oci-archive:{}", tar.display())]);

    // Leftovers only: an orphan blob and a dead writer's temp file.
    let orphan = Layout::open(&l)
        .unwrap()
        .write_blob_bytes(b"nobody refers to me", MediaType::ImageLayer)
        .unwrap();
    fs::write(l.join(".ocipack-tmp-dead"), b"partial").unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&l, "")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["orphans"][0], orphan.digest().to_string(), "{v}");
    assert!(
        v["temp_files"].to_string().contains(".ocipack-tmp-dead"),
        "{v}"
    );
    let before = fs::read_dir(l.join("blobs/sha256")).unwrap().count();
    ocipack_ok(&["fsck", "--repair", &oci(&l, "")]);
    assert!(!blob(&l, &orphan).exists() && !l.join(".ocipack-tmp-dead").exists());
    let after = fs::read_dir(l.join("blobs/sha256")).unwrap().count();
    assert_eq!(after + 1, before, "only the orphan went");
    ocipack_ok(&["fsck", &oci(&l, "")]);

    // Real defects: a corrupt layer, a missing config, a wrong diff_id.
    let inspect: serde_json::Value =
        serde_json::from_str(&ocipack_ok(&["inspect", "--json", &oci(&l, ":base-arm64")])).unwrap();
    let layer = inspect["layers"][0]["digest"].as_str().unwrap().to_string();
    let lp = l
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&lp).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&lp, &bytes).unwrap();
    let out = ocipack(&["fsck", &oci(&l, "")]);
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&layer), "{text}");
    // --repair never removes a referenced blob, even a corrupt one.
    ocipack(&["fsck", "--repair", &oci(&l, "")]);
    assert!(lp.exists());
    bytes[mid] ^= 0xff;
    fs::write(&lp, &bytes).unwrap();
    ocipack_ok(&["fsck", &oci(&l, "")]);

    // A config whose diff_id does not match its layer.
    let src = t.path().join("src");
    let layer_tar = tar_with("f", b"x");
    let l2 = Layout::open_or_create(&src).unwrap();
    let ld = l2
        .write_blob_bytes(&layer_tar, MediaType::ImageLayer)
        .unwrap();
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(b"something else").to_string()]}});
    let cd = l2
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let man = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cd.size(), "digest": cd.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": ld.size(), "digest": ld.digest().to_string()}]});
    let md = l2
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    l2.set_tags(&[("bad".into(), md)]).unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&src, "")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("diff_id") && problems.contains(&ld.digest().to_string()),
        "{v}"
    );
    // A missing config.
    fs::remove_file(blob(&src, &cd)).unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&src, "")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("missing") && problems.contains(&cd.digest().to_string()),
        "{v}"
    );
}
