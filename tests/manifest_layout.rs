//! `ocipack manifest` and `verify-chain` on OCI layouts, cross-checked with
//! skopeo and umoci. Test images are fixture base images with provenance
//! labels added (same layer blobs, new config and manifest).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_spec::image::{Descriptor, MediaType};
use ocipack::image::resolve_image;
use ocipack::layout::Layout;
use ocipack::manifest::{canonical_json, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST};
use ocipack::reference::Selector;
use ocipack::transport::LayoutSource;
use serde_json::Value;

use common::tools::require;

const BIN: &str = env!("CARGO_BIN_EXE_ocipack");
const ARCHES: [&str; 3] = ["amd64", "arm64", "riscv64"];

fn fixtures() -> PathBuf {
    common::fixtures().join("base")
}

fn ocipack(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run ocipack")
}

fn ok(args: &[&str]) -> String {
    let o = ocipack(args);
    assert!(
        o.status.success(),
        "ocipack {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = ocipack(args);
    assert!(
        !o.status.success(),
        "ocipack {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

#[derive(Default, Clone, Copy)]
struct Img<'a> {
    labels: &'a [(&'a str, &'a str)],
    annotations: &'a [(&'a str, &'a str)],
    docker: bool,
}

/// Writes fixture `base-<arch>` with extra labels/annotations into
/// `layout` under `tag`; returns the manifest descriptor.
fn make_image(dir: &Path, tag: &str, arch: &str, img: Img) -> Descriptor {
    let layout = Layout::open_or_create(dir).unwrap();
    let base = Layout::open(fixtures()).unwrap();
    let src = LayoutSource {
        layout: base.clone(),
        selector: Some(Selector::Tag(format!("base-{arch}"))),
    };
    let r = resolve_image(&src, None).unwrap();
    let mut cfg = r.config_json.clone();
    let labels = cfg["config"]
        .as_object_mut()
        .unwrap()
        .entry("Labels")
        .or_insert_with(|| Value::Object(Default::default()));
    for (k, v) in img.labels {
        labels[*k] = Value::String(v.to_string());
    }
    let config_type = if img.docker {
        MediaType::Other(DOCKER_CONFIG.into())
    } else {
        MediaType::ImageConfig
    };
    let config = layout
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), config_type)
        .unwrap();
    let mut layers = Vec::new();
    for l in r.layers() {
        layout.put_blob(l, &mut base.open_blob(l).unwrap()).unwrap();
        let mut l = l.clone();
        if img.docker {
            l.set_media_type(MediaType::Other(DOCKER_LAYER_GZIP.into()));
        }
        layers.push(l);
    }
    let mut m = r.manifest.clone();
    m.set_config(config);
    m.set_layers(layers);
    let mt = if img.docker {
        MediaType::Other(DOCKER_MANIFEST.into())
    } else {
        MediaType::ImageManifest
    };
    m.set_media_type(Some(mt.clone()));
    if !img.annotations.is_empty() {
        m.set_annotations(Some(
            img.annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    let d = layout
        .write_blob_bytes(&canonical_json(&m).unwrap(), mt)
        .unwrap();
    layout.set_tags(&[(tag.to_string(), d.clone())]).unwrap();
    d
}

/// `latest-cross-<arch>` for each arch with run id `run`.
fn make_children(dir: &Path, arches: &[&str], run: &str) {
    for a in arches {
        let labels = [
            ("org.kataglyphis.run-id", run),
            ("org.kataglyphis.parent-stage", "torch"),
        ];
        make_image(
            dir,
            &format!("latest-cross-{a}"),
            a,
            Img {
                labels: &labels,
                ..Img::default()
            },
        );
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn tags(dir: &Path) -> Vec<String> {
    Layout::open(dir)
        .unwrap()
        .index()
        .unwrap()
        .tags()
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn three_arches_index_read_by_skopeo_and_umoci() {
    require("skopeo");
    require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    make_children(&l, &ARCHES, "run-1");
    let image = format!("oci:{}:latest-cross", l.display());
    let pins = tmp.path().join("pins.json");
    let r = json(&[
        "manifest",
        "--image",
        &image,
        "--target-arches",
        "amd64,arm64,riscv64",
        "--alias",
        "latest",
        "--json",
        "--digest-file",
        pins.to_str().unwrap(),
    ]);
    assert_eq!(r["written"], true);
    let digest = r["digest"].as_str().unwrap();
    let plats: Vec<&str> = r["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64/v8", "linux/riscv64"]);
    assert!(r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["passed"] == true));

    // skopeo serves exactly our bytes, with the three platforms.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &image])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let ours = std::fs::read(l.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(raw.stdout, ours);
    let idx: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(idx["mediaType"], "application/vnd.oci.image.index.v1+json");
    let arches: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ARCHES);
    assert_eq!(idx["manifests"][1]["platform"]["variant"], "v8");

    // skopeo copies every platform; umoci lists the tags and reads a child.
    let out = tmp.path().join("copy");
    let cp = Command::new("skopeo")
        .args(["copy", "--all", &image, &format!("oci:{}:x", out.display())])
        .output()
        .unwrap();
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let ls = Command::new("umoci")
        .args(["ls", "--layout", l.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success() && listed.contains("latest-cross\n"),
        "{listed}"
    );
    let stat = Command::new("umoci")
        .args([
            "stat",
            "--image",
            &format!("{}:latest-cross-arm64", l.display()),
        ])
        .output()
        .unwrap();
    assert!(
        stat.status.success(),
        "{}",
        String::from_utf8_lossy(&stat.stderr)
    );

    // Pins: the index, its alias and each child, as oci:DIR@sha256:….
    let pins: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&pins).unwrap()).unwrap();
    assert_eq!(pins.len(), 5, "{pins:?}");
    assert_eq!(pins[&image], format!("oci:{}@{digest}", l.display()));
    assert_eq!(
        pins[&format!("oci:{}:latest", l.display())],
        format!("oci:{}@{digest}", l.display())
    );
    // The pin resolves to the index.
    let via_pin = json(&["inspect", &pins[&image], "--json"]);
    assert_eq!(via_pin["digest"], digest);

    // Same children, same index: a second run changes nothing.
    let again = json(&["manifest", "--image", &image, "--json"]);
    assert_eq!(again["digest"], digest);
}

#[test]
fn repair_recreates_the_same_index() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    make_children(&l, &ARCHES, "run-1");
    let image = format!("oci:{}:latest-cross", l.display());
    let first = json(&["manifest", "--image", &image, "--json"]);
    let digest = first["digest"].as_str().unwrap().to_string();

    Layout::open(&l)
        .unwrap()
        .update_index(|i| {
            i.remove_tag("latest-cross");
            Ok(())
        })
        .unwrap();
    assert!(!tags(&l).contains(&"latest-cross".to_string()));

    let out = ok(&["manifest", "--image", &image, "--repair"]);
    assert!(
        out.starts_with(&format!("repaired oci index {image} {digest}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("pin {image} oci:{}@{digest}", l.display())),
        "{out}"
    );
    let r = json(&["inspect", &image, "--json"]);
    assert_eq!(r["digest"], digest.as_str());
    // The pipeline's spelling.
    let r = json(&["manifest", "--image", &image, "--manifest-only", "--json"]);
    assert_eq!(r["digest"], digest.as_str());
}

#[test]
fn mixed_run_ids_refused_by_coherence_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    make_children(&l, &["amd64", "arm64"], "run-1");
    make_children(&l, &["riscv64"], "run-2");
    let image = format!("oci:{}:latest-cross", l.display());
    let before = snapshot(&l);
    let err = fails(&["manifest", "--image", &image]);
    assert!(err.contains("coherence gate failed"), "{err}");
    assert!(err.contains("riscv64=run-2"), "{err}");
    assert!(err.contains("pass the same `--run-id ID`"), "{err}");
    assert_eq!(snapshot(&l), before, "a refused run must write nothing");

    let o = ocipack(&["manifest", "--image", &image, "--force", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("coherence gate failed, overridden by --force"),
        "{err}"
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["forced"], serde_json::json!(["coherence"]));
    assert!(tags(&l).contains(&"latest-cross".to_string()));
}

#[test]
fn missing_arch_refused_by_completeness() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    make_children(&l, &["amd64", "arm64"], "run-1");
    let image = format!("oci:{}:latest-cross", l.display());
    let err = fails(&[
        "manifest",
        "--image",
        &image,
        "--target-arches",
        "amd64,arm64,riscv64",
    ]);
    assert!(err.contains("completeness gate failed"), "{err}");
    assert!(err.contains("riscv64 missing"), "{err}");
    assert!(err.contains("latest-cross-riscv64"), "{err}");
    assert!(!tags(&l).contains(&"latest-cross".to_string()));

    // Forced: an index of the two that exist, and it says so.
    let r = json(&["manifest", "--image", &image, "--force", "--json"]);
    assert_eq!(r["forced"], serde_json::json!(["completeness"]));
    assert_eq!(r["children"].as_array().unwrap().len(), 2);
    assert_eq!(r["missing"][0]["arch"], "riscv64");
}

#[test]
fn repair_refuses_children_without_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    for a in ARCHES {
        make_image(&l, &format!("latest-cross-{a}"), a, Img::default());
    }
    let image = format!("oci:{}:latest-cross", l.display());
    let err = fails(&["manifest", "--image", &image, "--repair"]);
    assert!(err.contains("coherence gate failed"), "{err}");
    assert!(err.contains("org.kataglyphis.run-id"), "{err}");
    // A plain run indexes them (nothing to compare), and notes it.
    let r = json(&["manifest", "--image", &image, "--json"]);
    assert_eq!(r["forced"], serde_json::json!([]));
}

#[test]
fn dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    make_children(&l, &ARCHES, "run-1");
    let image = format!("oci:{}:latest-cross", l.display());
    let before = snapshot(&l);
    let pins = tmp.path().join("pins.json");
    let plan = json(&[
        "manifest",
        "--image",
        &image,
        "--dry-run",
        "--json",
        "--digest-file",
        pins.to_str().unwrap(),
    ]);
    assert_eq!(plan["written"], false);
    assert_eq!(snapshot(&l), before, "layout changed on --dry-run");
    assert!(!pins.exists());
    let text = ok(&["manifest", "--image", &image, "--dry-run"]);
    assert!(text.starts_with("would write oci index"), "{text}");
    assert_eq!(snapshot(&l), before);
    // The plan's digest is what a real run writes.
    let real = json(&["manifest", "--image", &image, "--json"]);
    assert_eq!(real["digest"], plan["digest"]);
    // A failing gate on --dry-run prints the plan and fails.
    make_image(&l, "partial-amd64", "amd64", Img::default());
    let partial = format!("oci:{}:partial", l.display());
    let before = snapshot(&l);
    let o = ocipack(&["manifest", "--image", &partial, "--dry-run"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("gate completeness FAILED"));
    assert_eq!(snapshot(&l), before);
}

#[test]
fn docker_children_give_a_docker_list_and_push_copies_from_another_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    for a in ARCHES {
        let labels = [("org.kataglyphis.run-id", "run-9")];
        make_image(
            &src,
            &format!("v1-{a}"),
            a,
            Img {
                labels: &labels,
                docker: true,
                ..Img::default()
            },
        );
    }
    let image = format!("oci:{}:v1", dst.display());
    let children = format!("oci:{}:{{tag}}-{{arch}}", src.display());
    std::fs::create_dir(&dst).unwrap();
    let err = fails(&["manifest", "--image", &image, "--children", &children]);
    assert!(err.contains("pass --push"), "{err}");
    let r = json(&[
        "manifest",
        "--image",
        &image,
        "--children",
        &children,
        "--push",
        "--json",
    ]);
    assert_eq!(r["format"], "docker");
    assert_eq!(
        r["media_type"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(r["children"][0]["copied"], true);
    let mut t = tags(&dst);
    t.sort();
    assert_eq!(t, ["v1", "v1-amd64", "v1-arm64", "v1-riscv64"]);
    // skopeo 1.9 cannot read Docker media types from an OCI layout's
    // index.json (it cannot read back its own `--format v2s2` output
    // either), so the layout check reads the blob; the registry test runs
    // skopeo on it.
    let digest = r["digest"].as_str().unwrap();
    let bytes = std::fs::read(dst.join("blobs/sha256").join(&digest[7..])).unwrap();
    let idx: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        idx["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(
        idx["manifests"][2]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // Every blob arrived: the whole index copies out of dst.
    ok(&[
        "copy",
        "--all",
        &image,
        &format!("oci:{}:x", tmp.path().join("out").display()),
    ]);
    // --format oci over the same children gives an OCI index.
    let r = json(&[
        "manifest",
        "--image",
        &image,
        "--format",
        "oci",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(r["format"], "oci");
}

#[test]
fn index_as_child_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    let base = format!("oci:{}", fixtures().display());
    ok(&[
        "copy",
        "--all",
        &format!("{base}:base"),
        &format!("oci:{}:t-amd64", l.display()),
    ]);
    let err = fails(&[
        "manifest",
        "--image",
        &format!("oci:{}:t", l.display()),
        "--target-arches",
        "amd64",
    ]);
    assert!(err.contains("not a single-platform image"), "{err}");
}

#[test]
fn verify_chain_reports_a_stale_wrapper() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    let pkg = make_image(
        &l,
        "latest-cross-package-amd64",
        "amd64",
        Img {
            labels: &[("org.kataglyphis.run-id", "run-1")],
            ..Img::default()
        },
    );
    let pkg_digest = pkg.digest().to_string();
    make_image(
        &l,
        "latest-cross-amd64",
        "amd64",
        Img {
            labels: &[
                ("org.kataglyphis.run-id", "run-1"),
                ("org.kataglyphis.parent-digest", &pkg_digest),
                ("org.kataglyphis.parent-stage", "package"),
            ],
            annotations: &[("org.opencontainers.image.base.digest", &pkg_digest)],
            ..Img::default()
        },
    );
    let package = format!("package=oci:{}:latest-cross-package-amd64", l.display());
    let wrapper = format!("wrapper=oci:{}:latest-cross-amd64", l.display());
    let out = ok(&["verify-chain", "--stage", &package, "--stage", &wrapper]);
    assert!(out.contains("wrapper      fresh"), "{out}");

    // Rebuild the package stage with a new payload; leave the wrapper.
    make_image(
        &l,
        "latest-cross-package-amd64",
        "amd64",
        Img {
            labels: &[("org.kataglyphis.run-id", "run-2")],
            ..Img::default()
        },
    );
    let o = ocipack(&["verify-chain", "--stage", &package, "--stage", &wrapper]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("wrapper      STALE"), "{out}");
    assert!(out.contains(&format!("built on {pkg_digest}")), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("stale stages: wrapper"));
    let o = ocipack(&[
        "verify-chain",
        "--stage",
        &package,
        "--stage",
        &wrapper,
        "--json",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["stale"], serde_json::json!(["wrapper"]));
    assert_eq!(r["stages"][1]["status"], "stale");
}

#[test]
fn verify_chain_through_indexes_with_arch() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    let mut pkg = BTreeMap::new();
    for a in ARCHES {
        let d = make_image(
            &l,
            &format!("pkg-{a}"),
            a,
            Img {
                labels: &[("org.kataglyphis.run-id", "run-1")],
                ..Img::default()
            },
        );
        pkg.insert(a, d.digest().to_string());
    }
    for a in ARCHES {
        make_image(
            &l,
            &format!("wrap-{a}"),
            a,
            Img {
                labels: &[
                    ("org.kataglyphis.run-id", "run-1"),
                    ("org.kataglyphis.parent-digest", &pkg[a]),
                ],
                ..Img::default()
            },
        );
    }
    for t in ["pkg", "wrap"] {
        ok(&["manifest", "--image", &format!("oci:{}:{t}", l.display())]);
    }
    let stages = [
        "--stage".to_string(),
        format!("package=oci:{}:pkg", l.display()),
        "--stage".to_string(),
        format!("wrapper=oci:{}:wrap", l.display()),
    ];
    let mut args: Vec<&str> = vec!["verify-chain", "--arch", "arm64"];
    args.extend(stages.iter().map(String::as_str));
    ok(&args);
    // Without --arch an index cannot be checked.
    let err = fails(
        &[
            &["verify-chain"][..],
            &stages.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert!(err.contains("choose one with --arch"), "{err}");
}

#[test]
fn repair_refuses_children_built_on_a_replaced_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let l = tmp.path().join("l");
    let image = format!("oci:{}:latest-cross", l.display());
    let package = |run: &str, a: &str| {
        make_image(
            &l,
            &format!("latest-cross-package-{a}"),
            a,
            Img {
                labels: &[("org.kataglyphis.run-id", run)],
                ..Img::default()
            },
        )
    };
    for a in ARCHES {
        let parent = package("run-1", a).digest().to_string();
        make_image(
            &l,
            &format!("latest-cross-{a}"),
            a,
            Img {
                labels: &[
                    ("org.kataglyphis.run-id", "run-1"),
                    ("org.kataglyphis.parent-stage", "package"),
                    ("org.kataglyphis.parent-digest", &parent),
                ],
                ..Img::default()
            },
        );
    }
    let r = json(&["manifest", "--image", &image, "--repair", "--json"]);
    assert_eq!(r["forced"], serde_json::json!([]));
    assert!(r["children"][2]["parent_now"]["reference"]
        .as_str()
        .unwrap()
        .ends_with(":latest-cross-package-riscv64"));

    // The riscv64 package is rebuilt; its wrapper is not.
    package("run-2", "riscv64");
    let err = fails(&["manifest", "--image", &image, "--repair"]);
    assert!(err.contains("coherence gate failed"), "{err}");
    assert!(err.contains("riscv64"), "{err}");
    assert!(err.contains("is stale"), "{err}");
}
