//! Issue 6 against the real registry (distribution 2.8): `build --push`
//! publishes three arches and the index, skopeo sees exactly our bytes,
//! `manifest --repair` restores a deleted index bit for bit, and the gates
//! (coherence, completeness, freshness) refuse what the pipeline once
//! shipped.

mod common;

use std::path::Path;

use common::proxy::{Action, FaultProxy, Rule, When};
use common::registry::Registry;
use common::runtime::{build, build_args};
use common::tools::{require, run};
use common::*;
use ocipack::digest::sha256;
use ocipack::layout::Layout;
use ocipack::reference::Selector;
use serde_json::Value;

const ARCHES: [&str; 3] = ["amd64", "arm64", "riscv64"];
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// `skopeo inspect --raw` of a registry reference: the bytes it serves.
fn skopeo_raw(reference: &str) -> Vec<u8> {
    let o = run(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", reference],
    );
    assert!(
        o.status.success(),
        "skopeo inspect --raw {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `os/arch[/variant]` of each index entry.
fn platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

fn digest_of(pin: &Value) -> &str {
    pin.as_str()
        .and_then(|p| p.rsplit_once('@'))
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("not a pin: {pin}"))
}

fn manifest_json(reg: &Registry, repo: &str, reference: &str) -> Value {
    let bytes = reg
        .manifest(repo, reference)
        .unwrap_or_else(|| panic!("{repo}:{reference} not in the registry"));
    serde_json::from_slice(&bytes).unwrap()
}

/// Runs ocipack; returns (success, stdout, stderr).
fn ocipack_out(args: &[&str]) -> (bool, String, String) {
    let o = ocipack_cmd().args(args).output().expect("running ocipack");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn build_push_publishes_three_arches_and_repair_restores_the_index() {
    require("skopeo");
    let reg = Registry::start();
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let tmpdir = t.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let pins_file = t.path().join("pins.json");
    let image = reg.url("k/rt:latest-cross");
    let pins_arg = pins_file.display().to_string();
    let mut args = build_args();
    args.extend(
        [
            "--push-all",
            "--image",
            &image,
            "--alias",
            "latest",
            "--json",
            "--digest-file",
            &pins_arg,
        ]
        .map(String::from),
    );
    let out = run_ok(ocipack_cmd().env("TMPDIR", &tmpdir).args(&args));
    let r = json(&out);
    let idx = &r["published"]["index"];
    let digest = idx["digest"].as_str().unwrap().to_string();

    // Staged in a temporary directory under TMPDIR, removed at the end.
    assert_eq!(
        std::fs::read_dir(&tmpdir).unwrap().count(),
        0,
        "the staging directory was left behind"
    );
    for g in idx["gates"].as_array().unwrap() {
        assert_eq!(g["passed"], true, "{g}");
    }
    assert_eq!(idx["forced"], serde_json::json!([]));

    // Pins: the file holds what --json printed; every pin is what the
    // registry serves for the tag.
    let pins: Value = serde_json::from_slice(&std::fs::read(&pins_file).unwrap()).unwrap();
    assert_eq!(pins, r["pins"]);
    // index + alias, and per arch: wrapper, package and (--push-all) base.
    assert_eq!(pins.as_object().unwrap().len(), 11, "{pins}");
    assert_eq!(pins[&image], format!("{host}/k/rt@{digest}"));
    assert_eq!(pins[&reg.url("k/rt:latest")], pins[&image]);
    for (tag, pin) in pins.as_object().unwrap() {
        let tag = tag.rsplit_once(':').unwrap().1;
        let served = reg.manifest("k/rt", tag).expect(tag);
        assert_eq!(sha256(&served).to_string(), digest_of(pin), "{tag}");
    }

    // The index as skopeo reads it: exactly the registry's bytes, which
    // hash to the digest we pinned, with the three platforms.
    let served = reg.manifest("k/rt", "latest-cross").unwrap();
    let raw = skopeo_raw(&format!("docker://{host}/k/rt:latest-cross"));
    assert_eq!(raw, served, "skopeo and the registry disagree");
    assert_eq!(sha256(&raw).to_string(), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(
        platforms(&index),
        ["linux/amd64", "linux/arm64/v8", "linux/riscv64"]
    );
    for (i, arch) in ARCHES.iter().enumerate() {
        let child = &pins[&reg.url(&format!("k/rt:latest-cross-{arch}"))];
        assert_eq!(index["manifests"][i]["digest"], digest_of(child), "{arch}");
        // Each wrapper records the digest of its package stage, which the
        // pushed package tag holds; the staging path is recorded nowhere.
        let m = manifest_json(&reg, "k/rt", &format!("latest-cross-{arch}"));
        let ann = &m["annotations"];
        assert!(
            ann.get("org.opencontainers.image.base.name").is_none(),
            "{ann}"
        );
        let pkg = &pins[&reg.url(&format!("k/rt:latest-cross-package-{arch}"))];
        assert_eq!(ann["org.opencontainers.image.base.digest"], digest_of(pkg));
        // --push-all also pushed the base stage as <tag>-base-<arch>: the
        // arch's image of the multi-arch base, the one the package records.
        let base = &pins[&reg.url(&format!("k/rt:latest-cross-base-{arch}"))];
        let p = manifest_json(&reg, "k/rt", &format!("latest-cross-package-{arch}"));
        assert_eq!(
            p["annotations"]["org.opencontainers.image.base.digest"],
            digest_of(base),
            "{arch}"
        );
        for tag in [
            format!("latest-cross-{arch}"),
            format!("latest-cross-package-{arch}"),
        ] {
            let m = manifest_json(&reg, "k/rt", &tag);
            let cfg = m["config"]["digest"].as_str().unwrap();
            let blob = reg
                .request("GET", &format!("/v2/k/rt/blobs/{cfg}"), &[], &[])
                .unwrap();
            assert_eq!(blob.status, 200);
            let staged = tmpdir.display().to_string();
            for (what, bytes) in [
                ("manifest", m.to_string().into_bytes()),
                ("config", blob.body),
            ] {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&staged),
                    "the {what} of {tag} records the staging path {staged}"
                );
            }
        }
    }

    // skopeo copy --all pulls the index and every platform, unchanged.
    let pulled = t.path().join("pulled");
    let o = run(
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{host}/k/rt:latest-cross"),
            &format!("oci:{}:latest-cross", pulled.display()),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = Layout::open(&pulled).unwrap();
    let d = l
        .resolve(Some(&Selector::Tag("latest-cross".into())))
        .unwrap();
    assert_eq!(d.digest().to_string(), digest);
    for m in index["manifests"].as_array().unwrap() {
        let desc: oci_spec::image::Descriptor = serde_json::from_value(m.clone()).unwrap();
        assert!(l.has_blob(&desc).unwrap(), "{}", desc.digest());
    }

    // Delete the index through the registry API (by digest: that removes
    // the tag and its alias), then repair it from the per-arch images.
    assert_eq!(reg.delete_manifest_of("k/rt", "latest-cross"), digest);
    assert!(reg.manifest("k/rt", "latest").is_none());
    let rep = json(&run_ok(ocipack_cmd().args([
        "manifest", "--repair", "--image", &image, "--alias", "latest", "--json",
    ])));
    assert_eq!(rep["digest"], digest, "{rep}");
    assert_eq!(rep["repair"], true);
    assert_eq!(reg.manifest("k/rt", "latest-cross").unwrap(), served);
    assert_eq!(reg.manifest("k/rt", "latest").unwrap(), served);

    // A Docker manifest list when every child is a Docker manifest:
    // skopeo converts the per-arch images, ocipack indexes them, skopeo
    // resolves the list per platform.
    for arch in ARCHES {
        let o = run(
            "skopeo",
            &[
                "copy",
                "--format",
                "v2s2",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{host}/k/rt:latest-cross-{arch}"),
                &format!("docker://{host}/k/d:list-{arch}"),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let list = json(&run_ok(ocipack_cmd().args([
        "manifest",
        "--image",
        &reg.url("k/d:list"),
        "--json",
    ])));
    assert_eq!(list["format"], "docker", "{list}");
    let raw = skopeo_raw(&format!("docker://{host}/k/d:list"));
    assert_eq!(sha256(&raw).to_string(), list["digest"].as_str().unwrap());
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["mediaType"], DOCKER_LIST);
    assert_eq!(
        platforms(&v),
        ["linux/amd64", "linux/arm64/v8", "linux/riscv64"]
    );
    let arm = run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "arm64",
        "--override-variant",
        "v8",
        &format!("docker://{host}/k/d:list"),
    ]));
    let arm = json(&arm);
    // skopeo reads the arm64 entry's config through the list.
    assert_eq!(arm["Architecture"], "arm64", "{arm}");
    assert_eq!(arm["Os"], "linux", "{arm}");
}

/// Copies `oci:LAYOUT:SRC_TAG` to the registry as `REPO:DEST_TAG`.
fn push(layout: &Path, src_tag: &str, reg: &Registry, dest: &str) {
    run_ok(ocipack_cmd().args([
        "push",
        &format!("oci:{}:{src_tag}", layout.display()),
        &reg.url(dest),
    ]));
}

#[test]
fn registry_gates_refuse_mixed_incomplete_and_moved_indexes() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let stage = t.path().join("stage");
    let image = reg.url("k/g:latest-cross");
    // --out keeps the staging layout.
    build(&[
        "--out",
        &format!("oci:{}:latest-cross", stage.display()),
        "--push",
        "--image",
        &image,
    ]);
    let published = reg.manifest("k/g", "latest-cross").unwrap();

    // Coherence: arm64 rebuilt by another run and pushed over its tag.
    let other = t.path().join("other");
    build(&[
        "--target-arches",
        "arm64",
        "--run-id",
        "another-run",
        "--out",
        &format!("oci:{}:latest-cross", other.display()),
    ]);
    push(&other, "latest-cross-arm64", &reg, "k/g:latest-cross-arm64");
    let (ok, _, err) = ocipack_out(&["manifest", "--image", &image]);
    assert!(!ok);
    assert!(err.contains("coherence gate failed"), "{err}");
    assert!(err.contains("arm64=another-run"), "{err}");
    assert_eq!(
        reg.manifest("k/g", "latest-cross").unwrap(),
        published,
        "a refused index must leave the published one alone"
    );
    let (ok, out, err) = ocipack_out(&["manifest", "--image", &image, "--force", "--json"]);
    assert!(ok, "{err}");
    let forced = json(&out);
    assert_eq!(forced["forced"], serde_json::json!(["coherence"]));
    assert!(err.contains("overridden by --force"), "{err}");
    let idx = manifest_json(&reg, "k/g", "latest-cross");
    let arm = reg.manifest("k/g", "latest-cross-arm64").unwrap();
    assert_eq!(idx["manifests"][1]["digest"], sha256(&arm).to_string());

    // Completeness: three arches asked for, two present.
    push(&stage, "latest-cross-amd64", &reg, "k/g:two-amd64");
    push(&stage, "latest-cross-arm64", &reg, "k/g:two-arm64");
    let (ok, _, err) = ocipack_out(&["manifest", "--image", &reg.url("k/g:two")]);
    assert!(!ok);
    assert!(err.contains("completeness gate failed"), "{err}");
    assert!(err.contains("riscv64 missing"), "{err}");
    assert!(reg.manifest("k/g", "two").is_none());

    // Freshness re-resolves from the registry after the push: a proxy
    // serves another image for the amd64 tag (as if another writer moved
    // it), and the written index is reported as not what the tags hold.
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "GET",
            "/manifests/fresh-amd64",
            When::Always,
            Action::Rewrite("fresh-amd64".into(), "fresh-arm64".into()),
        )],
    );
    let children = format!("oci:{}:latest-cross-{{arch}}", stage.display());
    let via_proxy = proxy.url("k/g:fresh");
    let args = [
        "manifest",
        "--push",
        "--image",
        &via_proxy,
        "--children",
        &children,
    ];
    let (ok, _, err) = ocipack_out(&args);
    assert!(!ok);
    let arm_digest = sha256(&reg.manifest("k/g", "fresh-arm64").unwrap()).to_string();
    assert!(
        err.contains("freshness gate failed: the index was written, but"),
        "{err}"
    );
    assert!(
        err.contains(&format!("k/g:fresh-amd64 resolves to {arm_digest}")),
        "{err}"
    );
    // The re-read happened after the index tag was written.
    let log = proxy.log();
    let put_index = log
        .iter()
        .position(|l| l.method == "PUT" && l.target.ends_with("/manifests/fresh"))
        .expect("index tag PUT");
    assert!(log[put_index..]
        .iter()
        .any(|l| l.method == "GET" && l.target.ends_with("/manifests/fresh-amd64")));
    let (ok, out, err) = ocipack_out(&[&args[..], &["--force", "--json"]].concat());
    assert!(ok, "{err}");
    assert_eq!(json(&out)["forced"], serde_json::json!(["freshness"]));
    proxy.set_rules(Vec::new());
    let (ok, out, err) = ocipack_out(&[&args[..], &["--json"]].concat());
    assert!(ok, "{err}");
    assert_eq!(json(&out)["forced"], serde_json::json!([]));

    // Credentials reach every request: the push, and the freshness re-reads.
    let auth = Registry::start_basic("ci", "s3cret");
    let image = auth.url("k/a:latest-cross");
    let args = [
        "manifest",
        "--push",
        "--image",
        &image,
        "--children",
        &children,
    ];
    let (ok, _, err) = ocipack_out(&args);
    assert!(!ok && err.to_lowercase().contains("unauthorized"), "{err}");
    let (ok, _, err) = ocipack_out(&[&args[..], &["--creds", "ci:s3cret"]].concat());
    assert!(ok, "{err}");
    assert!(auth.manifest("k/a", "latest-cross").is_some());
}

