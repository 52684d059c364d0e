//! The shipped recipes (`layouts/package.toml`, `layouts/wrapper.toml`)
//! run end to end, for every arch, on a synthetic artifact generated here:
//! a typo in a shipped path, an allow-list that misses what the real trees
//! hold, or a broken guard setting fails CI, not the first real build.
//!
//! The artifact's contents come from the seed pipeline's own list of what
//! `Dockerfile.package` copies ([`SEED_TREES`], [`SEED_EXTRAS`]), not from
//! the recipe, so a misspelt path in the recipe cannot hide: a misspelt
//! required path is absent, and the correctly spelt one is then missing
//! from the result. Target ELF files are copied from the fixture artifacts
//! (`fixtures/artifacts`, real cross-compiled binaries; the compiler is the
//! fixture's `fakegcc`, which answers `-dumpmachine` and compiles the smoke
//! object), and the foreign ELF files the real trees hold (host tools,
//! other ABIs, 32-bit multilib) are planted where they live, to prove the
//! recipe's ELF allow-list covers them, and only them.
//!
//! Also here: every missing path named in one error, and log lines without
//! escape codes off a terminal.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixtures, repo};
use ocipack::platform::TargetArch;
use ocipack::recipe::{self, LayerSource, VarInputs};
use serde_json::Value;

const GCC: &str = "/opt/gcc-16.1.0";

/// Trees the seed's package step copies (CONTEXT.md, "package"): source,
/// where it lands, and whether it is handed to uid/gid 1001.
const SEED_TREES: &[(&str, &str, bool)] = &[
    (
        "/usr/local/lib/onnxruntime-cpu",
        "/usr/local/lib/onnxruntime-cpu",
        false,
    ),
    ("/opt/opencv5", "/opt/opencv5", false),
    ("/opt/ffmpeg", "/opt/ffmpeg", false),
    ("/opt/gstreamer", "/opt/gstreamer", false),
    ("/opt/libcamera", "/opt/libcamera", false),
    ("/opt/armnn", "/opt/armnn", false),
    ("/opt/acl", "/opt/acl", false),
    ("/opt/vulkan", "/opt/vulkan", false),
    ("/opt/android-sdk", "/opt/android-sdk", false),
    ("/opt/android", "/opt/android", false),
    (GCC, GCC, false),
    ("/opt/flutter", "/opt/flutter", true),
    ("/usr/local/rustup", "/usr/local/rustup", true),
    ("/usr/local/cargo", "/usr/local/cargo", true),
    ("/opt/llvm-target", "/usr/local/llvm-target", false),
];

/// The seed's "copy if present" extras, one file each (globs by a name
/// they match).
const SEED_EXTRAS: &[&str] = &[
    "/usr/local/lib/onnxruntime-genai/lib/libonnxruntime-genai.so.0.1",
    "/usr/local/lib/onnxruntime-gpu/lib/libonnxruntime_providers_shared.so",
    "/usr/local/include/tflite/c_api.h",
    "/usr/local/include/absl/types/span.h",
    "/usr/local/include/tensorflow/lite/c/c_api.h",
    "/usr/local/include/flatbuffers/flatbuffers.h",
    "/usr/local/include/c/c_api.h",
    "/usr/local/lib/pkgconfig/litert.pc",
    "/usr/local/lib/pkgconfig/tensorflow-lite.pc",
    "/usr/local/lib/pkgconfig/tensorflowlite_c.pc",
    "/usr/local/lib/libLiteRtRuntime.so.1",
    "/usr/local/lib/libtensorflow-lite.so.2.20",
    "/usr/local/lib/libtensorflowlite_c.so",
];

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

fn put_exe(root: &Path, abs: &str, bytes: &[u8]) {
    put(root, abs, bytes);
    let p = at(root, abs);
    let mut perm = fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&p, perm).unwrap();
}

/// A 32-bit little-endian ELF header (`e_machine` = 3 for i386, 40 for
/// ARM): all the ELF guard reads. No fixture holds a 32-bit ELF.
fn elf32(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 52];
    h[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1]);
    h[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[40..42].copy_from_slice(&52u16.to_le_bytes());
    h
}

/// The fixture artifact of `arch`, unpacked once per test run.
fn fixture_payload(dir: &Path, arch: &str) -> PathBuf {
    let out = dir.join(format!("fixture-{arch}"));
    if !out.exists() {
        let art = format!(
            "oci:{}:cross-android-{arch}",
            s(&fixtures().join("artifacts"))
        );
        ocipack_json(&["unpack", &art, &s(&out)]);
    }
    out
}

