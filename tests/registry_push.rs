//! Push, pull and copy against a real registry (distribution 2.8), with
//! skopeo as the independent client that must agree byte for byte.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::registry::Registry;
use common::{fixtures, json, ocipack_cmd, require_tool, run_fail, run_ok};

const BASE_INDEX: &str = "sha256:1f9a4f08b40b94c317a7cfa399c6a26cb56c29085f60dbe492d29609430372b0";
const ART_ARM64: &str = "sha256:6ad83e5597659b2a0b32fbf2faf3765afb04dda5b411594c5f59659d8ab19119";

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", layout.display()))
}

fn skopeo() -> Command {
    require_tool("skopeo", "skopeo");
    let mut c = Command::new("skopeo");
    c.env("HOME", std::env::temp_dir());
    c
}

/// Every blob of `layout` is byte-identical to the fixture blob of the same
/// name; returns how many there are.
fn assert_blobs_match_fixture(layout: &Path, fixture: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        let ours = std::fs::read(e.path()).expect("read blob");
        let theirs = std::fs::read(fixture.join("blobs/sha256").join(&name))
            .unwrap_or_else(|_| panic!("{name:?} is not a fixture blob"));
        assert_eq!(ours, theirs, "blob {name:?} differs");
        n += 1;
    }
    n
}

fn child_digests(index_bytes: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(index_bytes).expect("index JSON");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn push_all_then_skopeo_reads_exactly_our_bytes() {
    let reg = Registry::start();
    let base = fixtures().join("base");
    let out = json(&run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:base", base.display()),
        &reg.url("fix/base:v1"),
        "--all",
        "--json",
    ])));
    assert_eq!(out["digest"], BASE_INDEX);
    assert_eq!(
        out["pins"][0],
        format!("{}/fix/base@{BASE_INDEX}", reg.host())
    );
    assert_eq!(out["pins"].as_array().unwrap().len(), 4, "{out}");
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 7);
    assert_eq!(out["transfer"]["tags"][0], "v1");
    // The index went up last, after every child.
    let manifests = out["transfer"]["manifests"].as_array().unwrap();
    assert_eq!(
        manifests.last().unwrap(),
        &serde_json::json!(format!("{}/fix/base@{BASE_INDEX}", reg.host()))
    );

    // skopeo sees exactly the bytes we wrote, for the tag and each child.
    let index = blob(&base, BASE_INDEX);
    let raw = Command::output(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.url("fix/base:v1"),
    ]))
    .expect("skopeo");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, index);
    for child in child_digests(&index) {
        let raw = Command::output(skopeo().args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &reg.url(&format!("fix/base@{child}")),
        ]))
        .expect("skopeo");
        assert_eq!(raw.stdout, blob(&base, &child), "child {child}");
    }

    // skopeo pulls everything back, identical to the fixture.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("sk");
    run_ok(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &reg.url("fix/base:v1"),
        &format!("oci:{}:v1", dest.display()),
    ]));
    assert_eq!(assert_blobs_match_fixture(&dest, &base), 11);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"][0]["digest"], BASE_INDEX);

    // Again: everything is there, nothing is uploaded.
    let again = json(&run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:base", base.display()),
        &reg.url("fix/base:v1"),
        "--all",
        "--json",
    ])));
    assert_eq!(again["transfer"]["pushed"].as_array().unwrap().len(), 0);
    assert_eq!(again["transfer"]["skipped"].as_array().unwrap().len(), 7);
    assert_eq!(again["transfer"]["bytes_pushed"], 0);
}

#[test]
fn pull_what_skopeo_pushed_with_identical_digests() {
    let reg = Registry::start();
    let art = fixtures().join("artifacts");
    let base = fixtures().join("base");
    run_ok(skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:cross-android-arm64", art.display()),
        &reg.url("sk/art:arm64"),
    ]));
    run_ok(skopeo().args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:base", base.display()),
        &reg.url("sk/base:v1"),
    ]));
    let tmp = tempfile::tempdir().unwrap();

    let l1 = tmp.path().join("art");
    let out = json(&run_ok(ocipack_cmd().args([
        "pull",
        &reg.url("sk/art:arm64"),
        &format!("oci:{}:arm64", l1.display()),
        "--json",
    ])));
    assert_eq!(out["digest"], ART_ARM64);
    assert_eq!(out["pins"][0], format!("oci:{}@{ART_ARM64}", l1.display()));
    assert_eq!(assert_blobs_match_fixture(&l1, &art), 5);

    let l2 = tmp.path().join("base");
    let out = json(&run_ok(ocipack_cmd().args([
        "pull",
        &reg.url("sk/base:v1"),
        &format!("oci:{}:v1", l2.display()),
        "--all",
        "--json",
    ])));
    assert_eq!(out["digest"], BASE_INDEX);
    assert_eq!(assert_blobs_match_fixture(&l2, &base), 11);

    // One platform of the index, by --arch, into an archive.
    let ar = tmp.path().join("arm.tar");
    let out = json(&run_ok(ocipack_cmd().args([
        "pull",
        &reg.url("sk/base:v1"),
        &format!("oci-archive:{}:arm", ar.display()),
        "--arch",
        "arm64",
        "--json",
    ])));
    assert_eq!(
        out["digest"],
        "sha256:37718ae8a05ce1e3c30893c6ba70c169a89604430863cf81c4a7701ed897a2e7"
    );
    assert!(ar.is_file());

    // A tag that does not exist is a clear error, and nothing is created.
    let l3 = tmp.path().join("none");
    let err = run_fail(ocipack_cmd().args([
        "pull",
        &reg.url("sk/base:nope"),
        &format!("oci:{}:x", l3.display()),
    ]));
    assert!(err.contains("manifest nope not found"), "{err}");
}