#[test]
fn build_push_dry_run_prints_the_plan_and_contacts_nothing() {
    // Nothing listens on port 1: a dry run must not try.
    let image = "docker://127.0.0.1:1/k/rt:latest-cross";
    let mut args = build_args();
    args.extend(
        [
            "--push-all",
            "--image",
            image,
            "--alias",
            "latest",
            "--dry-run",
        ]
        .map(String::from),
    );
    let plan = run_ok(ocipack_cmd().args(&args));
    for arch in ARCHES {
        assert!(
            plan.contains(&format!(
                "{arch}: push base oci:{}:base -> \
                 docker://127.0.0.1:1/k/rt:latest-cross-base-{arch}",
                fixtures().join("base").display()
            )),
            "{plan}"
        );
        assert!(
            plan.contains(&format!(
                "{arch}: push package oci:<staging>:latest-cross-package-{arch} -> \
                 docker://127.0.0.1:1/k/rt:latest-cross-package-{arch}"
            )),
            "{plan}"
        );
        assert!(
            plan.contains(&format!(
                "{arch}: push wrapper oci:<staging>:latest-cross-{arch} -> \
                 docker://127.0.0.1:1/k/rt:latest-cross-{arch}"
            )),
            "{plan}"
        );
    }
    assert!(plan.contains(&format!("push index {image} last")), "{plan}");
    args.push("--json".into());
    let j = json(&run_ok(ocipack_cmd().args(&args)));
    assert_eq!(j["published_index"], image);
    assert_eq!(j["steps"].as_array().unwrap().len(), 6);
    assert_eq!(j["base_pushes"].as_array().unwrap().len(), 3);
    assert_eq!(j["aliases"][0], "docker://127.0.0.1:1/k/rt:latest");

    // --push needs --image; --image needs --push; one tag for both.
    let mut no_image = build_args();
    no_image.push("--push".into());
    assert!(run_fail(ocipack_cmd().args(&no_image)).contains("--push needs --image"));
    let mut mismatch = build_args();
    mismatch.extend(
        [
            "--push",
            "--image",
            image,
            "--out",
            "oci:/nonexistent:other",
        ]
        .map(String::from),
    );
    assert!(run_fail(ocipack_cmd().args(&mismatch)).contains("different tags"));
}
