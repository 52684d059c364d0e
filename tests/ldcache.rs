//! `/etc/ld.so.cache` against the real `ldconfig`: for amd64, arm64
//! (Debian bookworm, glibc 2.36) and riscv64 (trixie, glibc 2.41), a root
//! of the target's `libc6` and `libc-bin` (downloaded with the exec-smoke
//! tests' apt machinery, cached in `$OCIPACK_TEST_CACHE`), plus a payload
//! of small libraries (SONAMEs, a symlink chain, a missing soname link, a
//! library without SONAME, a glibc-hwcaps subdirectory) in a directory
//! named by `/etc/ld.so.conf.d`. The target's own static `ldconfig -r
//! ROOT` runs under qemu-user; `ocipack wrapper` writes the cache for the
//! same tree (the libc root as base, the payload as the step's layer).
//!
//! The files are compared byte for byte except for one field: the
//! generator extension, whose text names the program that wrote the file
//! (`ldconfig (Debian GLIBC 2.36-9+deb12u14) release version 2.36` there,
//! `ocipack` here), so its length in the extension directory differs too.
//! The soname links ldconfig created must be the ones ocipack's system
//! layer adds.

mod common;

use std::path::Path;
use std::process::Command;

use common::tools::{require, run_ok};
use common::{debian, ocipack_ok};
use ocipack::ldcache;

struct Case {
    arch: &'static str,
    suite: &'static str,
    triple: &'static str,
    qemu: &'static str,
    cc: &'static str,
    flags: i32,
}

const AMD64: Case = Case {
    arch: "amd64",
    suite: "bookworm",
    triple: "x86_64-linux-gnu",
    qemu: "qemu-x86_64-static",
    cc: "gcc",
    flags: 0x0303,
};
const ARM64: Case = Case {
    arch: "arm64",
    suite: "bookworm",
    triple: "aarch64-linux-gnu",
    qemu: "qemu-aarch64-static",
    cc: "aarch64-linux-gnu-gcc",
    flags: 0x0a03,
};
const RISCV64: Case = Case {
    arch: "riscv64",
    suite: "trixie",
    triple: "riscv64-linux-gnu",
    qemu: "qemu-riscv64-static",
    cc: "riscv64-linux-gnu-gcc",
    flags: 0x1003,
};

