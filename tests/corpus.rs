//! Images written by other tools (issue 10): what ocipack makes of them
//! must be what umoci makes of them. The corpus is generated at test time
//! by tests/corpus/gen.sh (umoci, buildah, skopeo, GNU tar, bsdtar,
//! Python's tarfile); nothing is committed as blobs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{require, run_ok};
use common::trees::{assert_same_tree, fingerprint};
use common::{ocipack_err, ocipack_ok, repo};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs tests/corpus/gen.sh for `cases` into `out`.
fn generate(out: &Path, cases: &[&str]) {
    require("python3");
    let st = Command::new("bash")
        .arg(repo().join("tests/corpus/gen.sh"))
        .arg(out)
        .args(cases)
        .output()
        .expect("running tests/corpus/gen.sh");
    assert!(
        st.status.success(),
        "tests/corpus/gen.sh {cases:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", s(layout)),
            &s(bundle),
        ],
    );
    bundle.join("rootfs")
}

/// `ocipack unpack` of `reference` equals `umoci unpack` of `layout:tag`.
fn unpack_like_umoci(reference: &str, layout: &Path, tag: &str, t: &Path) -> PathBuf {
    require("umoci");
    require("getfattr");
    let ours = t.join("ours");
    ocipack_ok(&["unpack", reference, &s(&ours)]);
    let theirs = umoci_unpack(layout, tag, &t.join("bundle"));
    assert_same_tree(&ours, &theirs, t);
    ours
}

#[test]
fn root_entries_and_absolute_names_unpack_like_umoci() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["py-names"]);
    let l = t.path().join("py-names");
    let r = format!("oci:{}:t", s(&l));
    let ours = unpack_like_umoci(&r, &l, "t", t.path());
    let fp = fingerprint(&ours);
    // `/etc/hostname` is `etc/hostname`; `usr/../etc/motd` is `etc/motd`;
    // the hard links named absolutely share the inode of their target.
    for want in [
        "etc/hostname f 644 0 0  2 7",
        "etc/hostname.link f 644 0 0  2 7",
        "etc/hosts f 644 7 8  1 20",
        "etc/motd f 644 0 0  1 8",
        "usr/bin d 711",
        "usr/bin/tool f 755 0 0  2 4",
        "bin l 777 0 0 usr/bin 1",
    ] {
        assert!(fp.contains(want), "{want} missing in\n{fp}");
    }
    // The root's own entry (`/`, then `./`) is applied as umoci does.
    let ocipack_root = std::fs::metadata(&ours).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(ocipack_root.permissions().mode() & 0o7777, 0o755);
    ocipack_ok(&["inspect", &r]);
}

#[test]
fn an_escaping_name_is_refused_naming_the_input_it_came_from() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["py-escape"]);
    let base = format!("oci:{}:t", s(&t.path().join("py-escape")));
    let err = ocipack_err(&["unpack", &base, &s(&t.path().join("root"))]);
    assert!(
        err.contains("refusing entry \"etc/../../escaped\"") && err.contains("'..'"),
        "{err}"
    );
    assert!(!t.path().join("escaped").exists());
    // In a step the error says which input the layer belongs to.
    let art = format!(
        "oci:{}:cross-android-amd64",
        s(&common::fixtures().join("artifacts"))
    );
    let err = ocipack_err(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&repo().join("layouts/fixtures/package.toml")),
        "--out",
        &format!("oci:{}:x", s(&t.path().join("out"))),
    ]);
    assert!(
        err.contains(&format!("base {base}: layer sha256:")) && err.contains("refusing entry"),
        "{err}"
    );
    // ...and for an artifact, `input artifact (REF)`.
    let good_base = format!("oci:{}:base", s(&common::fixtures().join("base")));
    let err = ocipack_err(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &good_base,
        "--artifact",
        &base,
        "--recipe",
        &s(&repo().join("layouts/fixtures/package.toml")),
        "--out",
        &format!("oci:{}:x", s(&t.path().join("out"))),
    ]);
    assert!(
        err.contains(&format!("input artifact ({base}): layer sha256:"))
            && err.contains("refusing entry"),
        "{err}"
    );
}
