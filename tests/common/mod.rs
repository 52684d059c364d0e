//! Shared helpers for the end-to-end tests.
#![allow(dead_code)]

pub mod containerd;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `fixtures/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("fixtures")
}

/// Runs the ocipack binary.
pub fn ocipack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .output()
        .expect("running ocipack")
}

/// Runs ocipack and asserts success, returning stdout.
pub fn ocipack_ok(args: &[&str]) -> String {
    let out = ocipack(args);
    assert!(
        out.status.success(),
        "ocipack {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs ocipack, asserts failure, returns stderr.
pub fn ocipack_err(args: &[&str]) -> String {
    let out = ocipack(args);
    assert!(
        !out.status.success(),
        "ocipack {args:?} should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copies a directory tree (for tests that must not touch the fixtures).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// A hash of every file under `dir` (path, type, content), to prove a
/// command left a tree untouched.
pub fn tree_fingerprint(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -printf '%p %y %s %m %l\\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum")
        .current_dir(dir)
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
