//! `ocipack extract` (issue 14 part 4): artifacts out of a layout, a
//! registry and a docker-archive, checked with coreutils' `sha256sum -c`;
//! hostile links and names refused with nothing written; `--check-elf`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::layers::{image_with_layer, raw_tar};
use common::registry::Registry;
use common::{fixtures, json, ocipack, ocipack_cmd, ocipack_err, ocipack_ok, run_ok};
use serde_json::Value;

fn fx(layout: &str, tag: &str) -> String {
    format!("oci:{}:{tag}", fixtures().join(layout).display())
}

fn extract(reference: &str, paths: &[&str], to: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["extract".to_string(), reference.to_string()];
    for p in paths {
        args.push("--path".into());
        args.push(p.to_string());
    }
    args.push("--to".into());
    args.push(to.display().to_string());
    args.push("--json".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&run_ok(ocipack_cmd().args(&args)))
}

/// `sha256sum -c --strict SHA256SUMS` in `dir` (real coreutils).
fn sha256sum_check(dir: &Path) {
    common::require_tool("sha256sum", "coreutils");
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "--strict", "--quiet", "SHA256SUMS"])
            .current_dir(dir),
    );
}

/// What `find` sees in `dir` (path and type letter), the two files extract
/// adds left out.
fn on_disk(dir: &Path) -> Vec<String> {
    let out = run_ok(Command::new("sh").current_dir(dir).arg("-c").arg(
        "find . -mindepth 1 ! -path ./SHA256SUMS ! -path ./ocipack-extract.json -printf '%P %y\\n' | LC_ALL=C sort",
    ));
    out.lines().map(str::to_string).collect()
}

fn listed(meta: &Value) -> Vec<String> {
    meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let t = match f["type"].as_str().unwrap() {
                "file" => "f",
                "dir" => "d",
                "symlink" => "l",
                other => panic!("type {other}"),
            };
            format!("{} {t}", f["path"].as_str().unwrap())
        })
        .collect()
}

