//! `ocipack package`, `wrapper` and `verify` on the fixtures, for every
//! arch; results cross-checked with umoci (unpack), dpkg's
//! update-alternatives (--display in the unpacked root) and qemu-user
//! (a payload binary runs).

mod common;

use std::path::{Path, PathBuf};

use common::tools::{require, run_ok};
use common::{fixtures, ocipack_err, ocipack_ok, repo};
use serde_json::Value;

const SDE: &str = "1700000000";

fn ocipack_sde(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .arg("--json")
        .env("SOURCE_DATE_EPOCH", SDE)
        .output()
        .expect("running ocipack");
    assert!(
        out.status.success(),
        "ocipack {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn package(out: &Path, tag: &str, arch: &str, artifact: &str, extra: &[&str]) -> Value {
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let art = format!("oci:{}:{artifact}", s(&fixtures().join("artifacts")));
    let recipe = s(&repo().join("layouts/fixtures/package.toml"));
    let out = format!("oci:{}:{tag}", s(out));
    let mut args = vec![
        "package",
        "--arch",
        arch,
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &recipe,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    ocipack_sde(&args)
}

fn wrapper(out: &Path, arch: &str) -> Value {
    let base = format!("oci:{}:package-{arch}", s(out));
    let venv = format!(
        "venv=oci:{}:venv-export-{arch}",
        s(&fixtures().join("artifacts"))
    );
    let recipe = s(&repo().join("layouts/fixtures/wrapper.toml"));
    let o = format!("oci:{}:{arch}", s(out));
    ocipack_sde(&[
        "wrapper", "--arch", arch, "--base", &base, "--input", &venv, "--recipe", &recipe, "--out",
        &o, "--run-id", "run-42",
    ])
}

fn unpack(layout: &Path, tag: &str, dir: &Path) -> PathBuf {
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", s(layout)),
            &s(dir),
        ],
    );
    dir.join("rootfs")
}