/// A shared library with `soname` (none when empty), built by the
/// target's cross compiler without libc.
fn lib(c: &Case, tmp: &Path, out: &Path, soname: &str) {
    require(c.cc);
    let src = tmp.join("demo.c");
    std::fs::write(&src, "int demo(void) { return 42; }\n").unwrap();
    let mut args = vec![
        "-shared".to_string(),
        "-fPIC".into(),
        "-nostdlib".into(),
        "-o".into(),
        out.display().to_string(),
        src.display().to_string(),
    ];
    if !soname.is_empty() {
        args.push(format!("-Wl,-soname,{soname}"));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(c.cc, &a);
}

/// The payload: `/opt/demo/lib` as the wrapper copies it.
fn payload(c: &Case, tmp: &Path, dir: &Path) {
    let l = dir.join("lib");
    std::fs::create_dir_all(l.join("glibc-hwcaps/x86-64-v3")).unwrap();
    lib(c, tmp, &l.join("libdemo.so.1.2.3"), "libdemo.so.1");
    std::os::unix::fs::symlink("libdemo.so.1.2.3", l.join("libdemo.so.1")).unwrap();
    std::os::unix::fs::symlink("libdemo.so.1", l.join("libdemo.so")).unwrap();
    // No soname link: ldconfig creates libother.so.2 -> libother.so.2.0.
    lib(c, tmp, &l.join("libother.so.2.0"), "libother.so.2");
    lib(c, tmp, &l.join("libnosoname.so"), "");
    lib(
        c,
        tmp,
        &l.join("glibc-hwcaps/x86-64-v3/libdemo.so.1.2.3"),
        "libdemo.so.1",
    );
    std::fs::write(l.join("README.txt"), "not a library\n").unwrap();
}

/// The generator text is the only field that names the writer: cut it
/// (and its length) out so the rest compares byte for byte.
fn without_generator(b: &[u8]) -> Vec<u8> {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let ext = u32_at(32);
    let count = u32_at(ext + 4);
    let mut out = b.to_vec();
    for s in 0..count {
        let d = ext + 8 + 16 * s;
        if u32_at(d) == 0 {
            let (off, size) = (u32_at(d + 8), u32_at(d + 12));
            assert_eq!(off + size, b.len(), "the generator is the file's tail");
            out.truncate(off);
            out[d + 12..d + 16].copy_from_slice(&[0; 4]);
        }
    }
    out
}

fn symlinks(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_symlink())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_link(&p).unwrap().display().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn matches_ldconfig(c: &Case) {
    require(c.qemu);
    require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = debian::rootfs(t, c.suite, c.arch, &["libc6", "libc-bin"]);
    assert!(
        !root.join("etc/ld.so.cache").exists(),
        "libc6 ships no cache"
    );

    // The base image: the libc root alone.
    let base_ref = debian::image_of_root(t, &root, c.arch, &[], "libc");

    // The step: the payload and its ld.so.conf.d file (default ld_cache:
    // on, the base has glibc).
    let recipe_dir = t.join("recipe");
    payload(c, t, &recipe_dir.join("demo"));
    std::fs::write(
        recipe_dir.join("wrapper.toml"),
        r##"[recipe]
name = "ldcache"
kind = "wrapper"

[[copy]]
dir = "demo"
dest = "/opt/demo"
owner = "0:0"

[[file]]
path = "/etc/ld.so.conf.d/demo.conf"
content = "# the payload\n/opt/demo/lib/\n"
"##,
    )
    .unwrap();
    let out_ref = format!("oci:{}:wrapped", t.join("img").display());
    ocipack_ok(&[
        "wrapper",
        "--arch",
        c.arch,
        "--base",
        &base_ref,
        "--recipe",
        &recipe_dir.join("wrapper.toml").display().to_string(),
        "--out",
        &out_ref,
        "--no-cache",
        "--waive",
        "compiler=no compiler in a libc-only image",
        "--waive",
        "dumpmachine=no compiler in a libc-only image",
        "--waive",
        "smoke=no compiler in a libc-only image",
    ]);
    let ours_root = t.join("ours");
    ocipack_ok(&["unpack", &out_ref, &ours_root.display().to_string()]);
    let ours = std::fs::read(ours_root.join("etc/ld.so.cache")).unwrap();

    // The same tree for the real ldconfig.
    std::fs::create_dir_all(root.join("opt")).unwrap();
    common::copy_tree(&recipe_dir.join("demo"), &root.join("opt/demo"));
    std::fs::write(
        root.join("etc/ld.so.conf.d/demo.conf"),
        "# the payload\n/opt/demo/lib/\n",
    )
    .unwrap();
    let ldconfig = root.join("sbin/ldconfig");
    let out = Command::new(c.qemu)
        .arg(&ldconfig)
        .arg("-r")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} ldconfig -r: {}",
        c.arch,
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::fs::read(root.join("etc/ld.so.cache")).unwrap();

    let (po, pt) = (
        ldcache::parse(&ours).unwrap(),
        ldcache::parse(&theirs).unwrap(),
    );
    assert_eq!(po.entries, pt.entries, "{}: entries differ", c.arch);
    assert_eq!(po.hwcaps, pt.hwcaps, "{}", c.arch);
    assert_eq!(po.generator.as_deref(), Some(ldcache::GENERATOR));
    assert!(
        pt.generator
            .as_deref()
            .unwrap_or("")
            .starts_with("ldconfig "),
        "{:?}",
        pt.generator
    );
    assert_eq!(
        without_generator(&ours),
        without_generator(&theirs),
        "{}: bytes differ beyond the generator",
        c.arch
    );
    // What the payload contributes, with the target's flags.
    let lib = |name: &str| {
        po.entries
            .iter()
            .find(|e| e.1 == name && e.3 == 0)
            .unwrap_or_else(|| panic!("{}: no {name} in {:?}", c.arch, po.entries))
            .clone()
    };
    assert_eq!(lib("libdemo.so.1").0, c.flags);
    assert_eq!(lib("libdemo.so.1").2, "/opt/demo/lib/libdemo.so.1");
    assert_eq!(lib("libother.so.2").2, "/opt/demo/lib/libother.so.2");
    assert_eq!(lib("libnosoname.so").2, "/opt/demo/lib/libnosoname.so");
    assert_eq!(lib("libc.so.6").2, format!("/lib/{}/libc.so.6", c.triple));
    assert!(po
        .entries
        .iter()
        .any(|e| e.3 != 0 && e.2.contains("glibc-hwcaps")));
    // The soname link ldconfig made is in ocipack's system layer.
    assert_eq!(
        symlinks(&ours_root.join("opt/demo/lib")),
        symlinks(&root.join("opt/demo/lib")),
        "{}",
        c.arch
    );
}

