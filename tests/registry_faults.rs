//! Pushes and pulls through a loopback proxy that injects faults between
//! ocipack and a real registry: 429 with Retry-After, 500/503, connections
//! cut in the middle of a chunk or of a download, stalls, a forged digest.
//! The transfer must complete with the right digests, resend nothing the
//! registry already had, never leave a tag on an incomplete image, and give
//! a clear error once the retry budget is spent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::proxy::{Action, FaultProxy, Rule, When};
use common::registry::Registry;
use common::{fixtures, json, ocipack_cmd, run_fail, run_ok};
use oci_spec::image::{Descriptor, MediaType};
use ocipack::layout::Layout;

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct TestImage {
    manifest: Descriptor,
    blobs: Vec<Descriptor>,
}

/// Writes a one-platform image with the given layers into `layout` under
/// `tag`.
fn write_image(layout: &Layout, tag: &str, layers: &[Vec<u8>]) -> TestImage {
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| layout.write_blob_bytes(l, MediaType::ImageLayer).unwrap())
        .collect();
    let diff_ids: Vec<String> = layer_descs.iter().map(|d| d.digest().to_string()).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [format!("TAG={tag}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_desc = layout
        .write_blob_bytes(
            &serde_json::to_vec(&config).unwrap(),
            MediaType::ImageConfig,
        )
        .unwrap();
    let desc_json = |d: &Descriptor| serde_json::json!({"mediaType": d.media_type().to_string(), "digest": d.digest().to_string(), "size": d.size()});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc_json(&config_desc),
        "layers": layer_descs.iter().map(desc_json).collect::<Vec<_>>(),
    });
    let manifest_desc = layout
        .write_blob_bytes(
            &serde_json::to_vec(&manifest).unwrap(),
            MediaType::ImageManifest,
        )
        .unwrap();
    layout
        .set_tags(&[(tag.to_string(), manifest_desc.clone())])
        .unwrap();
    let mut blobs = vec![config_desc];
    blobs.extend(layer_descs);
    TestImage {
        manifest: manifest_desc,
        blobs,
    }
}

fn blob_bytes(layout: &Path, d: &Descriptor) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(d.digest().digest())).unwrap()
}

fn fast_retries() -> [&'static str; 6] {
    [
        "--retry-delay-ms",
        "50",
        "--timeout",
        "1",
        "--chunk-size",
        "1MiB",
    ]
}

