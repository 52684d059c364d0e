//! `docker-archive:` against skopeo (containers/image) and umoci: we read
//! what skopeo writes, skopeo reads what we write, and the trees unpacked
//! equal umoci's unpack of the source. Also: unknown transports and
//! unresolvable hosts fail at once with a clear message.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::tools::{require, run_ok};
use common::trees::fingerprint;
use common::{fixtures, json, ocipack_err, ocipack_ok};
use serde_json::Value;

const SRC_TAG: &str = "base-amd64";

fn src_ref() -> String {
    format!("oci:{}:{SRC_TAG}", fixtures().join("base").display())
}

fn inspect(r: &str) -> Value {
    json(&ocipack_ok(&["inspect", r, "--json"]))
}

fn diff_ids(v: &Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect()
}

fn skopeo(args: &[&str]) -> String {
    run_ok("skopeo", &[&["--insecure-policy"], args].concat())
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> std::path::PathBuf {
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            &bundle.display().to_string(),
        ],
    );
    bundle.join("rootfs")
}

fn manifest_json(archive: &Path) -> Value {
    let out = run_ok(
        "tar",
        &["-xOf", &archive.display().to_string(), "manifest.json"],
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn reads_what_skopeo_writes() {
    require("skopeo");
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("s.tar");
    let a = archive.display().to_string();
    skopeo(&[
        "copy",
        &src_ref(),
        &format!("docker-archive:{a}:base:latest"),
    ]);
    let src = inspect(&src_ref());

    // Every way of naming the image finds it; the config digest and the
    // diff_ids are the source's; layers are described as stored
    // (uncompressed: digest = diff_id).
    for r in [
        format!("docker-archive:{a}"),
        format!("docker-archive:{a}:base"),
        format!("docker-archive:{a}:base:latest"),
        format!("docker-archive:{a}:docker.io/library/base:latest"),
        format!("docker-archive:{a}:@0"),
    ] {
        let v = inspect(&r);
        assert_eq!(v["config_digest"], src["config_digest"], "{r}");
        assert_eq!(diff_ids(&v), diff_ids(&src), "{r}");
        assert_eq!(v["platform"], "linux/amd64");
        for l in v["layers"].as_array().unwrap() {
            assert_eq!(
                l["media_type"],
                "application/vnd.docker.image.rootfs.diff.tar"
            );
            assert_eq!(l["digest"], l["diff_id"]);
        }
    }
    let e = ocipack_err(&["inspect", &format!("docker-archive:{a}:base:v2")]);
    assert!(
        e.contains("docker.io/library/base:v2 not found")
            && e.contains("@0 docker.io/library/base:latest"),
        "{e}"
    );

    // ocipack unpack of the archive equals umoci unpack of the source.
    let ours = t.path().join("ours");
    ocipack_ok(&[
        "unpack",
        &format!("docker-archive:{a}:base"),
        &ours.display().to_string(),
    ]);
    let theirs = umoci_unpack(&fixtures().join("base"), SRC_TAG, &t.path().join("theirs"));
    assert_eq!(fingerprint(&ours), fingerprint(&theirs));

    // Copied into a layout: config preserved, layers verified; umoci agrees.
    let lay = t.path().join("lay");
    ocipack_ok(&[
        "copy",
        &format!("docker-archive:{a}:base:latest"),
        &format!("oci:{}:t", lay.display()),
    ]);
    let v = inspect(&format!("oci:{}:t", lay.display()));
    assert_eq!(v["config_digest"], src["config_digest"]);
    assert_eq!(diff_ids(&v), diff_ids(&src));
    // (umoci reads only OCI manifests; the copy kept the Docker one.)
    let again = t.path().join("again");
    ocipack_ok(&[
        "unpack",
        &format!("oci:{}:t", lay.display()),
        &again.display().to_string(),
    ]);
    assert_eq!(fingerprint(&again), fingerprint(&theirs));
}

#[test]
fn skopeo_reads_what_we_write() {
    require("skopeo");
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let ours = t.path().join("ours.tar");
    let o = ours.display().to_string();
    let out = ocipack_ok(&["copy", &src_ref(), &format!("docker-archive:{o}:k/base:v1")]);
    assert!(out.contains("copied"), "{out}");
    let src = inspect(&src_ref());
    // The pin is the manifest the archive presents (synthesized), not the
    // source's.
    let back = inspect(&format!("docker-archive:{o}:k/base:v1"));
    let pin = format!("docker-archive:{o}@{}", back["digest"].as_str().unwrap());
    assert!(out.lines().any(|l| l == pin), "{out}");
    assert_ne!(back["digest"], src["digest"]);

    // Same manifest.json as skopeo writes for the same copy.
    let theirs = t.path().join("theirs.tar");
    skopeo(&[
        "copy",
        &src_ref(),
        &format!("docker-archive:{}:k/base:v1", theirs.display()),
    ]);
    assert_eq!(manifest_json(&ours), manifest_json(&theirs));
    assert_eq!(
        manifest_json(&ours)[0]["RepoTags"],
        serde_json::json!(["docker.io/k/base:v1"])
    );

    // skopeo inspect: the layers are the diff_ids.
    let si: Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("docker-archive:{o}")])).unwrap();
    let layers: Vec<String> = si["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers, diff_ids(&src));
    assert_eq!(si["Architecture"], "amd64");

    // skopeo copies it on to a layout: same config, same diff_ids, and
    // umoci unpacks the same tree as from the source.
    let lay = t.path().join("lay");
    skopeo(&[
        "copy",
        &format!("docker-archive:{o}:k/base:v1"),
        &format!("oci:{}:t", lay.display()),
    ]);
    // skopeo converts to an OCI manifest, re-encoding the config: its
    // digest changes there, so check skopeo's view of our archive instead.
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("docker-archive:{o}"),
    ]))
    .unwrap();
    assert_eq!(raw["config"]["digest"], src["config_digest"]);
    let v = inspect(&format!("oci:{}:t", lay.display()));
    assert_eq!(diff_ids(&v), diff_ids(&src));
    let a = umoci_unpack(&lay, "t", &t.path().join("a"));
    let b = umoci_unpack(&fixtures().join("base"), SRC_TAG, &t.path().join("b"));
    assert_eq!(fingerprint(&a), fingerprint(&b));

    // Deterministic: a rerun (which reads the archive back in) gives the
    // same bytes, and leaves no temp file.
    let before = fs::read(&ours).unwrap();
    ocipack_ok(&["copy", &src_ref(), &format!("docker-archive:{o}:k/base:v1")]);
    assert_eq!(fs::read(&ours).unwrap(), before);
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ocipack-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An index cannot go into a Docker archive; one platform can.
    let idx = format!("oci:{}:base", fixtures().join("base").display());
    let e = ocipack_err(&[
        "copy",
        "--all",
        &idx,
        &format!("docker-archive:{o}:k/base:v2"),
    ]);
    assert!(e.contains("single-platform images"), "{e}");
    assert_eq!(
        fs::read(&ours).unwrap(),
        before,
        "a failed copy left the file alone"
    );

    // Writing into an existing archive adds the image (as `docker save` of
    // several images), and a name:tag moves to the image written last.
    let platform = |r: &str| inspect(r)["platform"].as_str().unwrap().to_string();
    ocipack_ok(&[
        "copy",
        "--arch",
        "arm64",
        &idx,
        &format!("docker-archive:{o}:k/base:arm"),
    ]);
    assert!(platform(&format!("docker-archive:{o}:k/base:arm")).starts_with("linux/arm64"));
    assert_eq!(
        platform(&format!("docker-archive:{o}:k/base:v1")),
        "linux/amd64"
    );
    let e = ocipack_err(&["inspect", &format!("docker-archive:{o}")]);
    assert!(e.contains("holds 2 images"), "{e}");
    let si: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{o}:k/base:arm"),
    ]))
    .unwrap();
    assert_eq!(si["Architecture"], "arm64");
    ocipack_ok(&[
        "copy",
        "--arch",
        "arm64",
        &idx,
        &format!("docker-archive:{o}:k/base:v1"),
    ]);
    assert!(platform(&format!("docker-archive:{o}:k/base:v1")).starts_with("linux/arm64"));
    let items = manifest_json(&ours);
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");
    assert_eq!(items[0]["RepoTags"], serde_json::json!([]), "{items}");
    assert_eq!(
        items[1]["RepoTags"],
        serde_json::json!(["docker.io/k/base:arm", "docker.io/k/base:v1"])
    );
    // A file that is not a Docker archive is not replaced.
    let other = t.path().join("notes.txt");
    fs::write(&other, "keep me").unwrap();
    let e = ocipack_err(&[
        "copy",
        &src_ref(),
        &format!("docker-archive:{}:k/x:y", other.display()),
    ]);
    assert!(e.contains("refusing to replace it"), "{e}");
    assert_eq!(fs::read_to_string(&other).unwrap(), "keep me");
}

