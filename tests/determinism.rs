//! Same inputs, same digests: whatever the output directory, the thread
//! count, or the mtimes a fresh checkout gives the recipe's files.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn build(workdir: &Path, out: &str, threads: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .current_dir(workdir)
        .env_remove("SOURCE_DATE_EPOCH")
        .args([
            "build",
            "--json",
            "--threads",
            threads,
            "--base",
            "oci:fixtures/base:base",
            "--artifact",
            "oci:fixtures/artifacts:cross-android-{arch}",
            "--input",
            "venv=oci:fixtures/artifacts:venv-export-{arch}",
            "--package-recipe",
            "layouts/fixtures/package.toml",
            "--wrapper-recipe",
            "layouts/fixtures/wrapper.toml",
            "--out",
            out,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["index"]["digest"]
        .as_str()
        .expect("index digest in --json")
        .to_string()
}

/// The digests of a layout's artifact manifests (its referrers), sorted.
fn artifacts(layout: &Path) -> Vec<String> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut v: Vec<String> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["artifactType"].is_string())
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    assert_eq!(v.len(), 12, "two referrers per image written");
    v
}

#[test]
fn build_is_reproducible_across_directories_threads_and_checkouts() {
    let t = tempfile::tempdir().unwrap();
    // A second "checkout": fresh copies, so every file has a new mtime.
    let clone = t.path().join("clone");
    std::fs::create_dir(&clone).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(repo().join("fixtures"))
        .arg(repo().join("layouts"))
        .arg(&clone)
        .status()
        .unwrap();
    assert!(st.success());
    let a = build(
        &repo(),
        &format!("oci:{}:latest-cross", t.path().join("a").display()),
        "1",
    );
    let b = build(&clone, "oci:out:latest-cross", "8");
    assert_eq!(a, b, "the same build gave two index digests");
    // The SBOM and provenance referrers too: the same artifact manifests
    // (so the same documents), wherever the layout was staged.
    assert_eq!(
        artifacts(&t.path().join("a")),
        artifacts(&clone.join("out")),
        "the same build gave other SBOM or provenance bytes"
    );
}
