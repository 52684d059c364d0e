use std::path::Path;

use super::*;
use crate::error::Error;

const SAMPLE: &str = r#"
[recipe]
name = "package"
kind = "package"
parent_stage = "base"

[variables]
GCC_VERSION = "16.1.0"
GCC_PREFIX = "/opt/gcc-${GCC_VERSION}"

[inputs.artifact]
platform = "any"

[[copy]]
paths = ["/opt/opencv5", "${GCC_PREFIX}"]

[[copy]]
paths = ["/opt/flutter"]
owner = "1001:1001"

[[copy]]
paths = ["/opt/llvm-target"]
dest = "/usr/local/llvm-target"

[[copy]]
paths = ["/usr/local/lib/onnxruntime-gpu", "/usr/local/lib/libLiteRt*.so*"]
optional = true

[[copy]]
paths = ["/opt/android-sdk"]
layer = "android"
exclude = ["/opt/android-sdk/tmp"]

[[prune]]
paths = ["/opt/vulkan/*/x86_64"]
reason = "host SDK"
when.foreign = true

[[file]]
path = "/etc/ld.so.conf.d/gcc-custom.conf"
content = "${GCC_PREFIX}/lib64\n${GCC_PREFIX}/lib\n"

[[file]]
path = "/etc/profile.d/x.sh"
content = "export PATH=$${HOME}:$PATH\n"
mode = "0755"
when.arch = ["arm64"]

[[symlink]]
path = "/usr/local/bin/python3"
target = "/opt/venv/bin/python"

[[alternative]]
name = "cc"
link = "/usr/bin/cc"
path = "${GCC_PREFIX}/bin/gcc"
priority = 150

[[alternative]]
name = "clang"
link = "/usr/bin/clang"
path = "/usr/local/llvm-target/bin/clang"
priority = 1000
slaves = [{ name = "clang++", link = "/usr/bin/clang++", path = "/usr/local/llvm-target/bin/clang++" }]

[config]
user = "1001:1001"
workdir = "/workspace"
volumes = ["/workspace"]
entrypoint = ["/usr/local/bin/entrypoint.sh"]
cmd = ["/bin/bash"]
exposed_ports = ["8080", "53/udp"]

[config.env.set]
TARGET_ARCH = "${TARGET_ARCH}"
[config.env.prepend]
PATH = ["${GCC_PREFIX}/bin"]

[config.labels]
"org.opencontainers.image.title" = "t"

[config.healthcheck]
test = ["CMD-SHELL", "true"]
interval = "1m30s"
retries = 3

[annotations]
"org.opencontainers.image.description" = "d"

[guards]
required = ["/usr/bin/cc"]
waive = { symlinks = "known broken" }

[guards.elf]
allow = [{ glob = "/opt/vulkan/*/x86_64/**", reason = "host tools", when.arch = ["amd64"] }]

[guards.compiler]
gcc_prefix = "${GCC_PREFIX}"
gcc_version = "${GCC_VERSION}"
"#;

fn load_sample(text: &str, arch: TargetArch, inputs: &VarInputs) -> crate::Result<Recipe> {
    load_str(
        Path::new("layouts/t.toml"),
        Path::new("."),
        text,
        arch,
        inputs,
    )
}

fn err_of(text: &str) -> (usize, String) {
    match load_sample(text, TargetArch::Arm64, &VarInputs::default()) {
        Err(Error::Recipe {
            file,
            line,
            message,
            ..
        }) => {
            assert_eq!(file, Path::new("layouts/t.toml"));
            (line, message)
        }
        other => panic!("expected a recipe error, got {other:?}"),
    }
}

/// Replaces the first occurrence of `from` in SAMPLE and returns the text
/// plus the 1-based line of the replacement.
fn mutate(from: &str, to: &str) -> (String, usize) {
    let pos = SAMPLE.find(from).expect("pattern in sample");
    let line = SAMPLE[..pos].matches('\n').count() + 1;
    (SAMPLE.replacen(from, to, 1), line)
}