/// Docker 25+ writes an OCI layout and a `manifest.json` in one tar: the
/// OCI manifest is served as is, so its digest is preserved.
#[test]
fn reads_docker_25_archives_keeping_the_manifest_digest() {
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("d25.tar");
    ocipack_ok(&[
        "copy",
        &src_ref(),
        &format!("oci-archive:{}:base", tar.display()),
    ]);
    let src = inspect(&src_ref());
    let hex = |k: &str| {
        src[k]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let layers: Vec<String> = src["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "blobs/sha256/{}",
                l["digest"].as_str().unwrap().trim_start_matches("sha256:")
            )
        })
        .collect();
    let mj = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", hex("config_digest")),
        "RepoTags": ["base:latest"],
        "Layers": layers,
    }]);
    fs::write(t.path().join("manifest.json"), mj.to_string()).unwrap();
    run_ok(
        "tar",
        &[
            "-rf",
            &tar.display().to_string(),
            "-C",
            &t.path().display().to_string(),
            "manifest.json",
        ],
    );
    let v = inspect(&format!("docker-archive:{}:base", tar.display()));
    assert_eq!(v["digest"], src["digest"]);
    assert_eq!(v["config_digest"], src["config_digest"]);
    assert_eq!(diff_ids(&v), diff_ids(&src));
}