#[test]
fn package_and_wrapper_for_every_arch() {
    require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (arch, cpu) in [
        ("amd64", "x86_64"),
        ("arm64", "aarch64"),
        ("riscv64", "riscv64"),
    ] {
        let p = package(
            &out,
            &format!("package-{arch}"),
            arch,
            &format!("cross-android-{arch}"),
            &[],
        );
        // The base's layers are reused byte for byte.
        let base_layers = p["base_layers"].as_array().unwrap();
        assert_eq!(base_layers.len(), 2);
        let names: Vec<&str> = p["added_layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["toolchains", "sdk", "media", "ml", "system"]);
        assert!(p["pin"].as_str().unwrap().contains("@sha256:"));
        let w = wrapper(&out, arch);
        assert_eq!(w["run_id"], "run-42");
        assert_eq!(w["base_digest"], p["digest"]);

        let root = unpack(&out, arch, &tmp.path().join(format!("unpack-{arch}")));
        // The alternatives chain and dpkg's view of it.
        assert_eq!(
            std::fs::read_link(root.join("usr/bin/cc")).unwrap(),
            Path::new("/etc/alternatives/cc")
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/alternatives/cc")).unwrap(),
            Path::new("/opt/gcc-16.1.0/bin/gcc")
        );
        let display = run_ok(
            "update-alternatives",
            &[
                "--root",
                &s(&root),
                "--log",
                "/dev/null",
                "--display",
                "clang",
            ],
        );
        assert!(
            display.contains("link currently points to /usr/local/llvm-target/bin/clang"),
            "{display}"
        );
        assert!(
            display.contains("slave clang++: /usr/local/llvm-target/bin/clang++"),
            "{display}"
        );
        // The base's pager group survived.
        assert!(root.join("var/lib/dpkg/alternatives/pager").exists());
        // Payload at its paths, relocation, owners, prune, optional extras.
        use std::os::unix::fs::MetadataExt;
        let md = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!(
            (md("opt/flutter").uid(), md("opt/flutter").gid()),
            (1001, 1001)
        );
        assert_eq!(md("usr/local/cargo/bin/cargo").uid(), 1001);
        assert_eq!(md("workspace").uid(), 1001);
        assert_eq!(md("usr/local/llvm-target/bin/clang").uid(), 0);
        assert!(!root.join("opt/llvm-target").exists());
        assert!(root.join("usr/local/lib/libLiteRtRuntime.so.1").exists());
        assert!(!root.join("usr/local/lib/onnxruntime-gpu").exists());
        assert_eq!(
            root.join("opt/vulkan/1.4.321.0/x86_64").exists(),
            arch == "amd64",
            "the host Vulkan subtree is pruned on foreign arches only"
        );
        assert!(root.join(format!("opt/vulkan/1.4.321.0/{cpu}")).exists() || arch == "amd64");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/ld.so.conf.d/gcc-custom.conf")).unwrap(),
            "/opt/gcc-16.1.0/lib64\n/opt/gcc-16.1.0/lib\n"
        );
        assert!(root.join("opt/venv/pyvenv.cfg").exists());
        assert!(root.join("usr/local/bin/entrypoint.sh").exists());
        // Whiteouts of the artifact applied before selection.
        assert!(!root.join("opt/android-sdk/tmp/junk.txt").exists());
        assert!(!root.join("opt/opencv5/share/old").exists());

        // The config: kept and extended.
        let cfg = ocipack_ok(&["inspect", &format!("oci:{}:{arch}", s(&out)), "--json"]);
        let cfg: Value = serde_json::from_str(&cfg).unwrap();
        let c = &cfg["config"];
        assert_eq!(
            cfg["platform"].as_str().unwrap().split('/').nth(1),
            Some(arch)
        );
        assert_eq!(c["user"], "1001:1001");
        assert_eq!(c["working_dir"], "/workspace");
        assert_eq!(c["entrypoint"][0], "/usr/local/bin/entrypoint.sh");
        assert_eq!(
            c["labels"]["org.opencontainers.image.title"],
            "ocipack-fixture-runtime"
        );
        assert_eq!(c["labels"]["org.kataglyphis.parent-stage"], "package");
        assert_eq!(c["labels"]["org.kataglyphis.parent-digest"], p["digest"]);
        assert_eq!(c["labels"]["org.kataglyphis.run-id"], "run-42");
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&format!("TARGET_ARCH={arch}").as_str()),
            "{env:?}"
        );
        assert!(
            env.iter()
                .any(|e| e.starts_with("PATH=/usr/local/cargo/bin:")),
            "{env:?}"
        );
        assert_eq!(
            cfg["annotations"]["org.opencontainers.image.base.digest"],
            p["digest"]
        );

        // A payload binary of the unpacked result runs on the target CPU.
        let qemu = format!("qemu-{cpu}-static");
        let demo = root.join("usr/local/lib/onnxruntime-genai/bin/genai-demo");
        // qemu-user for every arch (qemu-x86_64 too): the binary must load
        // with the image's own loader and libc (-L), never the host's.
        let got = run_ok(&qemu, &["-L", &s(&root), &s(&demo)]);
        assert_eq!(got.trim(), format!("genai-demo {cpu}-linux-gnu ok"));
        let cc = run_ok(
            &qemu,
            &[
                "-L",
                &s(&root),
                &s(&root.join("opt/gcc-16.1.0/bin/gcc")),
                "-dumpmachine",
            ],
        );
        assert_eq!(cc.trim(), format!("{cpu}-linux-gnu"));

        // verify agrees.
        ocipack_ok(&["verify", &format!("oci:{}:{arch}", s(&out)), "--arch", arch]);
    }
}

