//! The exec smoke with real target-native compilers: Debian's `gcc` for
//! arm64 (bookworm), riscv64 (trixie, the first release with riscv64) and
//! amd64 (bookworm), downloaded at test time, unpacked with `dpkg-deb -x`
//! into an image's payload, and run by `verify --exec-smoke` under
//! qemu-user: the driver, `cc1` and `as` are separate target programs.
//! The arm64 image is also verified from a registry, counting what it
//! downloads.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::proxy::FaultProxy;
use common::registry::Registry;
use common::tools::require;
use common::{debian, ocipack, ocipack_cmd, ocipack_ok, run_ok};

struct Case {
    arch: &'static str,
    suite: &'static str,
    /// The gcc package of that suite (its driver is `/usr/bin/gcc-N`).
    gcc: &'static str,
    triple: &'static str,
    machine: &'static str,
    qemu: &'static str,
}

const ARM64: Case = Case {
    arch: "arm64",
    suite: "bookworm",
    gcc: "gcc-12",
    triple: "aarch64-linux-gnu",
    machine: "AArch64 (EM_AARCH64=183)",
    qemu: "qemu-aarch64-static",
};
const RISCV64: Case = Case {
    arch: "riscv64",
    suite: "trixie",
    gcc: "gcc-14",
    triple: "riscv64-linux-gnu",
    machine: "RISC-V (EM_RISCV=243)",
    qemu: "qemu-riscv64-static",
};
const AMD64: Case = Case {
    arch: "amd64",
    suite: "bookworm",
    gcc: "gcc-12",
    triple: "x86_64-linux-gnu",
    machine: "x86-64 (EM_X86_64=62)",
    qemu: "qemu-x86_64-static",
};

