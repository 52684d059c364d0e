//! Proof on a real runtime (issue 7): containerd imports, and runs, what
//! `ocipack build` writes; foreign arches run their payload under qemu-user
//! from the unpacked image. A deliberately broken image must fail these
//! checks with a message naming what is wrong.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::containerd::Containerd;
use common::runtime::{build_into, check_amd64_wrapper};
use common::tools::{require, run};
use common::*;
use oci_spec::image::MediaType;
use ocipack::layout::Layout;
use ocipack::manifest::canonical_json;

/// Builds the three arches on the fixtures once per test binary.
fn built() -> &'static Path {
    static OUT: OnceLock<tempfile::TempDir> = OnceLock::new();
    OUT.get_or_init(|| {
        let t = tempfile::Builder::new()
            .prefix("ocipack-rt-")
            .tempdir()
            .unwrap();
        let out = t.path().join("out");
        build_into(&out, &[]);
        t
    })
    .path()
    .join("out")
    .leak_static()
}

trait LeakStatic {
    fn leak_static(self) -> &'static Path;
}
impl LeakStatic for std::path::PathBuf {
    fn leak_static(self) -> &'static Path {
        Box::leak(self.into_boxed_path())
    }
}

#[test]
fn containerd_imports_all_platforms_and_runs_the_amd64_wrapper() {
    let out = built();
    let ctrd = Containerd::start();
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("latest-cross.tar");
    ocipack_ok(&[
        "copy",
        "--all",
        &format!("oci:{}:latest-cross", out.display()),
        &format!("oci-archive:{}:latest-cross", tar.display()),
    ]);
    ctrd.import(&tar, "ocipack.test/runtime:latest-cross");
    let list = ctrd.ctr_ok(&["images", "ls"]);
    assert!(
        list.contains("linux/amd64")
            && list.contains("linux/arm64")
            && list.contains("linux/riscv64"),
        "{list}"
    );
    if let Err(e) = check_amd64_wrapper(&ctrd, "ocipack.test/runtime:latest-cross", "wrapper") {
        panic!("{e}\ncontainerd log:\n{}", ctrd.log());
    }
}

#[test]
fn foreign_arches_run_their_payload_under_qemu() {
    let out = built();
    for (arch, triple) in [
        ("arm64", "aarch64-linux-gnu"),
        ("riscv64", "riscv64-linux-gnu"),
    ] {
        let qemu = format!(
            "qemu-{}-static",
            if arch == "arm64" {
                "aarch64"
            } else {
                "riscv64"
            }
        );
        require(&qemu);
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        ocipack_ok(&[
            "unpack",
            &format!("oci:{}:latest-cross-{arch}", out.display()),
            &root.display().to_string(),
        ]);
        let r = root.display().to_string();
        let gcc = format!("{r}/opt/gcc-16.1.0/bin/gcc");
        let o = run(&qemu, &["-L", &r, &gcc, "-dumpmachine"]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            triple,
            "{arch}: gcc -dumpmachine"
        );
        let demo = format!("{r}/usr/local/lib/onnxruntime-genai/bin/genai-demo");
        let o = run(&qemu, &["-L", &r, &demo]);
        assert!(
            o.status.success(),
            "{arch}: genai-demo: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("genai-demo {triple} ok")
        );
        // And ocipack's own exec smoke agrees.
        let v = ocipack_ok(&[
            "verify",
            "--json",
            "--exec-smoke",
            "--arch",
            arch,
            &format!("oci:{}:latest-cross-{arch}", out.display()),
        ]);
        let v: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(v["exec_smoke"]["status"], "passed", "{v}");
        assert_eq!(v["exec_smoke"]["dumpmachine"], triple);
    }
}

