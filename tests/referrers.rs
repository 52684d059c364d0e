//! Issue 14 (parts 1-3): every image `build` writes carries an SPDX 2.3
//! SBOM and an in-toto/SLSA provenance statement as OCI 1.1 referrers. In
//! the layout they are untagged index.json entries; pushed to the real
//! registry (distribution 2.8, no referrers API) they are found from the
//! index digest alone through the `sha256-<hex>` tag schema; `copy --all`
//! carries them, `manifest --repair` keeps them, and skopeo and umoci read
//! the images as before. The SBOMs pass the SPDX project's own validator
//! (`pyspdxtools` from PyPI's `spdx-tools`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::Registry;
use common::runtime::build_args;
use common::tools::{require, run};
use common::*;
use serde_json::Value;

const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const ARCHES: [&str; 3] = ["amd64", "arm64", "riscv64"];

/// `pyspdxtools` in a venv under target/ (installed from PyPI once, then
/// reused by every run). Both tests ask for it at once: one installs, the
/// other waits. A venv left without the tool (a killed run) is redone.
fn pyspdxtools() -> PathBuf {
    static TOOL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TOOL.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spdx-venv");
        let tool = venv.join("bin/pyspdxtools");
        if !tool.exists() {
            let _ = std::fs::remove_dir_all(&venv);
            run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
            run_ok(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "spdx-tools==0.8.3",
            ]));
        }
        tool
    })
    .clone()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()
}

fn referrers(reference: &str) -> Value {
    json(&ocipack_ok(&["referrers", "--json", reference]))
}