#[test]
fn sample_loads_for_arm64() {
    let r = load_sample(SAMPLE, TargetArch::Arm64, &VarInputs::default()).unwrap();
    assert_eq!(r.kind, RecipeKind::Package);
    assert_eq!(r.parent_stage.as_deref(), Some("base"));
    assert_eq!(r.inputs["artifact"].platform, InputPlatform::Any);
    assert_eq!(r.layers.len(), 2);
    assert_eq!(r.layers[0].name, "payload");
    assert_eq!(r.layers[1].name, "android");
    let LayerSource::Image { input, selection } = &r.layers[0].source else {
        panic!("image layer expected")
    };
    assert_eq!(input, "artifact");
    let sources: Vec<&str> = selection.rules.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "/opt/opencv5",
            "/opt/gcc-16.1.0",
            "/opt/flutter",
            "/opt/llvm-target",
            "/usr/local/lib/onnxruntime-gpu",
            "/usr/local/lib/libLiteRt*.so*"
        ]
    );
    assert_eq!(selection.rules[2].owner, Some((1001, 1001)));
    assert_eq!(
        selection.rules[3].dest.as_deref(),
        Some("/usr/local/llvm-target")
    );
    assert!(selection.rules[4].optional && !selection.rules[0].optional);
    // The prune applies on a foreign arch, to every rule.
    assert!(selection.rules[0]
        .exclude
        .contains(&"/opt/vulkan/*/x86_64".to_string()));
    let LayerSource::Image { selection, .. } = &r.layers[1].source else {
        panic!()
    };
    assert_eq!(
        selection.rules[0].exclude,
        ["/opt/android-sdk/tmp", "/opt/vulkan/*/x86_64"]
    );

    assert_eq!(r.system.files.len(), 2);
    assert_eq!(
        r.system.files[0].content,
        b"/opt/gcc-16.1.0/lib64\n/opt/gcc-16.1.0/lib\n"
    );
    assert_eq!(r.system.files[1].content, b"export PATH=${HOME}:$PATH\n");
    assert_eq!(r.system.files[1].mode, 0o755);
    assert_eq!(r.system.alternatives[0].path, "/opt/gcc-16.1.0/bin/gcc");
    assert!(r.system.alternatives[0].set);
    assert_eq!(r.system.alternatives[1].slaves[0].name, "clang++");

    assert_eq!(r.config.env.set["TARGET_ARCH"], "arm64");
    assert_eq!(r.config.env.prepend["PATH"], ["/opt/gcc-16.1.0/bin"]);
    assert_eq!(r.config.exposed_ports, ["8080/tcp", "53/udp"]);
    let h = r.config.healthcheck.as_ref().unwrap();
    assert_eq!(h.interval, Some(90_000_000_000));
    assert_eq!(h.retries, Some(3));
    assert_eq!(r.annotations.len(), 1);

    assert_eq!(r.guards.waivers["symlinks"], "known broken");
    assert!(r.guards.elf_allow.is_empty(), "allow entry is amd64 only");
    assert_eq!(
        r.guards.compiler_links,
        ["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/clang++"]
    );
    assert_eq!(r.guards.gcc_prefix.as_deref(), Some("/opt/gcc-16.1.0"));
    assert_eq!(r.guards.symlink_trees, ["/**/lib-dynload"]);
    assert_eq!(r.variables["TARGET_TRIPLE"], "aarch64-linux-gnu");
}

#[test]
fn when_conditions_follow_the_arch() {
    let r = load_sample(SAMPLE, TargetArch::Amd64, &VarInputs::default()).unwrap();
    let LayerSource::Image { selection, .. } = &r.layers[0].source else {
        panic!()
    };
    assert!(selection.rules[0].exclude.is_empty(), "no prune on amd64");
    assert_eq!(r.system.files.len(), 1, "arm64-only file dropped");
    assert_eq!(r.guards.elf_allow.len(), 1);
}

#[test]
fn set_and_versions_override_defaults() {
    let mut inputs = VarInputs::default();
    inputs
        .versions
        .insert("GCC_VERSION".into(), "15.2.0".into());
    let r = load_sample(SAMPLE, TargetArch::Riscv64, &inputs).unwrap();
    assert_eq!(r.system.alternatives[0].path, "/opt/gcc-15.2.0/bin/gcc");
    inputs.set("GCC_VERSION=17.0.0").unwrap();
    let r = load_sample(SAMPLE, TargetArch::Riscv64, &inputs).unwrap();
    assert_eq!(r.guards.gcc_version.as_deref(), Some("17.0.0"));
}

