//! The registry's token auth mode with an issuer written in the tests:
//! the bearer flow (realm, service, scope), per-scope token caching, and
//! cross-repository mounts that need pull access to the other repository.

mod common;

use std::process::Command;

use common::registry::{Auth, Registry};
use common::token::TokenIssuer;
use common::{fixtures, json, ocipack_cmd, require_tool, run_fail, run_ok};

const BASE_INDEX: &str = "sha256:1f9a4f08b40b94c317a7cfa399c6a26cb56c29085f60dbe492d29609430372b0";

#[test]
fn bearer_tokens_push_pull_and_mount() {
    let issuer = TokenIssuer::start("alice", "s3cret");
    let reg = Registry::start_with(Auth::Yaml(issuer.registry_auth_yaml()));
    let base = fixtures().join("base");
    let src = format!("oci:{}:base", base.display());

    // Anonymous tokens grant nothing: a clear error, nothing stored.
    let err = run_fail(ocipack_cmd().args(["push", &src, &reg.url("t/base:v1"), "--all"]));
    assert!(err.contains("authentication failed"), "{err}");
    assert!(err.contains("--creds"), "{err}");

    let before = issuer.issued();
    let out = json(&run_ok(ocipack_cmd().args([
        "push",
        &src,
        &reg.url("t/base:v1"),
        "--all",
        "--creds",
        "alice:s3cret",
        "--json",
    ])));
    assert_eq!(out["digest"], BASE_INDEX);
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 7);
    // Dozens of requests, one token: it is cached for its scope.
    assert_eq!(issuer.issued() - before, 1);

    // skopeo, through the same token service, reads our exact bytes.
    require_tool("skopeo", "skopeo");
    let raw = Command::new("skopeo")
        .env("HOME", std::env::temp_dir())
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
        ])
        .arg(reg.url("t/base:v1"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        raw.stdout,
        std::fs::read(base.join("blobs/sha256").join(&BASE_INDEX[7..])).unwrap()
    );

    // Registry to registry: the token covers pull on the source repository,
    // so every blob is mounted.
    let out = json(&run_ok(ocipack_cmd().args([
        "copy",
        &reg.url("t/base:v1"),
        &reg.url("u/base:v1"),
        "--all",
        "--creds",
        "alice:s3cret",
        "--json",
    ])));
    assert_eq!(
        out["transfer"]["mounted"].as_array().unwrap().len(),
        7,
        "{out}"
    );
    assert_eq!(out["transfer"]["pushed"].as_array().unwrap().len(), 0);

    // And back into a layout.
    let tmp = tempfile::tempdir().unwrap();
    let out = json(&run_ok(ocipack_cmd().args([
        "pull",
        &reg.url("u/base:v1"),
        &format!("oci:{}:v1", tmp.path().join("l").display()),
        "--all",
        "--creds",
        "alice:s3cret",
        "--json",
    ])));
    assert_eq!(out["digest"], BASE_INDEX);
}