#[test]
fn push_survives_faults_and_resends_nothing_already_there() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let lpath = tmp.path().join("l");
    let layout = Layout::open_or_create(&lpath).unwrap();
    let shared = noise(100_000, 7);
    let big = noise(10 * 1024 * 1024 + 12345, 11);
    let small_img = write_image(&layout, "small", std::slice::from_ref(&shared));
    let img = write_image(&layout, "big", &[big, shared]);
    let shared_digest = small_img.blobs[1].digest().to_string();

    // The shared layer is already in the repository.
    run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:small", lpath.display()),
        &reg.url("f/img:small"),
    ]));

    let proxy = FaultProxy::start(
        &reg.host(),
        vec![
            Rule::new(
                "HEAD",
                "/blobs/",
                When::Nth(vec![1]),
                Action::Stall(Duration::from_secs(3)),
            ),
            Rule::new(
                "POST",
                "/blobs/uploads/",
                When::Nth(vec![1]),
                Action::TooMany(1),
            ),
            // Answered by the proxy: the registry never saw this chunk, so
            // the session is intact and the upload resumes at its offset.
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                When::Nth(vec![3]),
                Action::Status(500),
            ),
            // Cut mid-chunk: the registry took part of it in.
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                When::Nth(vec![6]),
                Action::CutRequest(300_000),
            ),
            Rule::new(
                "PUT",
                "/manifests/",
                When::Nth(vec![1]),
                Action::Status(503),
            ),
        ],
    );
    let out = json(&run_ok(
        ocipack_cmd()
            .args([
                "push",
                &format!("oci:{}:big", lpath.display()),
                &proxy.url("f/img:big"),
                "--json",
            ])
            .args(fast_retries()),
    ));
    assert_eq!(out["digest"], img.manifest.digest().to_string());
    assert_eq!(
        out["transfer"]["skipped"][0],
        shared_digest.as_str(),
        "{out}"
    );
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 2);

    // The registry holds exactly our image under the tag.
    assert_eq!(
        reg.manifest("f/img", "big").unwrap(),
        blob_bytes(&lpath, &img.manifest)
    );
    for b in &img.blobs {
        assert!(reg.has_blob("f/img", b.digest().as_ref()), "{}", b.digest());
    }

    let log = proxy.log();
    if std::env::var_os("SHOW_PROXY_LOG").is_some() {
        for r in &log {
            eprintln!(
                "{} {} {:?} {:?}",
                r.method,
                r.target,
                r.header("Content-Range"),
                r.fault
            );
        }
    }
    // Every fault fired.
    assert_eq!(
        log.iter().filter(|r| r.fault.is_some()).count(),
        5,
        "{log:#?}"
    );
    // Nothing the registry had was sent: no upload of the shared layer.
    assert!(
        !log.iter()
            .any(|r| r.target.contains(&shared_digest) && r.method != "HEAD"),
        "shared layer re-sent: {log:#?}"
    );
    // After the 500, the same chunk was resent (resume at the registry's
    // offset, not from zero).
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    let failed = patches
        .iter()
        .position(|r| r.fault.as_deref() == Some("Status(500)"))
        .unwrap();
    let range = patches[failed].header("Content-Range").unwrap();
    assert_ne!(range.split('-').next(), Some("0"));
    assert_eq!(patches[failed + 1].header("Content-Range"), Some(range));
    // After the cut, the upload went on and finished (distribution drops a
    // session whose offset moved, so it restarts from zero; registries
    // that keep it resume where it stands).
    let cut = patches
        .iter()
        .position(|r| {
            r.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("CutRequest"))
        })
        .unwrap();
    assert!(patches.len() > cut + 1);
    // Each blob was closed once by a successful PUT ?digest=…, and the
    // manifest was stored before the tag.
    let manifest_puts: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/manifests/") && r.fault.is_none())
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(manifest_puts.len(), 2, "{manifest_puts:?}");
    assert!(manifest_puts[0].ends_with(img.manifest.digest().as_ref()));
    assert!(manifest_puts[1].ends_with("/manifests/big"));

    // A second push through the proxy sends no blob at all.
    proxy.clear_log();
    proxy.set_rules(vec![]);
    run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:big", lpath.display()),
        &proxy.url("f/img:big"),
    ]));
    let sent: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|r| r.method == "PATCH" || r.method == "POST" || r.target.contains("digest="))
        .collect();
    assert!(sent.is_empty(), "{sent:#?}");
}

/// The default upload streams a large blob in one PATCH (read while sent):
/// a 500 before the registry saw the body and a connection cut in the
/// middle of it are both resumed from the offset the registry reports
/// (reading the source again up to there), and the image arrives whole.
#[test]
fn streamed_push_resumes_after_faults() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let lpath = tmp.path().join("l");
    let layout = Layout::open_or_create(&lpath).unwrap();
    let img = write_image(&layout, "big", &[noise(6 * 1024 * 1024 + 777, 5)]);
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                When::Nth(vec![1]),
                Action::Status(500),
            ),
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                When::Nth(vec![2]),
                Action::CutRequest(2_000_000),
            ),
        ],
    );
    let out = json(&run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:big", lpath.display()),
        &proxy.url("s/img:big"),
        "--json",
        "--retry-delay-ms",
        "50",
        "--timeout",
        "1",
    ])));
    assert_eq!(out["digest"], img.manifest.digest().to_string());
    assert_eq!(
        reg.manifest("s/img", "big").unwrap(),
        blob_bytes(&lpath, &img.manifest)
    );
    for b in &img.blobs {
        assert!(reg.has_blob("s/img", b.digest().as_ref()), "{}", b.digest());
    }
    let log = proxy.log();
    assert_eq!(
        log.iter().filter(|r| r.fault.is_some()).count(),
        2,
        "{log:#?}"
    );
    // One PATCH per attempt, each to the end of the blob, and the last one
    // went through.
    let size = img.blobs[1].size();
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 3, "{patches:#?}");
    for p in &patches {
        let range = p.header("Content-Range").unwrap();
        assert!(range.ends_with(&format!("-{}", size - 1)), "{range}");
    }
    assert!(patches[2].fault.is_none());
}