#[test]
fn bad_artifact_fails_the_elf_guard_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let art = format!(
        "oci:{}:cross-android-riscv64-bad",
        s(&fixtures().join("artifacts"))
    );
    let recipe = s(&repo().join("layouts/fixtures/package.toml"));
    let err = ocipack_err(&[
        "package",
        "--arch",
        "riscv64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &recipe,
        "--out",
        &format!("oci:{}:bad", s(&out)),
    ]);
    assert!(
        err.contains(
            "/usr/local/lib/onnxruntime-genai/lib/libgenai-helper.so: x86-64 (EM_X86_64=62)"
        ),
        "{err}"
    );
    assert!(!out.exists(), "nothing may be written when a guard fails");
    // A waiver lets it through and is recorded.
    let v = package(
        &out,
        "waived",
        "riscv64",
        "cross-android-riscv64-bad",
        &["--waive", "elf=vendor helper, tracked upstream"],
    );
    let cfg = ocipack_ok(&["inspect", &format!("oci:{}:waived", s(&out)), "--json"]);
    let cfg: Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(
        cfg["config"]["labels"]["org.kataglyphis.guard-waivers"],
        "elf: vendor helper, tracked upstream"
    );
    assert_eq!(
        v["guards"]["guards"][0]["offenders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // verify on the waived image still reports it.
    let e = ocipack_err(&[
        "verify",
        &format!("oci:{}:waived", s(&out)),
        "--arch",
        "riscv64",
    ]);
    assert!(e.contains("not a valid riscv64 image"), "{e}");
}

#[test]
fn reruns_and_thread_counts_give_identical_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let a = package(
        &tmp.path().join("a"),
        "p",
        "arm64",
        "cross-android-arm64",
        &["--threads", "1"],
    );
    let b = package(
        &tmp.path().join("b"),
        "p",
        "arm64",
        "cross-android-arm64",
        &["--threads", "4"],
    );
    let c = package(
        &tmp.path().join("a"),
        "q",
        "arm64",
        "cross-android-arm64",
        &[],
    );
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["digest"], c["digest"]);
}

#[test]
fn recipe_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("r.toml");
    std::fs::write(
        &recipe,
        "[recipe]\nname = \"x\"\nkind = \"package\"\n[inputs.artifact]\n[[copy]]\npaths = [\"opt/x\"]\n",
    )
    .unwrap();
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let art = format!(
        "oci:{}:cross-android-arm64",
        s(&fixtures().join("artifacts"))
    );
    let err = ocipack_err(&[
        "package",
        "--arch",
        "arm64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&recipe),
        "--out",
        &format!("oci:{}:x", s(&tmp.path().join("o"))),
    ]);
    assert!(err.contains(&format!("{}:6:", s(&recipe))), "{err}");
    assert!(err.contains("absolute"), "{err}");
}

/// `{a,b}` alternation: the recipe validator accepts it, so selection must
/// honour it too (one glob engine; it used to be taken as a literal path).
#[test]
fn brace_globs_select_what_validation_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("r.toml");
    std::fs::write(
        &recipe,
        "[recipe]\nname = \"x\"\nkind = \"package\"\n[inputs.artifact]\nplatform = \"any\"\n\
         [[copy]]\npaths = [\"/opt/{opencv5,ffmpeg}\"]\n\
         [guards.waive]\ncompiler = \"payload only\"\ndumpmachine = \"payload only\"\n\
         smoke = \"payload only\"\n",
    )
    .unwrap();
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let art = format!(
        "oci:{}:cross-android-arm64",
        s(&fixtures().join("artifacts"))
    );
    let out = tmp.path().join("o");
    ocipack_sde(&[
        "package",
        "--arch",
        "arm64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&recipe),
        "--out",
        &format!("oci:{}:x", s(&out)),
    ]);
    let root = tmp.path().join("root");
    ocipack_ok(&["unpack", &format!("oci:{}:x", s(&out)), &s(&root)]);
    assert!(root.join("opt/opencv5").is_dir());
    assert!(root.join("opt/ffmpeg").is_dir());
    assert!(!root.join("opt/gstreamer").exists());
}

