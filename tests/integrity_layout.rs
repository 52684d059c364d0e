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

// Defect 5: a same-size corrupt blob already in a destination was trusted
// (size compared only): the copy skipped it, tagged the image, and no re-run
// repaired it.
#[test]
fn corrupt_blob_in_destination_is_replaced_not_trusted() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (_, layer) = image(&src, "v1", &tar_with("f", &[7u8; 4096]));
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    // Same size, different bytes: only a hash tells.
    let p = blob(&dst, &layer);
    let mut bytes = fs::read(&p).unwrap();
    bytes[600] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let out = ocipack_ok(&["copy", "--json", &oci(&src, ":v1"), &oci(&dst, ":v2")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["blobs_copied"], 1,
        "the corrupt layer is copied again: {v}"
    );
    assert_eq!(
        &sha256(&fs::read(&p).unwrap()),
        layer.digest(),
        "the corrupt blob was kept"
    );
    // The image reads back clean.
    ocipack_ok(&[
        "unpack",
        &oci(&dst, ":v2"),
        &t.path().join("root").display().to_string(),
    ]);
    // Same for a layer written by `append` into a layout holding a corrupt
    // copy of it: the next writer replaces it.
    fs::write(&p, &bytes).unwrap();
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v3")]);
    assert_eq!(&sha256(&fs::read(&p).unwrap()), layer.digest());
}
