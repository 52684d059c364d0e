//! The BuildKit handoff of dockerfiles/README.md, end to end, on layouts
//! written the way BuildKit's OCI exporter writes them (tests/common/
//! buildkit.rs, from the fixture blobs): one directory per image under
//! `out/local-oci/`, `name=<image>-<arch>` (so ref.name `latest` and
//! io.containerd.image.name `docker.io/library/<image>-<arch>:latest`),
//! with provenance attestation manifests where buildx would add them.
//!
//! The references below are the documented ones, run from a temporary
//! working directory so `out/...` means what the README says.

mod common;

use std::path::Path;
use std::process::Command;

use common::buildkit::{self, Export};
use common::{fixtures, repo};
use serde_json::Value;

const ARCHES: [&str; 3] = ["amd64", "arm64", "riscv64"];

/// ocipack in `cwd` with SOURCE_DATE_EPOCH, `--json`; panics on failure.
fn ocipack_in(cwd: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .arg("--json")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .current_dir(cwd)
        .output()
        .expect("running ocipack");
    assert!(
        out.status.success(),
        "ocipack {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn ocipack_fails_in(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running ocipack");
    assert!(!out.status.success(), "ocipack {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A stand-in for torch.Dockerfile's `app-export` (FROM scratch + the app
/// under /opt/app), written by umoci, not ocipack: `SRC:app-<arch>`.
fn umoci_app_image(src: &Path, arch: &str) {
    let img = format!("{}:app-{arch}", src.display());
    if !src.join("index.json").exists() {
        common::tools::run_ok("umoci", &["init", "--layout", &src.display().to_string()]);
    }
    common::tools::run_ok("umoci", &["new", "--image", &img]);
    let bundle = src.with_file_name(format!("bundle-{arch}"));
    let b = bundle.display().to_string();
    common::tools::run_ok("umoci", &["unpack", "--rootless", "--image", &img, &b]);
    let app = bundle.join("rootfs/opt/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("pyproject.toml"),
        "[project]\nname = \"demo\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(app.join("uv.lock"), "version = 1\n").unwrap();
    common::tools::run_ok("umoci", &["repack", "--image", &img, &b]);
    common::tools::run_ok(
        "umoci",
        &[
            "config",
            "--image",
            &img,
            "--os",
            "linux",
            "--architecture",
            arch,
        ],
    );
}

/// Step 1 of the README: the BuildKit exports ocipack reads.
fn buildkit_exports(work: &Path) {
    let base = fixtures().join("base");
    let art = fixtures().join("artifacts");
    for arch in ARCHES {
        // base.Dockerfile through nerdctl: no attestations (nerdctl adds
        // none unless asked), so index.json points at the manifest itself.
        buildkit::export(&Export {
            src_layout: &base,
            src_tag: &format!("base-{arch}"),
            dest: &work.join(format!("out/local-oci/base-{arch}")),
            name: &format!("base-{arch}"),
            attest: false,
        });
        // cross-android and the torch exports with provenance (buildx's
        // default): index.json -> image index -> manifest + attestation.
        for image in ["cross-android", "venv-export"] {
            buildkit::export(&Export {
                src_layout: &art,
                src_tag: &format!("{image}-{arch}"),
                dest: &work.join(format!("out/local-oci/{image}-{arch}")),
                name: &format!("{image}-{arch}"),
                attest: true,
            });
        }
        let apps = work.join("umoci/apps");
        std::fs::create_dir_all(apps.parent().unwrap()).unwrap();
        umoci_app_image(&apps, arch);
        buildkit::export(&Export {
            src_layout: &apps,
            src_tag: &format!("app-{arch}"),
            dest: &work.join(format!("out/local-oci/app-export-{arch}")),
            name: &format!("app-export-{arch}"),
            attest: true,
        });
    }
}

#[test]
fn go_style_json_helpers() {
    assert_eq!(
        buildkit::go_indent(r#"{"a":[1,{"b":"x,:{"}],"c":{}}"#),
        "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,:{\"\n    }\n  ],\n  \"c\": {}\n}"
    );
    assert_eq!(
        buildkit::normalized_name("base-riscv64"),
        "docker.io/library/base-riscv64:latest"
    );
}

/// What BuildKit wrote is what the test claims: the nesting and the
/// annotations of exporter/oci + client/ociindex + containerimage/writer.
#[test]
fn fixture_layouts_are_nested_and_annotated_like_buildkit() {
    let tmp = tempfile::tempdir().unwrap();
    buildkit_exports(tmp.path());
    let dir = tmp.path().join("out/local-oci/cross-android-riscv64");
    let idx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let top = &idx["manifests"].as_array().unwrap()[..];
    assert_eq!(top.len(), 1);
    assert_eq!(
        top[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let ann = &top[0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "latest");
    assert_eq!(
        ann["io.containerd.image.name"],
        "docker.io/library/cross-android-riscv64:latest"
    );
    // Read the image index with skopeo, a tool that is not ocipack: by tag
    // `latest`, as BuildKit's ref.name says.
    let raw = common::tools::run_ok(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:latest", dir.display())],
    );
    let inner: Value = serde_json::from_str(&raw).unwrap();
    let list = inner["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["platform"]["architecture"], "amd64");
    assert_eq!(list[1]["platform"]["os"], "unknown");
    assert_eq!(
        list[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        list[1]["annotations"]["vnd.docker.reference.digest"],
        list[0]["digest"]
    );
}

/// The names BuildKit records resolve like containerd resolves them, a
/// single image needs no tag, and an attestation is never an image.
#[test]
fn references_resolve_against_buildkit_names() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path();
    buildkit_exports(w);
    let digest_of = |r: &str, arch: Option<&str>| -> String {
        let mut args = vec!["inspect", r];
        if let Some(a) = arch {
            args.extend(["--arch", a]);
        }
        let v = ocipack_in(w, &args);
        v["digest"].as_str().unwrap().to_string()
    };
    let plain = digest_of("oci:out/local-oci/base-riscv64", None);
    for r in [
        "oci:out/local-oci/base-riscv64:latest",
        "oci:out/local-oci/base-riscv64:base-riscv64",
        "oci-layout://out/local-oci/base-riscv64:base-riscv64",
    ] {
        assert_eq!(digest_of(r, None), plain, "{r}");
    }
    // inspect shows the index BuildKit wrote, the attestation marked.
    let idx = ocipack_in(w, &["inspect", "oci:out/local-oci/cross-android-arm64"]);
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{idx}");
    assert_eq!(entries[0]["platform"], "linux/amd64");
    assert_eq!(entries[1]["attestation"], true);
    // The attestation-bearing index is one image: no --arch needed (unpack
    // resolves it without one), and the in-toto manifest is never picked.
    let rootfs = w.join("rootfs");
    let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(["unpack", "oci:out/local-oci/venv-export-riscv64"])
        .arg(&rootfs)
        .current_dir(w)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rootfs.join("opt/venv/pyvenv.cfg").is_file());
    let err = ocipack_fails_in(
        w,
        &[
            "inspect",
            "oci:out/local-oci/cross-android-arm64",
            "--arch",
            "riscv64",
        ],
    );
    assert!(
        err.contains("linux/amd64") && !err.contains("unknown"),
        "attestations are not offered as platforms: {err}"
    );

    // Several exports into one directory (the same dest, name=base-<arch>):
    // every entry is `latest`, the name tells them apart.
    let shared = w.join("out/shared");
    for arch in ARCHES {
        buildkit::export(&Export {
            src_layout: &fixtures().join("base"),
            src_tag: &format!("base-{arch}"),
            dest: &shared,
            name: &format!("base-{arch}"),
            attest: false,
        });
    }
    assert_eq!(digest_of("oci:out/shared:base-riscv64", None), plain);
    let err = ocipack_fails_in(w, &["inspect", "oci:out/shared:latest"]);
    assert!(err.contains("more than one"), "{err}");
    let err = ocipack_fails_in(w, &["inspect", "oci:out/shared:base-mips"]);
    assert!(
        err.contains("docker.io/library/base-arm64:latest"),
        "the error lists the names: {err}"
    );
}

/// dockerfiles/README.md, steps 2 and 4: `ocipack package` writes the
/// torch stage's base into a layout of its own (what `--build-context
/// base=oci-layout://...` reads), and `ocipack build` with the same run id
/// re-derives that exact image under the wrappers.
#[test]
fn documented_commands_build_from_buildkit_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path();
    buildkit_exports(w);
    // The fixture package recipe (the shipped one copies trees the fixture
    // artifacts do not have); the shipped wrapper recipe, with its venv and
    // app inputs, and the shipped version pins.
    let pr = repo().join("layouts/fixtures/package.toml");
    let wr = repo().join("layouts/wrapper.toml");
    let versions = repo().join("layouts/versions.env");
    let (pr, wr, versions) = (
        pr.to_str().unwrap(),
        wr.to_str().unwrap(),
        versions.to_str().unwrap(),
    );

    let mut package_digests = Vec::new();
    for arch in ARCHES {
        let r = ocipack_in(
            w,
            &[
                "package",
                "--arch",
                arch,
                "--base",
                &format!("oci:out/local-oci/base-{arch}"),
                "--artifact",
                &format!("oci:out/local-oci/cross-android-{arch}"),
                "--recipe",
                pr,
                "--versions",
                versions,
                "--run-id",
                "run-1",
                "--out",
                &format!("oci:out/local-oci/package-{arch}:latest"),
            ],
        );
        let d = r["digest"].as_str().unwrap().to_string();
        // What nerdctl's --build-context oci-layout://DIR reads: the last
        // image-manifest entry of index.json; here the only entry.
        let idx: Value = serde_json::from_slice(
            &std::fs::read(w.join(format!("out/local-oci/package-{arch}/index.json"))).unwrap(),
        )
        .unwrap();
        let entries = idx["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "one image per context layout");
        assert_eq!(
            entries[0]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(entries[0]["digest"].as_str().unwrap(), d);
        package_digests.push(d);
    }

    let r = ocipack_in(
        w,
        &[
            "build",
            "--base",
            "oci:out/local-oci/base-{arch}",
            "--artifact",
            "oci:out/local-oci/cross-android-{arch}",
            "--input",
            "venv=oci:out/local-oci/venv-export-{arch}",
            "--input",
            "app=oci:out/local-oci/app-export-{arch}",
            "--package-recipe",
            pr,
            "--wrapper-recipe",
            wr,
            "--versions",
            versions,
            "--run-id",
            "run-1",
            "--out",
            "oci:out/runtime:latest-cross",
        ],
    );
    assert_eq!(r["wrappers"].as_array().unwrap().len(), 3);
    for (arch, want) in ARCHES.iter().zip(&package_digests) {
        let pkg = ocipack_in(
            w,
            &[
                "inspect",
                &format!("oci:out/runtime:latest-cross-package-{arch}"),
            ],
        );
        assert_eq!(
            pkg["digest"].as_str().unwrap(),
            want,
            "{arch}: build re-derives the package torch was built on"
        );
        let wrapper = ocipack_in(
            w,
            &["inspect", &format!("oci:out/runtime:latest-cross-{arch}")],
        );
        let labels = &wrapper["config"]["labels"];
        assert_eq!(
            labels["org.kataglyphis.parent-digest"].as_str(),
            Some(want.as_str()),
            "{arch}: {wrapper}"
        );
        assert_eq!(
            wrapper["config"]["entrypoint"][0],
            "/usr/local/bin/entrypoint.sh"
        );
        // The venv, the app and the scripts are all in the wrapper.
        let rootfs = w.join(format!("rootfs-{arch}"));
        let out = Command::new(env!("CARGO_BIN_EXE_ocipack"))
            .args(["unpack", &format!("oci:out/runtime:latest-cross-{arch}")])
            .arg(&rootfs)
            .current_dir(w)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in [
            "opt/venv/pyvenv.cfg",
            "opt/app/pyproject.toml",
            "opt/app/uv.lock",
            "usr/local/bin/entrypoint.sh",
            "usr/local/bin/vulkan.sh",
        ] {
            assert!(rootfs.join(f).exists(), "{arch}: /{f} missing");
        }
    }
    let idx = ocipack_in(w, &["inspect", "oci:out/runtime:latest-cross"]);
    let plats: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64/v8", "linux/riscv64"]);
}
