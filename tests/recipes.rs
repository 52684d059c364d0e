//! End-to-end checks of recipe runs and of what the command line prints.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixtures, repo};
use serde_json::Value;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs ocipack with a fixed SOURCE_DATE_EPOCH; returns the JSON report.
fn ocipack_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .arg("--json")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running ocipack");
    assert!(
        out.status.success(),
        "ocipack {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn ocipack_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running ocipack");
    assert!(!out.status.success(), "ocipack {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `root` + an absolute image path.
fn at(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

fn put(root: &Path, abs: &str, bytes: &[u8]) {
    let p = at(root, abs);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
}

/// An image holding `dir` on top of `base` (an amd64 base for the cross
/// artifact, as BuildKit's cross stages are).
fn image_of(dir: &Path, base: &str, out: &str) {
    ocipack_json(&[
        "append",
        "--base",
        base,
        "--dir",
        &format!("{}:/", s(dir)),
        "--out",
        out,
    ]);
}

/// A required path the artifact lacks: all of them in one error, naming
/// the input.
#[test]
fn every_missing_path_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = t.join("art");
    put(&root, "/opt/opencv5/README", b"only this\n");
    let art = format!("oci:{}:cross-android-arm64", s(&t.join("artifacts")));
    image_of(
        &root,
        &format!("oci:{}:base-amd64", s(&fixtures().join("base"))),
        &art,
    );
    let err = ocipack_fails(&[
        "package",
        "--arch",
        "arm64",
        "--base",
        &format!("oci:{}:base", s(&fixtures().join("base"))),
        "--artifact",
        &art,
        "--recipe",
        &s(&repo().join("layouts/package.toml")),
        "--versions",
        &s(&repo().join("layouts/versions.env")),
        "--out",
        &format!("oci:{}:x", s(&t.join("out"))),
    ]);
    for missing in [
        "/opt/gcc-16.1.0",
        "/opt/llvm-target",
        "/opt/android-sdk",
        "/usr/local/cargo",
        "/opt/vulkan",
        "/usr/local/lib/onnxruntime-cpu",
    ] {
        assert!(err.contains(missing), "{missing} not named in: {err}");
    }
    assert!(!err.contains("/opt/opencv5,"), "{err}");
    assert!(err.contains("input artifact (oci:"), "{err}");
}

/// WARN lines carry no ANSI escape codes when stderr is a pipe or a file.
#[test]
fn log_lines_are_plain_off_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("file"), b"x").unwrap();
    // A socket cannot go into a tar: ocipack warns and skips it.
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args([
            "append",
            "--base",
            &format!("oci:{}:base-amd64", s(&fixtures().join("base"))),
            "--dir",
            &s(&dir),
            "--out",
            &format!("oci:{}:x", s(&tmp.path().join("out"))),
        ])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARN") && err.contains("socket"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}