#[test]
fn unknown_transports_fail_at_once_naming_the_supported_ones() {
    for (r, says) in [
        (
            "containers-storage:img",
            "skopeo's containers-storage: transport is not supported",
        ),
        ("dir:/tmp/x", "skopeo's dir: transport is not supported"),
        ("foo:bar", "unknown transport \"foo\""),
    ] {
        let start = Instant::now();
        let e = ocipack_err(&["inspect", r]);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{r}: took {:?}",
            start.elapsed()
        );
        assert!(e.contains(says), "{r}: {e}");
        assert!(
            e.contains("docker-archive:FILE") && e.contains("oci-archive:FILE"),
            "{r}: {e}"
        );
    }
    // A missing archive is a file error, not a registry lookup.
    let e = ocipack_err(&["inspect", "docker-archive:/nonexistent/x.tar"]);
    assert!(
        e.contains("/nonexistent/x.tar") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn unresolvable_host_is_final() {
    // RFC 2606: `.invalid` never resolves.
    let start = Instant::now();
    let e = ocipack_err(&["inspect", "docker://ocipack-test.invalid/x/y:z"]);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}: {e}");
    assert!(e.contains("ocipack-test.invalid"), "{e}");
    assert!(e.contains("unknown host"), "{e}");
    assert!(
        !e.contains("retrying") && !e.contains("gave up after"),
        "{e}"
    );
}

/// containerd's `ctr images import` reads Docker archives too: it finds the
/// image under its RepoTag and runs it.
#[test]
fn containerd_imports_and_runs_what_we_write() {
    let ctrd = common::containerd::Containerd::start();
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("d.tar");
    ocipack_ok(&[
        "copy",
        &src_ref(),
        &format!("docker-archive:{}:k/base:v1", tar.display()),
    ]);
    ctrd.ctr_ok(&["images", "import", &tar.display().to_string()]);
    let list = ctrd.ctr_ok(&["images", "ls", "-q"]);
    assert!(list.lines().any(|l| l == "docker.io/k/base:v1"), "{list}");
    let run = ctrd.run(
        "docker.io/k/base:v1",
        "da",
        &["/bin/sh", "-c", "echo from-docker-archive"],
    );
    assert!(
        run.success && run.output.contains("from-docker-archive"),
        "{}\ncontainerd log:\n{}",
        run.output,
        ctrd.log()
    );
}
