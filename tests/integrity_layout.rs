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

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Runs ocipack under `umask`.
fn ocipack_umask(umask: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ocipack {args:?} under umask {umask}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn oci(dir: &Path, sel: &str) -> String {
    format!("oci:{}{sel}", dir.display())
}

// Defect 6: everything was written 0600 whatever the umask, and a rewritten
// 0644 index.json became 0600.
#[test]
fn files_get_umask_modes_and_rewrites_keep_theirs() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (man, layer) = image(&src, "v1", &tar_with("f", b"hello"));
    let dst = t.path().join("dst");
    ocipack_umask("022", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    for f in [
        dst.join("index.json"),
        dst.join("oci-layout"),
        blob(&dst, &layer),
        blob(&dst, &man),
    ] {
        assert_eq!(mode(&f), 0o644, "{}", f.display());
    }
    for d in [dst.clone(), dst.join("blobs"), dst.join("blobs/sha256")] {
        assert_eq!(mode(&d), 0o755, "{}", d.display());
    }
    let tar = t.path().join("a.tar");
    ocipack_umask(
        "027",
        &[
            "copy",
            &oci(&src, ":v1"),
            &format!("oci-archive:{}:v1", tar.display()),
        ],
    );
    assert_eq!(mode(&tar), 0o640);
    // A rewrite keeps the file's mode, whatever the umask.
    ocipack_umask("077", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v2")]);
    assert_eq!(mode(&dst.join("index.json")), 0o644);
    fs::set_permissions(dst.join("index.json"), fs::Permissions::from_mode(0o664)).unwrap();
    ocipack_umask("022", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v3")]);
    assert_eq!(mode(&dst.join("index.json")), 0o664);
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o604)).unwrap();
    ocipack_umask(
        "022",
        &[
            "copy",
            &oci(&src, ":v1"),
            &format!("oci-archive:{}:v2", tar.display()),
        ],
    );
    assert_eq!(mode(&tar), 0o604);
}