/// ELF files planted where the real trees hold them although they are not
/// built for the target: (path, bytes, the arch they are native to: the
/// amd64 host's tools, Android's arm64 libraries; 32-bit ones to none).
fn foreign_elves(
    arch: TargetArch,
    x86: &Path,
    arm64: &Path,
) -> Vec<(String, Vec<u8>, Option<TargetArch>)> {
    let host = fs::read(at(x86, "/opt/ffmpeg/bin/ffmpeg")).unwrap();
    let aarch64 = fs::read(at(arm64, "/opt/ffmpeg/bin/ffmpeg")).unwrap();
    let tc = "/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu";
    let ndk = "toolchains/llvm/prebuilt/linux-x86_64";
    const HOST: Option<TargetArch> = Some(TargetArch::Amd64);
    const ARM64: Option<TargetArch> = Some(TargetArch::Arm64);
    let mut v = vec![
        // The NDK: host tools and per-Android-ABI sysroots (32-bit ARM and
        // x86 among them), under /opt/android and under the SDK.
        (format!("/opt/android/ndk/{ndk}/bin/clang"), host.clone(), HOST),
        (
            format!("/opt/android/ndk/{ndk}/sysroot/usr/lib/aarch64-linux-android/libc.so"),
            aarch64.clone(),
            ARM64,
        ),
        (
            format!("/opt/android/ndk/{ndk}/sysroot/usr/lib/arm-linux-androideabi/libc.so"),
            elf32(40),
            None,
        ),
        (
            format!("/opt/android-sdk/ndk/27.2.12479018/{ndk}/sysroot/usr/lib/i686-linux-android/libc.so"),
            elf32(3),
            None,
        ),
        // SDK host tools: linux-x86_64 only.
        ("/opt/android-sdk/platform-tools/adb".into(), host.clone(), HOST),
        ("/opt/android-sdk/build-tools/35.0.0/aapt2".into(), host.clone(), HOST),
        // Flutter's cached Dart SDK (host) and engine artifacts (per
        // Android ABI, some 32-bit).
        ("/opt/flutter/bin/cache/dart-sdk/bin/dart".into(), host.clone(), HOST),
        (
            "/opt/flutter/bin/cache/artifacts/engine/android-arm-release/linux-x64/gen_snapshot".into(),
            elf32(3),
            None,
        ),
        // rustup's std libraries for the cross targets the toolchain can
        // build for (Android ABIs).
        (
            format!("{tc}/lib/rustlib/aarch64-linux-android/lib/libstd-0123abcd.so"),
            aarch64.clone(),
            ARM64,
        ),
        // The build host's rustup toolchain and cargo proxies.
        (format!("{tc}/bin/rustc"), host.clone(), HOST),
        (
            format!("{tc}/lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-0123abcd.so"),
            host.clone(),
            HOST,
        ),
        ("/usr/local/cargo/bin/cargo".into(), host.clone(), HOST),
        ("/usr/local/cargo/bin/rustup".into(), host.clone(), HOST),
    ];
    if arch == TargetArch::Amd64 {
        // GCC's 32-bit multilib (`-m32`) runtime on x86-64.
        v.push((format!("{GCC}/lib32/libstdc++.so.6"), elf32(3), None));
        v.push((
            format!("{GCC}/lib/gcc/x86_64-linux-gnu/16.1.0/32/crtbegin.o"),
            elf32(3),
            None,
        ));
    }
    v
}