/// An image holding Debian's gcc for `c.arch`: an empty base written by
/// umoci (config: arch, PATH), plus the unpacked packages as one layer
/// written by `ocipack append`. `/usr/bin/cc` is the alternatives chain
/// update-alternatives would write (absolute links), and on usrmerged
/// suites `/lib`, `/bin`, `/sbin` are the links base-files ships.
fn gcc_image(c: &Case, tmp: &Path) -> String {
    require("umoci");
    let root = debian::rootfs(tmp, c.suite, c.arch, &["gcc", c.gcc]);
    std::fs::create_dir_all(root.join("etc/alternatives")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/gcc", root.join("etc/alternatives/cc")).unwrap();
    std::os::unix::fs::symlink("/etc/alternatives/cc", root.join("usr/bin/cc")).unwrap();
    debian::image_of_root(
        tmp,
        &root,
        c.arch,
        &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "gcc",
    )
}

fn smoke(c: &Case, image: &str) -> std::process::Output {
    ocipack(&["verify", "--json", "--exec-smoke", "--arch", c.arch, image])
}

fn real_gcc(c: &Case) {
    require(c.qemu);
    let tmp = tempfile::tempdir().unwrap();
    let image = gcc_image(c, tmp.path());
    let out = smoke(c, &image);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: verify --exec-smoke with Debian {} gcc failed:\n{stdout}\n{}",
        c.arch,
        c.suite,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let s = &v["exec_smoke"];
    assert_eq!(s["status"], "passed", "{v}");
    assert_eq!(s["dumpmachine"], c.triple, "{v}");
    assert!(
        s["object"].as_str().unwrap().starts_with(c.machine),
        "{}: {v}",
        c.arch
    );
    // /usr/bin/cc -> /etc/alternatives/cc -> /usr/bin/gcc -> gcc-N -> TRIPLE-gcc-N
    assert_eq!(
        s["compiler"],
        format!("/usr/bin/{}-{}", c.triple, c.gcc),
        "{v}"
    );

    // The same guards in a step (`wrapper` on this image): they pass.
    let recipe = wrapper_recipe(tmp.path());
    let wrap = |base: &str, tag: &str| {
        ocipack(&[
            "wrapper",
            "--json",
            "--arch",
            c.arch,
            "--base",
            base,
            "--recipe",
            &recipe,
            "--out",
            &format!("oci:{}:{tag}", tmp.path().join("w").display()),
            "--no-cache",
        ])
    };
    let out = wrap(&image, "ok");
    assert!(
        out.status.success(),
        "{}: wrapper on Debian gcc: {}",
        c.arch,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for g in ["dumpmachine", "smoke"] {
        let o = v["guards"]["guards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["guard"] == g)
            .unwrap_or_else(|| panic!("{}: no {g} guard in {v}", c.arch));
        assert_eq!(o["checked"], 1, "{}: {o}", c.arch);
        assert_eq!(
            o["offenders"].as_array().unwrap().len(),
            0,
            "{}: {o}",
            c.arch
        );
    }

    // A broken cc1 (not a program) on top: the smoke fails and says how.
    let broken = tmp.path().join("broken");
    let gcc_ver = c.gcc.trim_start_matches("gcc-");
    // gcc 14 (trixie) keeps cc1 in libexec, gcc 12 in lib.
    let cc1 = ["usr/libexec/gcc", "usr/lib/gcc"]
        .iter()
        .map(|d| format!("{d}/{}/{gcc_ver}/cc1", c.triple))
        .find(|p| tmp.path().join("rootfs").join(p).is_file())
        .unwrap_or_else(|| panic!("{}: no cc1 in the unpacked gcc", c.arch));
    let cc1 = broken.join(cc1);
    std::fs::create_dir_all(cc1.parent().unwrap()).unwrap();
    std::fs::write(&cc1, "not a program\n").unwrap();
    std::fs::set_permissions(&cc1, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let broken_image = format!("oci:{}:broken", tmp.path().join("img").display());
    ocipack_ok(&[
        "append",
        "--base",
        &image,
        "--dir",
        &broken.display().to_string(),
        "--out",
        &broken_image,
        "--no-cache",
        "--compression",
        "none",
    ]);
    let out = smoke(c, &broken_image);
    assert!(!out.status.success(), "{}: a broken cc1 passed", c.arch);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["exec_smoke"];
    assert_eq!(s["status"], "failed", "{v}");
    let reason = s["reason"].as_str().unwrap();
    for want in ["command: ", "-wrapper", "exit status: ", "stderr:", "cc1"] {
        assert!(
            reason.contains(want),
            "{}: {want:?} missing in {reason}",
            c.arch
        );
    }
    // ...and stops the step, which tags nothing.
    let out = wrap(&broken_image, "broken");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}: wrapper passed a broken cc1",
        c.arch
    );
    assert!(
        err.contains(&format!("smoke guard ({}): FAILED", c.arch)) && err.contains("cc1"),
        "{}: {err}",
        c.arch
    );
    let index = std::fs::read_to_string(tmp.path().join("w/index.json")).unwrap();
    assert!(!index.contains("\"broken\""), "{}: {index}", c.arch);
}

/// A wrapper recipe that adds one text file and names the compiler.
fn wrapper_recipe(tmp: &Path) -> String {
    let dir = tmp.join("recipe");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/README"), "exec guards on a real gcc\n").unwrap();
    let recipe = dir.join("wrapper.toml");
    std::fs::write(
        &recipe,
        r#"[recipe]
name = "real-gcc"
kind = "wrapper"

[[copy]]
dir = "files"
dest = "/usr/local/share/real-gcc"
owner = "0:0"

[guards.compiler]
links = ["/usr/bin/cc"]
"#,
    )
    .unwrap();
    recipe.display().to_string()
}

#[test]
fn debian_arm64_gcc_compiles_under_qemu() {
    real_gcc(&ARM64);
}

#[test]
fn debian_riscv64_gcc_compiles_under_qemu() {
    real_gcc(&RISCV64);
}

#[test]
fn debian_amd64_gcc_compiles_under_qemu() {
    real_gcc(&AMD64);
}

/// `verify --exec-smoke` on a registry image downloads each manifest and
/// blob once: the guards' passes and the smoke's unpack read the same
/// copy. Counted at a logging proxy in front of a real registry, for a tag
/// naming the manifest and a tag naming an index of it.
#[test]
fn registry_image_is_fetched_once_for_guards_and_smoke() {
    let c = &ARM64;
    require(c.qemu);
    let tmp = tempfile::tempdir().unwrap();
    let image = gcc_image(c, tmp.path());
    let reg = Registry::start();
    run_ok(ocipack_cmd().args(["copy", &image, &reg.url("smoke/gcc:manifest")]));
    let manifest = reg
        .manifest("smoke/gcc", "manifest")
        .expect("the pushed manifest");
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let manifest_digest = ocipack::digest::sha256(&manifest).to_string();
    let digest = |d: &serde_json::Value| d["digest"].as_str().unwrap().to_string();
    let mut blobs = vec![digest(&m["config"])];
    blobs.extend(m["layers"].as_array().unwrap().iter().map(digest));

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": m["mediaType"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": c.arch, "os": "linux" },
        }],
    });
    let put = reg
        .request(
            "PUT",
            "/v2/smoke/gcc/manifests/index",
            &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
            &serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    assert_eq!(put.status, 201, "PUT index: {put:?}");

    let proxy = FaultProxy::start(&reg.host(), vec![]);
    for (tag, manifests) in [
        ("manifest", vec!["manifest"]),
        ("index", vec!["index", manifest_digest.as_str()]),
    ] {
        proxy.clear_log();
        let out = ocipack_cmd()
            .args(["verify", "--json", "--exec-smoke", "--arch", c.arch])
            .arg(proxy.url(&format!("smoke/gcc:{tag}")))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{tag}: verify --exec-smoke from the registry failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["exec_smoke"]["status"], "passed", "{tag}: {v}");

        let log = proxy.log();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in &log {
            let path = l.target.split('?').next().unwrap_or_default();
            if path.contains("/manifests/") || path.contains("/blobs/") {
                seen.entry(path.to_string())
                    .or_default()
                    .push(l.method.clone());
            }
        }
        let want: BTreeMap<String, Vec<String>> = manifests
            .iter()
            .map(|r| format!("/v2/smoke/gcc/manifests/{r}"))
            .chain(blobs.iter().map(|b| format!("/v2/smoke/gcc/blobs/{b}")))
            .map(|p| (p, vec!["GET".to_string()]))
            .collect();
        let all: Vec<String> = log
            .iter()
            .map(|l| format!("{} {}", l.method, l.target))
            .collect();
        assert_eq!(
            seen,
            want,
            "{tag}: requests per manifest and blob; all {} requests:\n{}",
            all.len(),
            all.join("\n")
        );
    }
}
