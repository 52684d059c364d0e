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

fn oci(dir: &Path, sel: &str) -> String {
    format!("oci:{}{sel}", dir.display())
}

/// A registry holding image `r/img:v1` (one layer of `layer_len` bytes).
fn registry_with_image(t: &Path, layer_len: usize) -> (common::registry::Registry, Descriptor) {
    let reg = common::registry::Registry::start();
    let src = t.join("src");
    let data: Vec<u8> = (0..layer_len).map(|i| (i * 7 % 251) as u8).collect();
    let (_, layer) = image(&src, "v1", &tar_with("f", &data));
    run_ok(ocipack_cmd().args(["push", &oci(&src, ":v1"), &reg.url("r/img:v1")]));
    (reg, layer)
}

// Defect 9: the registry source silently truncated a blob the server sent
// longer than its descriptor; the layout source errors, so must it.
#[test]
fn registry_blob_longer_than_its_descriptor_is_an_error() {
    use common::proxy::{Action, FaultProxy, Rule, When};
    let t = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_image(t.path(), 4096);
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "GET",
            "/blobs/",
            When::Always,
            Action::Oversize(100),
        )],
    );
    let dst = t.path().join("dst");
    let err = run_fail(ocipack_cmd().args([
        "copy",
        "--retries",
        "0",
        &proxy.url("r/img:v1"),
        &oci(&dst, ":v1"),
    ]));
    assert!(err.contains("expected") && err.contains("bytes"), "{err}");
    assert!(
        !dst.join("index.json").exists()
            || !fs::read_to_string(dst.join("index.json"))
                .unwrap()
                .contains("v1")
    );
}

// Defect 9: `--timeout` was a no-progress timeout that a 1 byte/s drip
// never tripped: a pull could take days. A transfer slower than
// `--min-rate` over `--timeout` seconds is now dropped and retried.
#[test]
fn a_dripping_registry_trips_the_minimum_rate() {
    use common::proxy::{Action, FaultProxy, Rule, When};
    let t = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_image(t.path(), 4096);
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "GET",
            "/blobs/",
            When::Always,
            Action::Drip(std::time::Duration::from_millis(500)),
        )],
    );
    let dst = t.path().join("dst");
    let start = std::time::Instant::now();
    let mut child = ocipack_cmd()
        .args([
            "copy",
            "--timeout",
            "2",
            "--retries",
            "1",
            "--retry-delay-ms",
            "50",
            &proxy.url("r/img:v1"),
            &oci(&dst, ":v1"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(finished, "a 2 byte/s drip kept ocipack busy for 20 s");
    assert!(!out.status.success());
    assert!(err.contains("bytes/s"), "{err}");
}