/// Writes the synthetic cross-android tree for `arch` into `root`; returns
/// the ELF paths it planted that are foreign to `arch`.
fn synthetic_artifact(dir: &Path, root: &Path, arch: TargetArch) -> Vec<String> {
    let name = arch.oci_name();
    let triple = arch.gnu_triple();
    let fx = fixture_payload(dir, name);
    let x86 = fixture_payload(dir, "amd64");
    let arm64 = fixture_payload(dir, "arm64");
    let target_lib = fs::read(at(
        &fx,
        "/usr/local/lib/onnxruntime-cpu/lib/libonnxruntime.so.1",
    ))
    .unwrap();
    let target_exe = fs::read(at(&fx, "/opt/ffmpeg/bin/ffmpeg")).unwrap();
    // The compiler: the fixture's gcc, which passes guards (a), (b), (c).
    let gcc = fs::read(at(&fx, &format!("{GCC}/bin/gcc"))).unwrap();
    let clang = fs::read(at(&fx, "/opt/llvm-target/bin/clang")).unwrap();
    for tool in ["gcc", "g++", &format!("{triple}-gcc")] {
        put_exe(root, &format!("{GCC}/bin/{tool}"), &gcc);
    }
    put_exe(root, &format!("{GCC}/bin/gcov"), &target_exe);
    put(
        root,
        &format!("{GCC}/lib/gcc/{triple}/16.1.0/crtbegin.o"),
        &fs::read(at(
            &fx,
            &format!("{GCC}/lib/gcc/{triple}/16.1.0/crtbegin.o"),
        ))
        .unwrap(),
    );
    put(root, &format!("{GCC}/lib64/libstdc++.so.6"), &target_lib);
    put_exe(root, "/opt/llvm-target/bin/clang", &clang);
    std::os::unix::fs::symlink("clang", at(root, "/opt/llvm-target/bin/clang++")).unwrap();
    for tool in ["llvm-ar", "llvm-ranlib"] {
        put_exe(root, &format!("/opt/llvm-target/bin/{tool}"), &target_exe);
    }
    put(root, "/opt/llvm-target/lib/libLLVM.so.22", &target_lib);
    for lib in [
        "/usr/local/lib/onnxruntime-cpu/lib/libonnxruntime.so.1",
        "/opt/opencv5/lib/libopencv_core.so.500",
        "/opt/gstreamer/lib/libgstreamer-1.0.so.0",
        "/opt/libcamera/lib/libcamera.so.0.5",
        "/opt/armnn/lib/libarmnn.so.33",
        "/opt/acl/lib/libarm_compute.so",
    ] {
        put(root, lib, &target_lib);
    }
    put_exe(root, "/opt/ffmpeg/bin/ffmpeg", &target_exe);
    // The Vulkan SDK: the host subtree on every arch (pruned on foreign
    // ones), plus the target's own on foreign arches.
    put_exe(
        root,
        "/opt/vulkan/1.4.321.0/x86_64/bin/vulkaninfo",
        &fs::read(at(&x86, "/opt/ffmpeg/bin/ffmpeg")).unwrap(),
    );
    put(root, "/opt/vulkan/1.4.321.0/setup-env.sh", b"# vulkan\n");
    if arch != TargetArch::Amd64 {
        put(
            root,
            &format!(
                "/opt/vulkan/1.4.321.0/{}/lib/libvulkan.so.1",
                arch.gnu_cpu()
            ),
            &target_lib,
        );
    }
    put(
        root,
        "/opt/android-sdk/platform-tools/source.properties",
        b"Pkg.Revision=35\n",
    );
    put(
        root,
        "/opt/android/ndk/source.properties",
        b"Pkg.Revision=27\n",
    );
    put_exe(
        root,
        "/opt/flutter/bin/flutter",
        b"#!/bin/sh\necho flutter\n",
    );
    put(
        root,
        "/usr/local/rustup/settings.toml",
        b"version = \"12\"\n",
    );
    put(
        root,
        "/usr/local/cargo/env",
        b"export PATH=/usr/local/cargo/bin:$PATH\n",
    );
    for extra in SEED_EXTRAS {
        if extra.ends_with(".h") || extra.ends_with(".pc") {
            put(root, extra, b"/* synthetic */\n");
        } else {
            put(root, extra, &target_lib);
        }
    }
    std::os::unix::fs::symlink(
        "libLiteRtRuntime.so.1",
        at(root, "/usr/local/lib/libLiteRtRuntime.so"),
    )
    .unwrap();
    let mut foreign = Vec::new();
    for (path, bytes, native) in foreign_elves(arch, &x86, &arm64) {
        put_exe(root, &path, &bytes);
        if native != Some(arch) {
            foreign.push(path);
        }
    }
    foreign
}