#[test]
fn unknown_keys_name_the_line() {
    let (text, line) = mutate("optional = true", "optoinal = true");
    let (l, m) = err_of(&text);
    assert_eq!(l, line);
    assert!(m.contains("optoinal"), "{m}");
    let (text, line) = mutate(
        "[config.healthcheck]",
        "[config.healthcheck]\nintervall = \"1s\"",
    );
    let (l, m) = err_of(&text);
    assert_eq!(l, line + 1, "{m}");
    let (text, _) = mutate("[annotations]", "[annotation]");
    let (_, m) = err_of(&text);
    assert!(m.contains("annotation"), "{m}");
}

#[test]
fn syntax_errors_name_the_line() {
    let (text, line) = mutate("priority = 150", "priority = = 150");
    let (l, _) = err_of(&text);
    assert_eq!(l, line);
}

#[test]
fn missing_variables_name_the_line() {
    let (text, line) = mutate("\"/opt/flutter\"", "\"/opt/${FLUTTER_DIR}\"");
    let (l, m) = err_of(&text);
    assert_eq!(l, line);
    assert!(m.contains("${FLUTTER_DIR}"), "{m}");
    // In [variables] too.
    let (text, line) = mutate(
        "GCC_PREFIX = \"/opt/gcc-${GCC_VERSION}\"",
        "GCC_PREFIX = \"${NOPE}\"",
    );
    let (l, m) = err_of(&text);
    assert_eq!(l, line);
    assert!(m.contains("NOPE"), "{m}");
}

#[test]
fn bad_paths_name_the_line() {
    for (from, to, needle) in [
        ("\"/opt/flutter\"", "\"opt/flutter\"", "absolute"),
        ("\"/opt/flutter\"", "\"/opt/../etc\"", "'..'"),
        ("\"/opt/flutter\"", "\"/opt/flutter/\"", "trailing"),
        (
            "\"/opt/flutter\"",
            "\"/opt//flutter\"",
            "empty path component",
        ),
        (
            "dest = \"/usr/local/llvm-target\"",
            "dest = \"usr\"",
            "absolute",
        ),
        (
            "path = \"/usr/local/bin/python3\"",
            "path = \"python3\"",
            "absolute",
        ),
        (
            "workdir = \"/workspace\"",
            "workdir = \"workspace\"",
            "absolute",
        ),
        (
            "\"/opt/android-sdk/tmp\"",
            "\"/opt/android-sdk/[tmp\"",
            "glob",
        ),
    ] {
        let (text, line) = mutate(from, to);
        let (l, m) = err_of(&text);
        assert_eq!(l, line, "{to}: {m}");
        assert!(m.contains(needle), "{to}: {m}");
    }
}

#[test]
fn semantic_errors_name_the_line() {
    for (from, to, needle) in [
        (
            "owner = \"1001:1001\"",
            "owner = \"kataglyphis\"",
            "numeric",
        ),
        ("mode = \"0755\"", "mode = \"755x\"", "octal"),
        ("priority = 150", "priority = 99999999999", "32-bit"),
        ("name = \"cc\"", "name = \"c/c\"", "no '/'"),
        ("interval = \"1m30s\"", "interval = \"90\"", "duration"),
        ("\"53/udp\"", "\"53/foo\"", "PORT"),
        ("kind = \"package\"", "kind = \"pkg\"", "unknown kind"),
        (
            "platform = \"any\"",
            "platform = \"amd64\"",
            "\"target\" or \"any\"",
        ),
        (
            "symlinks = \"known broken\"",
            "symlnks = \"x\"",
            "unknown guard",
        ),
        ("reason = \"host SDK\"", "reason = \"\"", "reason"),
        ("when.arch = [\"arm64\"]", "when.arch = [\"mips\"]", "mips"),
        (
            "test = [\"CMD-SHELL\", \"true\"]",
            "test = [\"true\"]",
            "healthcheck",
        ),
    ] {
        let (text, line) = mutate(from, to);
        let (l, m) = err_of(&text);
        assert_eq!(l, line, "{to}: {m}");
        assert!(m.contains(needle), "{to}: {m}");
    }
}