/// The referrers of an index's images, per (platform, artifact type).
fn by_platform(r: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["platform"].as_str().unwrap_or("-").to_string(),
                e["artifact_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn build_push_attaches_sbom_and_provenance_found_from_the_index_digest() {
    require("skopeo");
    require("umoci");
    let reg = Registry::start();
    let host = reg.host();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let out_ref = format!("oci:{}:latest-cross", out.display());
    let image = reg.url("k/rt:latest-cross");
    let mut args = build_args();
    args.extend(["--out", &out_ref, "--push", "--image", &image, "--json"].map(String::from));
    let r = json(&run_ok(ocipack_cmd().args(&args)));
    let run_id = r["run_id"].as_str().unwrap().to_string();
    let index_digest = r["published"]["index"]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // The layout: two referrers per image written (package and wrapper),
    // untagged; the index and the images keep their digests.
    let idx: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let entries = idx["manifests"].as_array().unwrap();
    let artifacts: Vec<&Value> = entries
        .iter()
        .filter(|e| e["artifactType"].is_string())
        .collect();
    assert_eq!(artifacts.len(), 12, "{idx}");
    for a in &artifacts {
        assert!(a["annotations"]
            .get("org.opencontainers.image.ref.name")
            .is_none());
    }
    let listed = referrers(&out_ref);
    assert_eq!(listed["digest"], index_digest);
    let want: Vec<(String, String)> = {
        let mut w = Vec::new();
        for arch in ARCHES {
            let p = if arch == "arm64" {
                "linux/arm64/v8".to_string()
            } else {
                format!("linux/{arch}")
            };
            w.push((p.clone(), SPDX.to_string()));
            w.push((p, IN_TOTO.to_string()));
        }
        w.sort();
        w
    };
    assert_eq!(by_platform(&listed), want, "{listed}");

    // Each wrapper's documents: the SBOM validates, the provenance is an
    // in-toto v1 statement about the image with the run id of its label.
    let tool = pyspdxtools();
    for e in listed["referrers"].as_array().unwrap() {
        let art: Value =
            serde_json::from_slice(&blob(&out, e["digest"].as_str().unwrap())).unwrap();
        assert_eq!(art["subject"]["digest"], e["subject"]);
        assert_eq!(
            art["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layer = &art["layers"][0];
        let doc_bytes = blob(&out, layer["digest"].as_str().unwrap());
        let doc: Value = serde_json::from_slice(&doc_bytes).unwrap();
        let subject = e["subject"].as_str().unwrap();
        let manifest: Value = serde_json::from_slice(&blob(&out, subject)).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(&out, manifest["config"]["digest"].as_str().unwrap()))
                .unwrap();
        let label = &config["config"]["Labels"]["org.kataglyphis.run-id"];
        assert_eq!(label, run_id.as_str());
        if e["artifact_type"] == SPDX {
            let f = t.path().join(format!("{}.spdx.json", &subject[7..19]));
            std::fs::write(&f, &doc_bytes).unwrap();
            run_ok(Command::new(&tool).arg("-i").arg(&f));
            assert_eq!(doc["spdxVersion"], "SPDX-2.3");
            assert!(doc["documentNamespace"]
                .as_str()
                .unwrap()
                .ends_with(&subject[7..]));
            let files = doc["files"].as_array().unwrap();
            // The wrapper added the venv and the scripts; each file names
            // where it came from.
            let entry = files
                .iter()
                .find(|f| f["fileName"] == "./usr/local/bin/entrypoint.sh")
                .expect("entrypoint.sh in the SBOM");
            assert!(
                entry["comment"]
                    .as_str()
                    .unwrap()
                    .contains("repository directory scripts/entrypoint.sh"),
                "{entry}"
            );
            assert!(files.iter().any(|f| f["comment"]
                .as_str()
                .unwrap()
                .contains("from input venv (sha256:")));
            let base = doc["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["SPDXID"] == "SPDXRef-Base")
                .unwrap();
            assert_eq!(base["versionInfo"].as_str().unwrap().len(), 71);
        } else {
            assert_eq!(doc["_type"], "https://in-toto.io/Statement/v1");
            assert_eq!(doc["predicateType"], "https://slsa.dev/provenance/v1");
            assert_eq!(doc["subject"][0]["digest"]["sha256"], &subject[7..]);
            let p = &doc["predicate"];
            assert_eq!(p["runDetails"]["metadata"]["invocationId"], run_id.as_str());
            assert_eq!(
                p["buildDefinition"]["internalParameters"]["runId"],
                run_id.as_str()
            );
            assert_eq!(p["runDetails"]["builder"]["id"], "pkg:cargo/ocipack");
            let deps = p["buildDefinition"]["resolvedDependencies"]
                .as_array()
                .unwrap();
            for name in ["base", "input:venv", "recipe"] {
                let d = deps
                    .iter()
                    .find(|d| d["name"] == name)
                    .unwrap_or_else(|| panic!("{name}: {doc}"));
                assert_eq!(d["digest"]["sha256"].as_str().unwrap().len(), 64);
            }
            let guards = p["buildDefinition"]["internalParameters"]["guards"]["guards"]
                .as_array()
                .unwrap();
            assert!(guards.iter().any(|g| g["guard"] == "elf"));
        }
    }
    // The package stage's SBOM lists the artifact's payload with its source.
    let pkg = referrers(&format!(
        "oci:{}:latest-cross-package-riscv64",
        out.display()
    ));
    let sbom = pkg["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["artifact_type"] == SPDX)
        .unwrap();
    let art: Value = serde_json::from_slice(&blob(&out, sbom["digest"].as_str().unwrap())).unwrap();
    let doc: Value =
        serde_json::from_slice(&blob(&out, art["layers"][0]["digest"].as_str().unwrap())).unwrap();
    let f = t.path().join("package.spdx.json");
    std::fs::write(&f, serde_json::to_vec(&doc).unwrap()).unwrap();
    run_ok(Command::new(&tool).arg("-i").arg(&f));
    let comments: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["comment"].as_str().unwrap())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("from input artifact (sha256:")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("generated system file")),
        "{comments:?}"
    );

    // umoci and skopeo read the layout's images as before.
    run(
        "umoci",
        &[
            "stat",
            "--image",
            &format!("{}:latest-cross-amd64", out.display()),
        ],
    );
    run(
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:latest-cross-riscv64", out.display()),
        ],
    );

    // The registry (no referrers API): from the index digest alone.
    let by_digest = format!("docker://{host}/k/rt@{index_digest}");
    let pushed = referrers(&by_digest);
    assert_eq!(by_platform(&pushed), want, "{pushed}");
    // The tag schema as the spec has it, read by skopeo too.
    let first = pushed["referrers"][0]["subject"]
        .as_str()
        .unwrap()
        .to_string();
    let schema = format!("sha256-{}", &first[7..]);
    let raw = reg.manifest("k/rt", &schema).expect("the referrers tag");
    let schema_index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        schema_index["manifests"].as_array().unwrap().len(),
        2,
        "{schema_index}"
    );
    let o = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/k/rt:{schema}"),
        ],
    );
    assert!(o.status.success());
    // skopeo reads the published image unchanged.
    let o = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/k/rt:latest-cross-amd64"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let amd = reg.manifest("k/rt", "latest-cross-amd64").unwrap();
    assert_eq!(amd, blob(&out, ocipack::digest::sha256(&amd).as_ref()));

    // copy --all to another repository carries them; --no-referrers not.
    ocipack_ok(&["copy", "--all", &image, &reg.url("k/copy:latest-cross")]);
    let copied = referrers(&format!("docker://{host}/k/copy@{index_digest}"));
    assert_eq!(by_platform(&copied), want, "{copied}");
    ocipack_ok(&[
        "copy",
        "--all",
        "--no-referrers",
        &image,
        &reg.url("k/bare:latest-cross"),
    ]);
    let bare = referrers(&reg.url("k/bare:latest-cross"));
    assert_eq!(bare["referrers"], serde_json::json!([]));
    // ...and into a layout, as untagged entries.
    let lay = t.path().join("copy");
    ocipack_ok(&["copy", "--all", &image, &format!("oci:{}:x", lay.display())]);
    let in_layout = referrers(&format!("oci:{}:x", lay.display()));
    assert_eq!(by_platform(&in_layout), want, "{in_layout}");
    let filtered = json(&ocipack_ok(&[
        "referrers",
        "--json",
        "--artifact-type",
        IN_TOTO,
        &by_digest,
    ]));
    assert_eq!(filtered["referrers"].as_array().unwrap().len(), 3);

    // manifest --repair after the index is lost: the same digest, the same
    // referrers.
    reg.delete_manifest_of("k/rt", "latest-cross");
    ocipack_ok(&["manifest", "--repair", "--image", &image]);
    let repaired = referrers(&image);
    assert_eq!(repaired["digest"], index_digest);
    assert_eq!(by_platform(&repaired), want, "{repaired}");
}