/// What a recipe declares that the seed list does not know (a path added
/// to the recipe since, e.g. a new optional tree): required sources and
/// required guard paths below them, so the run does not stop on them. A
/// misspelt seed path is still caught: the correct one is then missing
/// from the result.
fn complete_from_recipe(root: &Path, file: &Path, arch: TargetArch, input: &str) {
    let r = load_recipe(file, arch);
    let mut sources = Vec::new();
    for l in &r.layers {
        if let LayerSource::Image {
            input: i,
            selection,
        } = &l.source
        {
            if i != input {
                continue;
            }
            for rule in selection.rules.iter().filter(|r| !r.optional) {
                if !recipe::is_glob(&rule.source) {
                    sources.push((rule.source.clone(), rule.dest.clone()));
                }
            }
        }
    }
    for (src, _) in &sources {
        if !at(root, src).exists() {
            put(root, &format!("{src}/README"), b"synthetic\n");
        }
    }
    for req in &r.guards.required {
        for (src, dest) in &sources {
            let landed = dest.as_deref().unwrap_or(src);
            if let Some(rest) = req.strip_prefix(landed).filter(|r| r.starts_with('/')) {
                let p = format!("{src}{rest}");
                if !at(root, &p).exists() && fs::symlink_metadata(at(root, &p)).is_err() {
                    put(root, &p, b"synthetic\n");
                }
            }
        }
    }
}