#[test]
fn structural_errors() {
    // dest with two paths.
    let (text, _) = mutate(
        "paths = [\"/opt/llvm-target\"]",
        "paths = [\"/opt/llvm-target\", \"/opt/x\"]",
    );
    let (_, m) = err_of(&text);
    assert!(m.contains("single path"), "{m}");
    // Unknown input.
    let (text, _) = mutate(
        "paths = [\"/opt/flutter\"]",
        "from = \"nope\"\npaths = [\"/opt/flutter\"]",
    );
    let (_, m) = err_of(&text);
    assert!(m.contains("unknown input"), "{m}");
    // The same destination twice.
    let (text, _) = mutate("paths = [\"/opt/flutter\"]", "paths = [\"/opt/opencv5\"]");
    let (_, m) = err_of(&text);
    assert!(m.contains("already copied"), "{m}");
    // A file written twice.
    let (text, _) = mutate(
        "path = \"/etc/profile.d/x.sh\"",
        "path = \"/etc/ld.so.conf.d/gcc-custom.conf\"",
    );
    let (_, m) = err_of(&text);
    assert!(m.contains("already written"), "{m}");
    // content and source together.
    let (text, _) = mutate("mode = \"0755\"", "mode = \"0755\"\nsource = \"x\"");
    let (_, m) = err_of(&text);
    assert!(m.contains("exactly one"), "{m}");
    // A built-in overridden in [variables].
    let (text, _) = mutate(
        "GCC_VERSION = \"16.1.0\"",
        "GCC_VERSION = \"16.1.0\"\nTARGET_ARCH = \"x\"",
    );
    let (_, m) = err_of(&text);
    assert!(m.contains("built in"), "{m}");
    // Missing [recipe].
    let (_, m) = err_of("[variables]\n");
    assert!(m.contains("recipe"), "{m}");
}

#[test]
fn dir_copies_and_file_sources_resolve_against_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("rust.sh"),
        b"export CARGO_HOME=/usr/local/cargo\n",
    )
    .unwrap();
    let text = r#"
[recipe]
name = "wrapper"
kind = "wrapper"
[inputs.venv]
[[copy]]
from = "venv"
paths = ["/opt/venv"]
[[copy]]
dir = "scripts"
dest = "/usr/local/bin"
owner = "0:0"
[[file]]
path = "/etc/profile.d/10-rust.sh"
source = "rust.sh"
"#;
    let path = dir.path().join("wrapper.toml");
    std::fs::write(&path, text).unwrap();
    let r = load(&path, TargetArch::Amd64, &VarInputs::default()).unwrap();
    assert_eq!(r.layers.len(), 2);
    assert_eq!(
        r.layers[1].source,
        LayerSource::Dir {
            dir: dir.path().join("scripts"),
            dest: "/usr/local/bin".into(),
            owner: Some((0, 0))
        }
    );
    assert_eq!(
        r.system.files[0].content,
        b"export CARGO_HOME=/usr/local/cargo\n"
    );
    // A missing directory or file is an error at its line.
    let bad = text.replace("dir = \"scripts\"", "dir = \"nope\"");
    std::fs::write(&path, &bad).unwrap();
    let e = load(&path, TargetArch::Amd64, &VarInputs::default()).unwrap_err();
    assert!(e.to_string().contains(":10:"), "{e}");
    let bad = text.replace("dir = \"scripts\"", "dir = \"../x\"");
    std::fs::write(&path, &bad).unwrap();
    let e = load(&path, TargetArch::Amd64, &VarInputs::default()).unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
}

#[test]
fn helpers() {
    assert_eq!(parse_owner("1001").unwrap(), (1001, 1001));
    assert_eq!(parse_owner("0:5").unwrap(), (0, 5));
    assert_eq!(parse_mode("1777").unwrap(), 0o1777);
    assert!(parse_mode("99999").is_err());
    assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
    assert_eq!(parse_duration("1h").unwrap(), 3_600_000_000_000);
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("5").is_err());
    assert!(check_abs_path("/").is_ok());
    assert!(check_glob("/**/lib-dynload").is_ok());
}

