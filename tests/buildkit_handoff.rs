//! The BuildKit handoff of dockerfiles/README.md, end to end, driven by the
//! README itself: its `nerdctl build ... --output type=oci,tar=false,
//! name=N,dest=D` commands become layouts written the way BuildKit's OCI
//! exporter writes them (tests/common/buildkit.rs, from the fixture blobs;
//! no BuildKit daemon in CI), and its `ocipack package` / `ocipack build`
//! commands run as written, from a temporary working directory so `out/...`
//! means what the README says. The base export has no attestation
//! (nerdctl's default); the others carry a provenance attestation manifest
//! (buildx's default, `nerdctl build --provenance`), so both shapes are read.

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

/// The commands of dockerfiles/README.md ("## The commands"), one per
/// entry, continuation lines joined and comments dropped.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("dockerfiles/README.md")).unwrap();
    let section = text
        .split("## The commands")
        .nth(1)
        .expect("dockerfiles/README.md has a \"## The commands\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```sh block");
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Shell words of a README command, quotes removed, `$arch`/`$target`
/// and `$RUN_ID` substituted.
fn words(cmd: &str, arch: &str, target: &str) -> Vec<String> {
    cmd.replace("$target", target)
        .replace("$arch", arch)
        .replace("\"$RUN_ID\"", "run-1")
        .split_whitespace()
        .map(|w| w.trim_matches('\'').trim_matches('"').to_string())
        .collect()
}

/// The value after `flag` in `words`.
fn flag<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| w == flag)
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