#[test]
fn build_all_arches_into_one_index() {
    let tmp = tempfile::tempdir().unwrap();
    let out = format!("oci:{}:latest", s(&tmp.path().join("out")));
    let art = s(&fixtures().join("artifacts"));
    let base = format!("oci:{}:base", s(&fixtures().join("base")));
    let artifact = format!("oci:{art}:cross-android-{{arch}}");
    let venv = format!("venv=oci:{art}:venv-export-{{arch}}");
    let pr = s(&repo().join("layouts/fixtures/package.toml"));
    let wr = s(&repo().join("layouts/fixtures/wrapper.toml"));
    let args = [
        "build",
        "--base",
        &base,
        "--artifact",
        &artifact,
        "--input",
        &venv,
        "--package-recipe",
        &pr,
        "--wrapper-recipe",
        &wr,
        "--out",
        &out,
    ];
    // --dry-run writes nothing.
    let plan = ocipack_ok(&[&args[..], &["--dry-run"]].concat());
    assert!(plan.contains("riscv64: wrapper"), "{plan}");
    assert!(!tmp.path().join("out").exists());
    let r = ocipack_sde(&args);
    assert_eq!(r["wrappers"].as_array().unwrap().len(), 3);
    let run_id = r["run_id"].as_str().unwrap();
    for w in r["wrappers"].as_array().unwrap() {
        assert_eq!(w["run_id"], run_id, "one run id for every arch");
    }
    let idx: Value = serde_json::from_str(&ocipack_ok(&["inspect", &out, "--json"])).unwrap();
    let plats: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64/v8", "linux/riscv64"]);
}

#[test]
fn a_wrapper_whose_entrypoint_is_missing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    package(&out, "package-amd64", "amd64", "cross-android-amd64", &[]);
    // The fixture wrapper recipe, with a typo in the entrypoint path.
    let recipes = tmp.path().join("recipes");
    std::fs::create_dir(&recipes).unwrap();
    common::copy_tree(
        &repo().join("layouts/fixtures/scripts"),
        &recipes.join("scripts"),
    );
    let text = std::fs::read_to_string(repo().join("layouts/fixtures/wrapper.toml"))
        .unwrap()
        .replace(
            "entrypoint = [\"/usr/local/bin/entrypoint.sh\"]",
            "entrypoint = [\"/usr/local/bin/entrypoint.bash\"]",
        );
    assert!(text.contains("entrypoint.bash"));
    std::fs::write(recipes.join("wrapper.toml"), text).unwrap();
    let base = format!("oci:{}:package-amd64", s(&out));
    let venv = format!(
        "venv=oci:{}:venv-export-amd64",
        s(&fixtures().join("artifacts"))
    );
    let recipe = s(&recipes.join("wrapper.toml"));
    let dest = format!("oci:{}:wrapped", s(&out));
    let args = [
        "wrapper", "--arch", "amd64", "--base", &base, "--input", &venv, "--recipe", &recipe,
        "--out", &dest,
    ];
    let err = ocipack_err(&args);
    assert!(
        err.contains("entrypoint guard") && err.contains("/usr/local/bin/entrypoint.bash"),
        "{err}"
    );
    let tags = ocipack_ok(&[
        "inspect",
        "--json",
        &format!("oci:{}:package-amd64", s(&out)),
    ]);
    assert!(!tags.is_empty());
    let idx = std::fs::read_to_string(out.join("index.json")).unwrap();
    assert!(!idx.contains("\"wrapped\""), "no tag may be written: {idx}");
    // Waived by name, it goes through and the waiver is recorded.
    let mut waived = args.to_vec();
    waived.extend(["--waive", "entrypoint=installed by a later stage"]);
    ocipack_ok(&waived);
    let cfg: Value = serde_json::from_str(&ocipack_ok(&["inspect", "--json", &dest])).unwrap();
    let label = cfg["config"]["labels"]["org.kataglyphis.guard-waivers"]
        .as_str()
        .unwrap_or_default();
    assert!(
        label.contains("entrypoint: installed by a later stage"),
        "{label}"
    );
}