/// Writes a copy of `tag` as `new_tag` with its config edited and the
/// layers whose history `created_by` mentions one of `drop` removed.
fn mutate(
    layout: &Path,
    tag: &str,
    new_tag: &str,
    edit_config: impl Fn(&mut serde_json::Value),
    drop: &[&str],
) {
    let l = Layout::open(layout).unwrap();
    let desc = l
        .resolve(Some(&ocipack::reference::Selector::Tag(tag.into())))
        .unwrap();
    let mut man: serde_json::Value = serde_json::from_slice(&l.read_blob(&desc).unwrap()).unwrap();
    let cfg_desc: oci_spec::image::Descriptor =
        serde_json::from_value(man["config"].clone()).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&l.read_blob(&cfg_desc).unwrap()).unwrap();
    edit_config(&mut cfg);
    // Non-empty history entries line up with layers.
    let history = cfg["history"].as_array().cloned().unwrap_or_default();
    let mut keep_layer = Vec::new();
    let mut keep_history = Vec::new();
    for h in history {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let by = h["created_by"].as_str().unwrap_or_default();
        let dropped = !empty && drop.iter().any(|d| by.contains(d));
        if !empty {
            keep_layer.push(!dropped);
        }
        if !dropped {
            keep_history.push(h);
        }
    }
    let filter = |v: &serde_json::Value| -> serde_json::Value {
        v.as_array()
            .unwrap()
            .iter()
            .zip(&keep_layer)
            .filter(|(_, k)| **k)
            .map(|(x, _)| x.clone())
            .collect()
    };
    man["layers"] = filter(&man["layers"]);
    cfg["rootfs"]["diff_ids"] = filter(&cfg["rootfs"]["diff_ids"]);
    cfg["history"] = serde_json::Value::Array(keep_history);
    let c = l
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    man["config"] = serde_json::to_value(&c).unwrap();
    let m = l
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    l.set_tags(&[(new_tag.into(), m)]).unwrap();
}

#[test]
fn a_broken_image_fails_the_runtime_checks_naming_what_is_wrong() {
    let good = built();
    let ctrd = Containerd::start();
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    ocipack_ok(&[
        "copy",
        &format!("oci:{}:latest-cross-amd64", good.display()),
        &format!("oci:{}:good", l.display()),
    ]);
    // A wrong entrypoint path.
    mutate(
        &l,
        "good",
        "bad-entrypoint",
        |c| c["config"]["Entrypoint"] = serde_json::json!(["/usr/local/bin/no-such-entrypoint.sh"]),
        &[],
    );
    // A missing payload: the toolchain and ML payload layers dropped.
    mutate(
        &l,
        "good",
        "no-payload",
        |_| {},
        &["toolchains layer", "ml layer"],
    );
    for (tag, expect) in [
        ("bad-entrypoint", "entrypoint failed to run"),
        ("no-payload", "missing in the container"),
    ] {
        let tar = t.path().join(format!("{tag}.tar"));
        ocipack_ok(&[
            "copy",
            &format!("oci:{}:{tag}", l.display()),
            &format!("oci-archive:{}:{tag}", tar.display()),
        ]);
        let name = format!("ocipack.test/broken:{tag}");
        ctrd.import(&tar, &name);
        let err = check_amd64_wrapper(&ctrd, &name, tag)
            .expect_err("a broken image must fail the checks");
        assert!(err.contains(expect), "{tag}: {err}");
        let names = if tag == "bad-entrypoint" {
            "no-such-entrypoint.sh"
        } else {
            "/usr/local/llvm-target/bin/clang"
        };
        assert!(
            err.contains(names),
            "{tag}: the message must name what is wrong: {err}"
        );
    }
    // The same good image still passes in this containerd.
    let tar = t.path().join("good.tar");
    ocipack_ok(&[
        "copy",
        &format!("oci:{}:good", l.display()),
        &format!("oci-archive:{}:good", tar.display()),
    ]);
    ctrd.import(&tar, "ocipack.test/broken:good");
    check_amd64_wrapper(&ctrd, "ocipack.test/broken:good", "good").unwrap();
}
