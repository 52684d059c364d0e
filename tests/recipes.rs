//! End-to-end checks of what the command line prints.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::fixtures;

fn s(p: &Path) -> String {
    p.display().to_string()
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