fn load_recipe(file: &Path, arch: TargetArch) -> recipe::Recipe {
    let mut inputs = VarInputs::default();
    inputs
        .load_versions(&repo().join("layouts/versions.env"))
        .unwrap();
    inputs
        .run
        .insert("CREATED".into(), "2023-11-14T22:13:20Z".into());
    recipe::load(file, arch, &inputs).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
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

fn allowed_elves(report: &Value) -> BTreeSet<String> {
    report["guards"]["guards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["guard"] == "elf")
        .flat_map(|g| g["allowed"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            assert!(!a["reason"].as_str().unwrap().trim().is_empty(), "{a}");
            a["path"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn shipped_recipes_run_on_a_synthetic_artifact_for_every_arch() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let amd64_base = format!("oci:{}:base-amd64", s(&fixtures().join("base")));
    let package_toml = repo().join("layouts/package.toml");
    let wrapper_toml = repo().join("layouts/wrapper.toml");
    let versions = s(&repo().join("layouts/versions.env"));
    let out = t.join("out");
    let arts = t.join("artifacts");
    for arch in TargetArch::ALL {
        let name = arch.oci_name();
        let root = t.join(format!("art-{name}"));
        let planted = synthetic_artifact(t, &root, arch);
        complete_from_recipe(&root, &package_toml, arch, "artifact");
        let art = format!("oci:{}:cross-android-{name}", s(&arts));
        image_of(&root, &amd64_base, &art);

        let tag = format!("oci:{}:latest-package-{name}", s(&out));
        let p = ocipack_json(&[
            "package",
            "--arch",
            name,
            "--base",
            &base,
            "--artifact",
            &art,
            "--recipe",
            &s(&package_toml),
            "--versions",
            &versions,
            "--out",
            &tag,
            "--run-id",
            "run-7",
        ]);
        // Every foreign ELF is let through by a documented allow-list
        // entry, and nothing else needed one.
        let allowed = allowed_elves(&p);
        let expected: BTreeSet<String> = planted.iter().cloned().collect();
        assert_eq!(allowed, expected, "{name}: ELF allow-list");

        // Every seed path landed where the seed puts it.
        let unpacked = t.join(format!("unpacked-{name}"));
        ocipack_json(&["unpack", &tag, &s(&unpacked)]);
        for (src, dest, owned) in SEED_TREES {
            let p = at(&unpacked, dest);
            let m = fs::symlink_metadata(&p)
                .unwrap_or_else(|e| panic!("{name}: {src} not copied to {dest}: {e}"));
            assert!(m.is_dir(), "{name}: {dest}");
            let want = if *owned { 1001 } else { 0 };
            assert_eq!((m.uid(), m.gid()), (want, want), "{name}: owner of {dest}");
        }
        for extra in SEED_EXTRAS {
            assert!(
                at(&unpacked, extra).exists(),
                "{name}: optional {extra} not copied"
            );
        }
        assert_eq!(
            at(&unpacked, "/opt/vulkan/1.4.321.0/x86_64").exists(),
            arch == TargetArch::Amd64,
            "{name}: host Vulkan subtree pruned on foreign arches only"
        );
        assert_eq!(
            fs::read_link(at(&unpacked, "/etc/alternatives/cc")).unwrap(),
            Path::new(&format!("{GCC}/bin/gcc"))
        );

        // The wrapper on top: the venv export from the fixtures, any other
        // input the recipe declares generated from what it copies.
        let w = load_recipe(&wrapper_toml, arch);
        let mut args: Vec<String> = [
            "wrapper",
            "--arch",
            name,
            "--base",
            &tag,
            "--recipe",
            &s(&wrapper_toml),
            "--versions",
            &versions,
            "--run-id",
            "run-7",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push("--out".into());
        args.push(format!("oci:{}:latest-{name}", s(&out)));
        for input in w.inputs.keys() {
            let reference = if input == "venv" {
                format!(
                    "oci:{}:venv-export-{name}",
                    s(&fixtures().join("artifacts"))
                )
            } else {
                let dir = t.join(format!("input-{input}-{name}"));
                fs::create_dir_all(&dir).unwrap();
                complete_from_recipe(&dir, &wrapper_toml, arch, input);
                let r = format!("oci:{}:{input}-{name}", s(&arts));
                image_of(
                    &dir,
                    &format!("oci:{}:base-{name}", s(&fixtures().join("base"))),
                    &r,
                );
                r
            };
            args.push("--input".into());
            args.push(format!("{input}={reference}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let wr = ocipack_json(&args);
        assert_eq!(wr["run_id"], "run-7");
        assert_eq!(wr["base_digest"], p["digest"]);
    }
    // One run id: the index passes every gate.
    let image = format!("oci:{}:latest", s(&out));
    let m = ocipack_json(&["manifest", "--image", &image]);
    assert_eq!(m["children"].as_array().map(Vec::len), Some(3), "{m}");

    // The allow-lists are not a blanket: a host (x86-64) library among the
    // target's media libraries still stops a foreign build.
    let root = t.join("art-riscv64");
    put(
        &root,
        "/opt/opencv5/lib/libopencv_stray.so",
        &fs::read(at(&fixture_payload(t, "amd64"), "/opt/ffmpeg/bin/ffmpeg")).unwrap(),
    );
    let art = format!("oci:{}:cross-android-riscv64-bad", s(&arts));
    image_of(&root, &amd64_base, &art);
    let err = ocipack_fails(&[
        "package",
        "--arch",
        "riscv64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&package_toml),
        "--versions",
        &versions,
        "--out",
        &format!("oci:{}:bad", s(&out)),
    ]);
    assert!(err.contains("/opt/opencv5/lib/libopencv_stray.so"), "{err}");

    // `--set WITH_ANDROID=0` leaves the Android SDK and NDK out.
    let art = format!("oci:{}:cross-android-arm64", s(&arts));
    let tag = format!("oci:{}:no-android", s(&out));
    ocipack_json(&[
        "package",
        "--arch",
        "arm64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&package_toml),
        "--versions",
        &versions,
        "--set",
        "WITH_ANDROID=0",
        "--out",
        &tag,
    ]);
    let unpacked = t.join("unpacked-no-android");
    ocipack_json(&["unpack", &tag, &s(&unpacked)]);
    assert!(!at(&unpacked, "/opt/android-sdk").exists());
    assert!(!at(&unpacked, "/opt/android").exists());
    assert!(at(&unpacked, "/opt/flutter/bin/flutter").exists());
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

/// `TARGET_ARCHES` (the seed scripts' variable) picks the arches like
/// `--target-arches`; the flag wins over it.
#[test]
fn target_arches_from_the_environment() {
    let fx = fixtures();
    let args = [
        "build".to_string(),
        "--base".into(),
        format!("oci:{}:base", s(&fx.join("base"))),
        "--artifact".into(),
        format!("oci:{}:cross-android-{{arch}}", s(&fx.join("artifacts"))),
        "--out".into(),
        "oci:/nonexistent:latest".into(),
        "--dry-run".into(),
    ];
    let plan = |env: Option<&str>, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ocipack"));
        c.args(&args).args(extra).env_remove("TARGET_ARCHES");
        if let Some(v) = env {
            c.env("TARGET_ARCHES", v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let p = plan(Some("arm64,riscv64"), &[]);
    assert!(
        p.contains("index oci:/nonexistent:latest from arm64,riscv64"),
        "{p}"
    );
    assert!(!p.contains("amd64: package"), "{p}");
    let p = plan(Some("arm64,riscv64"), &["--target-arches", "amd64"]);
    assert!(p.contains("from amd64\n"), "{p}");
    let p = plan(None, &[]);
    assert!(p.contains("from amd64,arm64,riscv64"), "{p}");
}