#[test]
fn shipped_recipes_load_for_every_arch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("layouts");
    let mut inputs = VarInputs::default();
    inputs.load_versions(&root.join("versions.env")).unwrap();
    inputs
        .run
        .insert("CREATED".into(), "2023-11-14T22:13:20Z".into());
    for arch in TargetArch::ALL {
        for file in [
            "package.toml",
            "wrapper.toml",
            "fixtures/package.toml",
            "fixtures/wrapper.toml",
        ] {
            let r = load(&root.join(file), arch, &inputs)
                .unwrap_or_else(|e| panic!("{file} for {arch}: {e}"));
            assert!(!r.layers.is_empty(), "{file}");
        }
        let p = load(&root.join("package.toml"), arch, &inputs).unwrap();
        assert_eq!(p.system.alternatives.len(), 8);
        let cc = p
            .system
            .alternatives
            .iter()
            .find(|a| a.name == "cc")
            .unwrap();
        assert_eq!(cc.path, "/opt/gcc-16.1.0/bin/gcc");
        assert_eq!(cc.priority, 150);
        let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
        // "wheels": the torch stage's /opt/wheels handoff, copy if present.
        assert_eq!(
            names,
            ["toolchains", "sdk", "rust", "media", "ml", "wheels"]
        );
        let LayerSource::Image { selection, .. } = &p.layers[3].source else {
            panic!()
        };
        let pruned = selection
            .rules
            .iter()
            .all(|r| r.exclude.contains(&"/opt/vulkan/*/x86_64".to_string()));
        assert_eq!(pruned, arch != TargetArch::Amd64, "{arch}");
        assert_eq!(
            p.config.env.set["VULKAN_SDK"],
            format!("/opt/vulkan/1.4.321.0/{}", arch.gnu_cpu())
        );
        let w = load(&root.join("wrapper.toml"), arch, &inputs).unwrap();
        assert_eq!(
            w.config.labels["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        let names: Vec<&str> = w.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names[..2], ["venv", "app"], "torch's two exports");
        assert!(matches!(w.layers[2].source, LayerSource::Dir { .. }));
    }
    // Without CREATED the wrapper names the line that needs it.
    let e = load(
        &root.join("wrapper.toml"),
        TargetArch::Amd64,
        &VarInputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("wrapper.toml:") && e.contains("${CREATED}"),
        "{e}"
    );
}

#[test]
fn when_var_switches_entries_with_set() {
    let text = SAMPLE
        .replace(
            "GCC_PREFIX = \"/opt/gcc-${GCC_VERSION}\"",
            "GCC_PREFIX = \"/opt/gcc-${GCC_VERSION}\"\nWITH_ANDROID = \"1\"\nFLAVOUR = \"full\"",
        )
        .replace(
            "layer = \"android\"",
            "layer = \"android\"\nwhen = { var = \"WITH_ANDROID\" }",
        )
        .replace(
            "when.arch = [\"arm64\"]",
            "when = { var = \"FLAVOUR\", equals = \"full\", arch = [\"arm64\"] }",
        );
    let load_with = |sets: &[&str]| {
        let mut inputs = VarInputs::default();
        for s in sets {
            inputs.set(s).unwrap();
        }
        load_sample(&text, TargetArch::Arm64, &inputs).unwrap()
    };
    let layer_names = |r: &Recipe| r.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
    // The default (truthy) keeps the android layer; conditions combine.
    let r = load_with(&[]);
    assert_eq!(layer_names(&r), ["payload", "android"]);
    assert_eq!(r.system.files.len(), 2);
    for off in ["0", "false", "FALSE", "no", "off", ""] {
        let r = load_with(&[&format!("WITH_ANDROID={off}")]);
        assert_eq!(layer_names(&r), ["payload"], "WITH_ANDROID={off:?}");
    }
    for on in ["1", "true", "yes", "r27"] {
        let r = load_with(&[&format!("WITH_ANDROID={on}")]);
        assert_eq!(layer_names(&r), ["payload", "android"], "{on:?}");
    }
    // `equals` compares exactly; every condition must hold.
    assert_eq!(load_with(&["FLAVOUR=slim"]).system.files.len(), 1);
    assert_eq!(load_with(&["FLAVOUR=Full"]).system.files.len(), 1);
    let amd = load_sample(&text, TargetArch::Amd64, &VarInputs::default()).unwrap();
    assert_eq!(amd.system.files.len(), 1, "arch condition still applies");

    // Strict: an undefined variable, even on an arch the entry is off for,
    // and `equals` without `var`, name the line.
    let bad = text.replace(
        "when = { var = \"WITH_ANDROID\" }",
        "when = { var = \"WITH_ANDRIOD\" }",
    );
    let line = bad[..bad.find("WITH_ANDRIOD").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let (l, m) = err_of(&bad);
    assert_eq!(l, line);
    assert!(m.contains("undefined variable WITH_ANDRIOD"), "{m}");
    let bad = text.replace(
        "when = { var = \"WITH_ANDROID\" }",
        "when = { equals = \"1\" }",
    );
    let (_, m) = err_of(&bad);
    assert!(m.contains("add `var"), "{m}");
    let bad = text.replace(
        "when = { var = \"WITH_ANDROID\" }",
        "when = { var = \"with-android\" }",
    );
    assert!(load_sample(&bad, TargetArch::Arm64, &VarInputs::default()).is_err());
}