/// A base with a dpkg database: its installed packages are in the SBOM
/// with Debian purls (versions percent-encoded), and the SBOM validates.
#[test]
fn the_base_packages_of_a_dpkg_base_are_in_the_sbom() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Debian GNU/Linux\"\nID=debian\n",
    )
    .unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 2.36-9+deb12u4\nDescription: GNU C Library\n shared libraries\n\n\
         Package: removed\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n\
         Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n",
    )
    .unwrap();
    let base = format!("oci:{}:debian", t.path().join("base").display());
    ocipack_ok(&[
        "append",
        "--base",
        &format!("oci:{}:base-amd64", fixtures().join("base").display()),
        "--dir",
        &format!("{}:/", root.display()),
        "--out",
        &base,
        "--no-cache",
    ]);
    let out = format!("oci:{}:pkg", t.path().join("out").display());
    ocipack_ok(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &base,
        "--artifact",
        &format!(
            "oci:{}:cross-android-amd64",
            fixtures().join("artifacts").display()
        ),
        "--recipe",
        &repo()
            .join("layouts/fixtures/package.toml")
            .display()
            .to_string(),
        "--out",
        &out,
    ]);
    let r = json(&ocipack_ok(&[
        "referrers",
        "--json",
        "--artifact-type",
        SPDX,
        &out,
    ]));
    let layout = t.path().join("out");
    let art: Value = serde_json::from_slice(&blob(
        &layout,
        r["referrers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let bytes = blob(&layout, art["layers"][0]["digest"].as_str().unwrap());
    let f = t.path().join("sbom.spdx.json");
    std::fs::write(&f, &bytes).unwrap();
    run_ok(Command::new(pyspdxtools()).arg("-i").arg(&f));
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let purls: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .map(|e| e["referenceLocator"].as_str().unwrap())
        .filter(|l| l.starts_with("pkg:deb/"))
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
            "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all"
        ]
    );
}
