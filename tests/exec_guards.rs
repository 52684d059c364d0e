//! Guards (a) `cc -dumpmachine` and (c) the compile-to-object smoke run in
//! every `package` and `build`, under qemu-user, before anything is written
//! (issue 16 §3). The bad compilers are made at test time from the
//! fixtures: the fixture artifact with its gcc replaced, in a layer added by
//! `ocipack append`, by
//! - the riscv64 `gcov` stand-in: a riscv64 ELF (the static compiler guard
//!   passes) that prints the right triple for `-dumpmachine` (so does (a))
//!   but writes no object for `-c`: only (c) catches it;
//! - the amd64 fixture gcc: the wrong architecture.

mod common;

use std::path::Path;
use std::process::Command;

use common::tools::run_ok;
use common::{fixtures, ocipack_err, ocipack_ok, repo};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The riscv64 fixture artifact with `/opt/gcc-16.1.0/bin/gcc` replaced by
/// `from` (a path in the unpacked `cross-android-<src_arch>` artifact).
fn artifact_with_gcc(tmp: &Path, name: &str, src_arch: &str, from: &str) -> String {
    let arts = s(&fixtures().join("artifacts"));
    let unpacked = tmp.join(format!("unpacked-{name}"));
    ocipack_ok(&[
        "unpack",
        &format!("oci:{arts}:cross-android-{src_arch}"),
        &s(&unpacked),
    ]);
    let layer = tmp.join(format!("layer-{name}"));
    let gcc = layer.join("opt/gcc-16.1.0/bin/gcc");
    std::fs::create_dir_all(gcc.parent().unwrap()).unwrap();
    std::fs::copy(unpacked.join(from.trim_start_matches('/')), &gcc).unwrap();
    let out = format!("oci:{}:cross-android-riscv64", s(&tmp.join(name)));
    ocipack_ok(&[
        "append",
        "--base",
        &format!("oci:{arts}:cross-android-riscv64"),
        "--dir",
        &s(&layer),
        "--out",
        &out,
        "--no-cache",
    ]);
    format!("oci:{}:cross-android-{{arch}}", s(&tmp.join(name)))
}

fn build_args(artifact: &str, out: &str) -> Vec<String> {
    let arts = s(&fixtures().join("artifacts"));
    [
        "build",
        "--target-arches",
        "riscv64",
        "--base",
        &format!("oci:{}:base", s(&fixtures().join("base"))),
        "--artifact",
        artifact,
        "--input",
        &format!("venv=oci:{arts}:venv-export-{{arch}}"),
        "--package-recipe",
        &s(&repo().join("layouts/fixtures/package.toml")),
        "--wrapper-recipe",
        &s(&repo().join("layouts/fixtures/wrapper.toml")),
        "--out",
        out,
        "--no-cache",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn build_fails_on_a_compiler_that_compiles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact_with_gcc(tmp.path(), "broken", "riscv64", "/opt/gcc-16.1.0/bin/gcov");
    let out_dir = tmp.path().join("out");
    let out = format!("oci:{}:latest", s(&out_dir));
    let err = ocipack_err(&refs(&build_args(&art, &out)));
    assert!(err.contains("smoke guard (riscv64): FAILED"), "{err}");
    assert!(err.contains("no object written"), "{err}");
    assert!(err.contains("command: "), "{err}");
    // (a) and (b) cannot tell: the binary is riscv64 and names the target.
    assert!(err.contains("dumpmachine guard (riscv64): ok"), "{err}");
    assert!(err.contains("compiler guard (riscv64): ok"), "{err}");
    assert!(
        !out_dir.exists(),
        "nothing may be written when a guard fails"
    );

    // Skipped only by name, with a reason recorded in the images.
    let mut args = build_args(&art, &out);
    args.extend(["--waive".into(), "smoke=gcc is rebuilt downstream".into()]);
    ocipack_ok(&refs(&args));
    for tag in ["latest-package-riscv64", "latest-riscv64"] {
        let cfg = run_ok(
            "skopeo",
            &["inspect", "--config", &format!("oci:{}:{tag}", s(&out_dir))],
        );
        let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
        assert_eq!(
            cfg["config"]["Labels"]["org.kataglyphis.guard-waivers"],
            "smoke: gcc is rebuilt downstream",
            "{tag}: {cfg}"
        );
    }
}

#[test]
fn build_fails_on_a_wrong_arch_compiler() {
    let tmp = tempfile::tempdir().unwrap();
    let art = artifact_with_gcc(tmp.path(), "x86", "amd64", "/opt/gcc-16.1.0/bin/gcc");
    let out_dir = tmp.path().join("out");
    let err = ocipack_err(&refs(&build_args(
        &art,
        &format!("oci:{}:latest", s(&out_dir)),
    )));
    assert!(err.contains("compiler guard (riscv64): FAILED"), "{err}");
    assert!(err.contains("x86-64"), "{err}");
    assert!(
        !out_dir.exists(),
        "nothing may be written when a guard fails"
    );
}

#[test]
fn package_without_qemu_fails_unless_waived_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let package = |tag: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ocipack"))
            .env("PATH", &empty)
            .args([
                "package",
                "--arch",
                "arm64",
                "--base",
                &format!("oci:{}:base", s(&fixtures().join("base"))),
                "--artifact",
                &format!(
                    "oci:{}:cross-android-arm64",
                    s(&fixtures().join("artifacts"))
                ),
                "--recipe",
                &s(&repo().join("layouts/fixtures/package.toml")),
                "--out",
                &format!("oci:{}:{tag}", s(&tmp.path().join("out"))),
                "--no-cache",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = package("p", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("qemu-aarch64-static is not installed: apt-get install qemu-user-static"),
        "{err}"
    );
    assert!(err.contains("dumpmachine guard (arm64): FAILED"), "{err}");
    assert!(err.contains("smoke guard (arm64): FAILED"), "{err}");
    assert!(!tmp.path().join("out").exists());

    let o = package(
        "p",
        &[
            "--waive",
            "dumpmachine=no qemu on this runner",
            "--waive",
            "smoke=no qemu on this runner",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let smoke = v["guards"]["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "smoke")
        .unwrap()
        .clone();
    assert_eq!(smoke["waived"], "no qemu on this runner", "{v}");
    assert_eq!(smoke["checked"], 0, "not run: {v}");
    let cfg = run_ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:p", s(&tmp.path().join("out"))),
        ],
    );
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(
        cfg["config"]["Labels"]["org.kataglyphis.guard-waivers"],
        "dumpmachine: no qemu on this runner; smoke: no qemu on this runner"
    );
}
