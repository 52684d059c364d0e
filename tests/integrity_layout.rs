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

fn oci(dir: &Path, sel: &str) -> String {
    format!("oci:{}{sel}", dir.display())
}

// Defect 9: a whiteout for an absent path created its parent directories.
#[test]
fn whiteout_for_an_absent_path_creates_nothing() {
    common::tools::require("umoci");
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    let lay = Layout::open_or_create(&l).unwrap();
    let l1 = tar_with("keep", b"k");
    let l2 = tar_with("no/such/dir/.wh.gone", b"");
    let d1 = lay.write_blob_bytes(&l1, MediaType::ImageLayer).unwrap();
    let d2 = lay.write_blob_bytes(&l2, MediaType::ImageLayer).unwrap();
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d1.digest().to_string(), d2.digest().to_string()]}});
    let cd = lay
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let layer = |d: &Descriptor| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": d.size(), "digest": d.digest().to_string()});
    let man = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cd.size(), "digest": cd.digest().to_string()},
        "layers": [layer(&d1), layer(&d2)]});
    let md = lay
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    lay.set_tags(&[("w".into(), md)]).unwrap();
    let root = t.path().join("root");
    ocipack_ok(&["unpack", &oci(&l, ":w"), &root.display().to_string()]);
    assert!(root.join("keep").is_file());
    assert!(
        !root.join("no").exists(),
        "unpack created the whiteout's parents"
    );
    // umoci agrees.
    let bundle = t.path().join("bundle");
    common::tools::run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:w", l.display()),
            &bundle.display().to_string(),
        ],
    );
    assert!(!bundle.join("rootfs/no").exists());
}