/// Step 1 and 3 of the README, as BuildKit would run them: every
/// `nerdctl build ... --output type=oci,tar=false,name=N,dest=D` of the
/// README becomes a BuildKit-style export of the matching fixture image
/// into `D` under `name=N`. Returns the `(dest, name)` pairs.
fn buildkit_exports_from_readme(work: &Path) -> Vec<(String, String)> {
    let apps = work.join("umoci/apps");
    std::fs::create_dir_all(apps.parent().unwrap()).unwrap();
    let mut done = Vec::new();
    for cmd in readme_commands()
        .iter()
        .filter(|c| c.starts_with("nerdctl build"))
    {
        for arch in ARCHES {
            for target in ["venv-export", "app-export"] {
                let w = words(cmd, arch, target);
                let output = flag(&w, "--output").expect("--output");
                let mut name = None;
                let mut dest = None;
                for kv in output.split(',') {
                    match kv.split_once('=') {
                        Some(("name", v)) => name = Some(v.to_string()),
                        Some(("dest", v)) => dest = Some(v.to_string()),
                        Some(("type", v)) => assert_eq!(v, "oci", "{cmd}"),
                        Some(("tar", v)) => assert_eq!(v, "false", "{cmd}"),
                        _ => panic!("unexpected --output part {kv:?} in {cmd}"),
                    }
                }
                let (name, dest) = (name.expect("name="), dest.expect("dest="));
                if done.contains(&(dest.clone(), name.clone())) {
                    continue;
                }
                let file = flag(&w, "-f").expect("-f");
                let (src, tag, attest) = match (file, flag(&w, "--target")) {
                    ("dockerfiles/base.Dockerfile", _) => {
                        (fixtures().join("base"), format!("base-{arch}"), false)
                    }
                    ("dockerfiles/cross-android.Dockerfile", _) => (
                        fixtures().join("artifacts"),
                        format!("cross-android-{arch}"),
                        true,
                    ),
                    ("dockerfiles/torch.Dockerfile", Some("venv-export")) => (
                        fixtures().join("artifacts"),
                        format!("venv-export-{arch}"),
                        true,
                    ),
                    ("dockerfiles/torch.Dockerfile", Some("app-export")) => {
                        umoci_app_image(&apps, arch);
                        (apps.clone(), format!("app-{arch}"), true)
                    }
                    other => panic!("no fixture for {other:?}: {cmd}"),
                };
                buildkit::export(&Export {
                    src_layout: &src,
                    src_tag: &tag,
                    dest: &work.join(&dest),
                    name: &name,
                    attest,
                });
                done.push((dest, name));
            }
        }
    }
    done
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
    buildkit_exports_from_readme(tmp.path());
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
    buildkit_exports_from_readme(w);
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
    let exported = buildkit_exports_from_readme(w);
    assert_eq!(exported.len(), 4 * ARCHES.len(), "{exported:?}");
    // The fixture package recipe stands in for layouts/package.toml (which
    // copies trees the fixture artifacts do not have); the shipped wrapper
    // recipe, with its venv and app inputs, and the shipped version pins
    // are used as they are.
    let fixture_pr = repo().join("layouts/fixtures/package.toml");
    let repo_path = |w: &str| -> String {
        match w {
            "layouts/package.toml" => fixture_pr.display().to_string(),
            w if w.starts_with("layouts/") => repo().join(w).display().to_string(),
            w => w.to_string(),
        }
    };
    let commands = readme_commands();
    let ocipack_cmd = |sub: &str| -> &String {
        commands
            .iter()
            .find(|c| c.starts_with(&format!("ocipack {sub} ")))
            .unwrap_or_else(|| panic!("dockerfiles/README.md runs no `ocipack {sub}`"))
    };
    let torch = commands
        .iter()
        .find(|c| c.contains("dockerfiles/torch.Dockerfile"))
        .expect("the torch build");

    // Step 2: `ocipack package` for every arch.
    let mut package_digests = Vec::new();
    for arch in ARCHES {
        let args: Vec<String> = words(ocipack_cmd("package"), arch, "")[1..]
            .iter()
            .map(|w| repo_path(w))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = ocipack_in(w, &args);
        let d = r["digest"].as_str().unwrap().to_string();
        // Step 3 reads it as `--build-context base=oci-layout://$PWD/DIR`:
        // DIR must be where `package --out` wrote, and hold one image
        // manifest entry (nerdctl takes the last image-manifest entry of
        // index.json and refuses an index).
        let out = flag(&words(ocipack_cmd("package"), arch, ""), "--out")
            .unwrap()
            .to_string();
        let dir = out
            .strip_prefix("oci:")
            .and_then(|o| o.rsplit_once(':'))
            .map(|(d, _)| d.to_string())
            .unwrap();
        let context = words(torch, arch, "venv-export")
            .iter()
            .find_map(|x| {
                x.strip_prefix("base=oci-layout://$PWD/")
                    .map(str::to_string)
            })
            .expect("--build-context base=oci-layout://$PWD/...");
        assert_eq!(context, dir, "torch reads what package wrote");
        let idx: Value =
            serde_json::from_slice(&std::fs::read(w.join(&dir).join("index.json")).unwrap())
                .unwrap();
        // Besides the image: its SBOM and provenance, untagged artifact
        // entries written before the image's tag, so the image stays the
        // last image-manifest entry (the one nerdctl takes).
        let all = idx["manifests"].as_array().unwrap();
        let entries: Vec<&Value> = all.iter().filter(|e| e["artifactType"].is_null()).collect();
        assert_eq!(entries.len(), 1, "one image per context layout");
        assert_eq!(
            entries[0]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(entries[0]["digest"].as_str().unwrap(), d);
        assert_eq!(all.last().unwrap()["digest"], entries[0]["digest"]);
        assert_eq!(all.len(), 3, "the image, its SBOM and its provenance");
        package_digests.push(d);
    }

    // Step 4: `ocipack build` (the recipes it defaults to, given explicitly
    // because the working directory is a temporary one).
    let build = words(ocipack_cmd("build"), "", "");
    assert_eq!(flag(&build, "--out"), Some("oci:out/runtime:latest-cross"));
    let mut args: Vec<String> = build[1..].iter().map(|w| repo_path(w)).collect();
    args.extend([
        "--package-recipe".to_string(),
        fixture_pr.display().to_string(),
        "--wrapper-recipe".to_string(),
        repo().join("layouts/wrapper.toml").display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ocipack_in(w, &args);
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