#[test]
fn chunked_uploads_and_cross_repository_mounts() {
    let reg = Registry::start();
    let art = fixtures().join("artifacts");
    let src = format!("oci:{}:cross-android-riscv64", art.display());
    // 4 KiB chunks: every layer goes up in many PATCH requests.
    let out = json(&run_ok(ocipack_cmd().args([
        "push",
        &src,
        &reg.url("a/x:rv"),
        "--chunk-size",
        "4K",
        "--json",
    ])));
    let digest = out["digest"].as_str().unwrap().to_string();
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 4);
    let raw = reg.manifest("a/x", "rv").expect("tag rv");
    assert_eq!(raw, blob(&art, &digest));

    // Pulled back with our own client: identical blobs.
    let tmp = tempfile::tempdir().unwrap();
    let back = tmp.path().join("back");
    run_ok(ocipack_cmd().args([
        "pull",
        &reg.url("a/x:rv"),
        &format!("oci:{}:rv", back.display()),
    ]));
    assert_eq!(assert_blobs_match_fixture(&back, &art), 5);

    // Registry to registry, same host: every blob is mounted, none sent.
    let out = json(&run_ok(ocipack_cmd().args([
        "copy",
        &reg.url("a/x:rv"),
        &reg.url("b/y:rv"),
        "--json",
    ])));
    assert_eq!(out["digest"], digest);
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 0);
    let mounted = out["transfer"]["mounted"].as_array().unwrap();
    assert_eq!(mounted.len(), 4, "{out}");
    assert!(mounted.iter().all(|m| m["from"] == "a/x"));
    assert_eq!(reg.manifest("b/y", "rv").unwrap(), blob(&art, &digest));

    // A --mount-from hint with a layout source: the three shared layers
    // are mounted, only the new layer and config are uploaded.
    let out = json(&run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:cross-android-riscv64-bad", art.display()),
        &reg.url("c/z:bad"),
        "--mount-from",
        "a/x",
        "--json",
    ])));
    assert_eq!(out["transfer"]["mounted"].as_array().unwrap().len(), 3);
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 2);
}

#[test]
fn basic_auth_from_flags_files_and_helpers() {
    let reg = Registry::start_basic("alice", "s3cret");
    let base = fixtures().join("base");
    let src = format!("oci:{}:base-amd64", base.display());

    let err = run_fail(ocipack_cmd().args(["push", &src, &reg.url("p/base:amd64")]));
    assert!(err.contains("authentication failed"), "{err}");
    assert!(err.contains("--creds"), "{err}");

    let err = run_fail(ocipack_cmd().args([
        "push",
        &src,
        &reg.url("p/base:amd64"),
        "--creds",
        "alice:wrong",
    ]));
    assert!(err.contains("credentials rejected"), "{err}");
    assert!(reg.manifest("p/base", "amd64").is_none());

    run_ok(ocipack_cmd().args([
        "push",
        &src,
        &reg.url("p/base:amd64"),
        "--creds",
        "alice:s3cret",
    ]));
    let digest = "sha256:6b242a4976301a05f55f0528e0d8ac0cd345b43c1ff8bae78ac8b4707abb90fc";
    let raw = Command::output(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &reg.url("p/base:amd64"),
    ]))
    .unwrap();
    assert_eq!(raw.stdout, blob(&base, digest));

    // containers' auth.json
    let tmp = tempfile::tempdir().unwrap();
    let auth_file = tmp.path().join("auth.json");
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let l1 = tmp.path().join("l1");
    let out = json(&run_ok(
        ocipack_cmd()
            .args([
                "pull",
                &reg.url("p/base:amd64"),
                &format!("oci:{}:x", l1.display()),
                "--json",
            ])
            .env("REGISTRY_AUTH_FILE", &auth_file),
    ));
    assert_eq!(out["digest"], digest);

    // Docker's config.json with a credential helper on PATH.
    let docker = tmp.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"ocitest"}}}}"#, reg.host()),
    )
    .unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-ocitest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"alice\\\",\\\"Secret\\\":\\\"s3cret\\\"}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let l2 = tmp.path().join("l2");
    let out = json(&run_ok(
        ocipack_cmd()
            .args([
                "pull",
                &reg.url("p/base:amd64"),
                &format!("oci:{}:x", l2.display()),
                "--json",
            ])
            .env("DOCKER_CONFIG", &docker)
            .env("PATH", path),
    ));
    assert_eq!(out["digest"], digest);
}