#[test]
fn pull_survives_cut_and_stalled_downloads() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let lpath = tmp.path().join("l");
    let layout = Layout::open_or_create(&lpath).unwrap();
    let img = write_image(&layout, "big", &[noise(3 * 1024 * 1024, 5), noise(5000, 9)]);
    run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:big", lpath.display()),
        &reg.url("d/img:big"),
    ]));
    let big = img.blobs[1].digest().to_string();
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![
            Rule::new(
                "GET",
                "/manifests/big",
                When::Nth(vec![1]),
                Action::Status(502),
            ),
            Rule::new(
                "GET",
                big.clone(),
                When::Nth(vec![1]),
                Action::CutResponse(1_000_000),
            ),
            Rule::new(
                "GET",
                big.clone(),
                When::Nth(vec![2]),
                Action::Stall(Duration::from_secs(3)),
            ),
            Rule::new(
                "GET",
                big.clone(),
                When::Nth(vec![3]),
                Action::CutResponse(700_000),
            ),
        ],
    );
    let out_path = tmp.path().join("pulled");
    let out = json(&run_ok(
        ocipack_cmd()
            .args([
                "pull",
                &proxy.url("d/img:big"),
                &format!("oci:{}:big", out_path.display()),
                "--json",
            ])
            .args(fast_retries()),
    ));
    assert_eq!(out["digest"], img.manifest.digest().to_string());
    for b in &img.blobs {
        assert_eq!(blob_bytes(&out_path, b), blob_bytes(&lpath, b));
    }
    // The download resumed with Range where each cut left it.
    let gets: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|r| r.method == "GET" && r.target.contains(&big))
        .collect();
    assert_eq!(gets.len(), 4, "{gets:#?}");
    assert_eq!(gets[0].header("Range"), None);
    assert_eq!(gets[1].header("Range"), Some("bytes=1000000-"));
    assert_eq!(gets[2].header("Range"), Some("bytes=1000000-"));
    assert_eq!(gets[3].header("Range"), Some("bytes=1700000-"));
}

#[test]
fn tags_never_point_at_incomplete_images_and_budget_is_bounded() {
    let reg = Registry::start();
    let base = fixtures().join("base");
    let index = "sha256:1f9a4f08b40b94c317a7cfa399c6a26cb56c29085f60dbe492d29609430372b0";

    // The index can never be stored: children go up, the tag does not.
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "PUT",
            format!("/manifests/{index}"),
            When::Always,
            Action::Status(500),
        )],
    );
    let err = run_fail(
        ocipack_cmd()
            .args([
                "push",
                &format!("oci:{}:base", base.display()),
                &proxy.url("t/base:v1"),
                "--all",
                "--retries",
                "2",
            ])
            .args(fast_retries()),
    );
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("500"), "{err}");
    assert!(err.contains(index), "{err}");
    assert!(
        reg.manifest("t/base", "v1").is_none(),
        "tag set on a failed push"
    );
    assert!(reg.manifest("t/base", index).is_none());
    let tried = proxy
        .log()
        .iter()
        .filter(|r| r.target.ends_with(index))
        .count();
    assert_eq!(tried, 3);

    // Blob uploads always fail: a clear error, no manifest, no tag.
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "POST",
            "/blobs/uploads/",
            When::Always,
            Action::Status(503),
        )],
    );
    let err = run_fail(
        ocipack_cmd()
            .args([
                "push",
                &format!("oci:{}:base-arm64", base.display()),
                &proxy.url("u/base:arm"),
                "--retries",
                "3",
            ])
            .args(fast_retries()),
    );
    assert!(err.contains("gave up after 4 attempts"), "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(reg.manifest("u/base", "arm").is_none());
}

#[test]
fn a_registry_reporting_another_digest_fails_the_push() {
    let reg = Registry::start();
    let base = fixtures().join("base");
    let forged = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "PUT",
            "/manifests/",
            When::Nth(vec![1]),
            Action::ForgeHeader("Docker-Content-Digest", forged),
        )],
    );
    let err = run_fail(ocipack_cmd().args([
        "push",
        &format!("oci:{}:base-amd64", base.display()),
        &proxy.url("m/base:amd64"),
    ]));
    assert!(
        err.contains(&format!("registry stored it as {forged}")),
        "{err}"
    );
    assert!(
        reg.manifest("m/base", "amd64").is_none(),
        "tag set after a digest mismatch"
    );
}