#[test]
fn amd64_cache_matches_bookworm_ldconfig() {
    matches_ldconfig(&AMD64);
}

#[test]
fn arm64_cache_matches_bookworm_ldconfig() {
    matches_ldconfig(&ARM64);
}

#[test]
fn riscv64_cache_matches_trixie_ldconfig() {
    matches_ldconfig(&RISCV64);
}

/// The quick start's package step on the fixture base (glibc: a
/// multiarch `libc.so.6` and `/etc/ld.so.conf`): the cache lists the
/// payload libraries of its `ld.so.conf.d` files, and `ld_cache = false`
/// leaves it out.
#[test]
fn package_on_a_glibc_base_caches_the_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = common::repo();
    let package = |recipe: &Path, tag: &str| -> Option<ldcache::Parsed> {
        let out = format!("oci:{}:{tag}", tmp.path().join("out").display());
        ocipack_ok(&[
            "package",
            "--arch",
            "arm64",
            "--base",
            &format!("oci:{}:base", repo.join("fixtures/base").display()),
            "--artifact",
            &format!(
                "oci:{}:cross-android-arm64",
                repo.join("fixtures/artifacts").display()
            ),
            "--recipe",
            &recipe.display().to_string(),
            "--out",
            &out,
            "--no-cache",
        ]);
        let root = tmp.path().join(tag);
        ocipack_ok(&["unpack", &out, &root.display().to_string()]);
        std::fs::read(root.join("etc/ld.so.cache"))
            .ok()
            .map(|b| ldcache::parse(&b).unwrap())
    };
    let recipe = repo.join("layouts/fixtures/package.toml");
    let p = package(&recipe, "on").expect("a cache on a glibc base");
    let get = |so: &str| {
        p.entries
            .iter()
            .find(|e| e.1 == so)
            .unwrap_or_else(|| panic!("no {so} in {:?}", p.entries))
            .clone()
    };
    assert_eq!(
        get("libLLVM.so.22"),
        (
            0x0a03,
            "libLLVM.so.22".to_string(),
            "/usr/local/llvm-target/lib/libLLVM.so.22".to_string(),
            0
        )
    );
    assert_eq!(
        get("libstdc++.so.6").2,
        "/opt/gcc-16.1.0/lib64/libstdc++.so.6"
    );
    assert_eq!(get("libc.so.6").2, "/lib/aarch64-linux-gnu/libc.so.6");

    let off = tmp.path().join("off.toml");
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text.push_str("\n[system]\nld_cache = false\n");
    std::fs::write(&off, text).unwrap();
    assert!(
        package(&off, "off").is_none(),
        "ld_cache = false wrote a cache"
    );
}