/// The checksum lines of the extracted files (the metadata file's own line
/// left out: it names the reference).
fn payload_sums(dir: &Path) -> String {
    fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with("  ocipack-extract.json"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn no_leftovers(parent: &Path) {
    let left: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ocipack-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

const GCC: &str = "/opt/gcc-16.1.0";
const GENAI: &str = "/usr/local/lib/onnxruntime-genai/";

#[test]
fn round_trip_from_a_layout_passes_sha256sum() {
    let t = tempfile::tempdir().unwrap();
    let to = t.path().join("out");
    let r = fx("artifacts", "cross-android-riscv64");
    let meta = extract(&r, &[GCC, GENAI], &to, &["--check-elf", "riscv64"]);
    sha256sum_check(&to);
    // The list is what is on disk, sorted, and the file holds the same JSON.
    assert_eq!(listed(&meta), on_disk(&to));
    let file: Value =
        serde_json::from_slice(&fs::read(to.join("ocipack-extract.json")).unwrap()).unwrap();
    assert_eq!(file, meta);
    let inspect = json(&ocipack_ok(&["inspect", "--json", &r]));
    assert_eq!(meta["manifest_digest"], inspect["digest"]);
    assert_eq!(meta["reference"], r.as_str());
    assert_eq!(meta["platform"], "linux/amd64");
    assert!(meta.get("index_digest").is_none());
    assert_eq!(meta["labels"]["org.kataglyphis.stage"], "android");
    assert_eq!(meta["check_elf"]["arch"], "riscv64");
    assert!(
        meta["check_elf"]["checked"].as_u64().unwrap() >= 5,
        "{meta}"
    );
    // Requested paths keep their names; the absolute `cc` link becomes a
    // relative one; a hard link stays one inode.
    let bin = to.join("opt/gcc-16.1.0/bin");
    assert_eq!(fs::read_link(bin.join("cc")).unwrap(), Path::new("gcc"));
    let gcc = fs::metadata(bin.join("gcc")).unwrap();
    let triple = fs::metadata(bin.join("riscv64-linux-gnu-gcc")).unwrap();
    assert_eq!(gcc.ino(), triple.ino());
    assert_eq!(gcc.mode() & 0o777, 0o755);
    let lib = to.join("usr/local/lib/onnxruntime-genai/lib");
    assert_eq!(
        fs::read_link(lib.join("libonnxruntime-genai.so")).unwrap(),
        Path::new("libonnxruntime-genai.so.0.1")
    );
    let cc = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "opt/gcc-16.1.0/bin/cc")
        .unwrap();
    assert_eq!(cc["link"], "gcc");
    // Deterministic: another run writes the same bytes.
    let again = t.path().join("again");
    extract(&r, &[GCC, GENAI], &again, &["--check-elf", "riscv64"]);
    for f in ["SHA256SUMS", "ocipack-extract.json"] {
        assert_eq!(
            fs::read(to.join(f)).unwrap(),
            fs::read(again.join(f)).unwrap()
        );
    }
    // A target that is not empty is refused and left as it was.
    let err = ocipack_err(&[
        "extract",
        &r,
        "--path",
        GCC,
        "--to",
        &to.display().to_string(),
    ]);
    assert!(err.contains("not empty"), "{err}");
    sha256sum_check(&to);
    no_leftovers(t.path());
}

#[test]
fn check_elf_and_missing_paths_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let to = t.path().join("out");
    let d = to.display().to_string();
    let bad = fx("artifacts", "cross-android-riscv64-bad");
    let out = ocipack(&[
        "extract",
        &bad,
        "--path",
        GENAI,
        "--to",
        &d,
        "--check-elf",
        "riscv64",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("/usr/local/lib/onnxruntime-genai/lib/libgenai-helper.so")
            && err.contains("x86-64"),
        "{err}"
    );
    assert!(!to.exists());
    no_leftovers(t.path());
    // The same tree for the host arch is fine there (the helper is x86-64):
    // the check judges every file, not just the first.
    let err = ocipack_err(&[
        "extract",
        &bad,
        "--path",
        GENAI,
        "--to",
        &d,
        "--check-elf",
        "amd64",
    ]);
    assert!(
        err.contains("genai-demo") && err.contains("RISC-V"),
        "{err}"
    );
    assert!(!to.exists());
    // A path the image lacks is named; nothing is written.
    let err = ocipack_err(&[
        "extract",
        &bad,
        "--path",
        GCC,
        "--path",
        "/usr/local/lib/onnxruntime-gpu",
        "--to",
        &d,
    ]);
    assert!(
        err.contains("/usr/local/lib/onnxruntime-gpu") && err.contains("not found"),
        "{err}"
    );
    assert!(!to.exists());
    no_leftovers(t.path());
}

#[test]
fn registry_and_docker_archive_give_the_same_files() {
    let t = tempfile::tempdir().unwrap();
    let layout = fx("artifacts", "cross-android-arm64");
    let from_layout = t.path().join("layout");
    let meta = extract(&layout, &[GENAI], &from_layout, &[]);
    let reg = Registry::start();
    run_ok(ocipack_cmd().args(["copy", &layout, &reg.url("art/x:arm64")]));
    let from_reg = t.path().join("reg");
    let m = extract(&reg.url("art/x:arm64"), &[GENAI], &from_reg, &[]);
    sha256sum_check(&from_reg);
    assert_eq!(m["manifest_digest"], meta["manifest_digest"]);
    assert_eq!(m["files"], meta["files"]);
    assert_eq!(payload_sums(&from_reg), payload_sums(&from_layout));
    // A multi-arch index: --arch is required, as for unpack, and the index
    // digest is recorded.
    run_ok(ocipack_cmd().args(["copy", "--all", &fx("base", "base"), &reg.url("base/x:v1")]));
    let idx = reg.url("base/x:v1");
    let err = ocipack_err(&[
        "extract",
        &idx,
        "--path",
        "/bin",
        "--to",
        &t.path().join("idx").display().to_string(),
    ]);
    assert!(err.contains("--arch"), "{err}");
    // (/etc/alternatives/pager links to /bin/more: both trees, or refused.)
    let m = extract(
        &idx,
        &["/etc", "/bin"],
        &t.path().join("idx"),
        &["--arch", "arm64"],
    );
    assert!(m["index_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(m["platform"], "linux/arm64/v8");
    sha256sum_check(&t.path().join("idx"));
    // docker-archive: another manifest (synthesized), the same files.
    let archive = t.path().join("art.tar");
    ocipack_ok(&[
        "copy",
        &layout,
        &format!("docker-archive:{}:art:arm64", archive.display()),
    ]);
    let from_archive = t.path().join("archive");
    let m = extract(
        &format!("docker-archive:{}", archive.display()),
        &[GENAI],
        &from_archive,
        &[],
    );
    sha256sum_check(&from_archive);
    assert_eq!(m["files"], meta["files"]);
    assert_eq!(payload_sums(&from_archive), payload_sums(&from_layout));
}

#[test]
fn links_out_and_dotdot_are_refused_and_nothing_outside_is_touched() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"precious").unwrap();
    let base: Vec<(&str, u8, &str, &[u8])> = vec![
        ("artifacts/", b'5', "", b""),
        ("artifacts/ok", b'0', "", b"ok\n"),
        ("artifacts/ok.link", b'2', "ok", b""),
        // No entry for its parent directory: created all the same.
        ("artifacts/sub/deep", b'0', "", b"deep\n"),
        ("etc/", b'5', "", b""),
        ("etc/passwd", b'0', "", b"image-passwd\n"),
        // A top-level link climbing out: resolved inside the image.
        ("link", b'2', "../../../../etc", b""),
    ];
    let image = |name: &str, extra: &[(&'static str, u8, &'static str, &'static [u8])]| {
        let l = t.path().join(format!("layout-{name}"));
        let mut entries = base.clone();
        entries.extend_from_slice(extra);
        image_with_layer(&l, "evil", &raw_tar(&entries), false);
        format!("oci:{}:evil", l.display())
    };
    let to = t.path().join("to");
    let d = to.display().to_string();
    let refused = |r: &str, paths: &[&str], why: &str| {
        let mut args = vec!["extract", r, "--to", &d];
        for p in paths {
            args.extend(["--path", p]);
        }
        let err = ocipack_err(&args);
        assert!(err.contains(why), "{paths:?}: {err}");
        assert!(!to.exists(), "{paths:?}");
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"precious");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
        no_leftovers(t.path());
    };
    // Symlinks leading out of the extracted tree, absolute or by `..`.
    let abs = image("abs", &[("artifacts/evil", b'2', "/etc/passwd", b"")]);
    refused(&abs, &["/artifacts"], "outside the extracted paths");
    let up = image("up", &[("artifacts/up", b'2', "../../../..", b"")]);
    refused(&up, &["/artifacts"], "artifacts/up");
    // `..` in a layer entry's name, and in --path.
    let dotdot = image("dotdot", &[("artifacts/../../x", b'0', "", b"x")]);
    refused(&dotdot, &["/artifacts"], "'..'");
    refused(&abs, &["/artifacts/../etc"], "'..'");
    // With its target extracted too, the link is kept, relative.
    let m = extract(&abs, &["/artifacts", "/etc"], &to, &[]);
    sha256sum_check(&to);
    assert_eq!(
        fs::read_link(to.join("artifacts/evil")).unwrap(),
        Path::new("../etc/passwd")
    );
    assert_eq!(
        fs::read(to.join("artifacts/evil")).unwrap(),
        b"image-passwd\n"
    );
    assert_eq!(
        fs::read_link(to.join("artifacts/ok.link")).unwrap(),
        Path::new("ok")
    );
    assert_eq!(fs::read(to.join("artifacts/sub/deep")).unwrap(), b"deep\n");
    assert_eq!(m["files"].as_array().unwrap().len(), 8, "{m}");
    // A requested path that is a symlink is followed inside the image and
    // lands under its own name: the image's /etc, never the host's.
    let to2 = t.path().join("to2");
    extract(&abs, &["/link"], &to2, &[]);
    assert_eq!(
        fs::read(to2.join("link/passwd")).unwrap(),
        b"image-passwd\n"
    );
    assert!(fs::symlink_metadata(to2.join("link")).unwrap().is_dir());
    sha256sum_check(&to2);
    assert_eq!(fs::read(outside.join("keep")).unwrap(), b"precious");
}
