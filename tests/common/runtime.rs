//! The fixture build the runtime and registry suites share, and what a
//! runtime must see when it runs the amd64 wrapper.

use std::path::Path;

use super::containerd::Containerd;
use super::{fixtures, ocipack_cmd, repo, run_ok};

/// `ocipack build` arguments for the fixtures, without the destination
/// (`--out` and/or `--push --image`) and the arches (default: all three).
pub fn build_args() -> Vec<String> {
    let fx = fixtures();
    vec![
        "build".into(),
        "--base".into(),
        format!("oci:{}:base", fx.join("base").display()),
        "--artifact".into(),
        format!(
            "oci:{}:cross-android-{{arch}}",
            fx.join("artifacts").display()
        ),
        "--input".into(),
        format!(
            "venv=oci:{}:venv-export-{{arch}}",
            fx.join("artifacts").display()
        ),
        "--package-recipe".into(),
        repo()
            .join("layouts/fixtures/package.toml")
            .display()
            .to_string(),
        "--wrapper-recipe".into(),
        repo()
            .join("layouts/fixtures/wrapper.toml")
            .display()
            .to_string(),
    ]
}

/// Builds the fixtures into `out` as `oci:OUT:latest-cross`.
pub fn build_into(out: &Path, extra: &[&str]) {
    let o = format!("oci:{}:latest-cross", out.display());
    build(&[&["--out", o.as_str()][..], extra].concat());
}

/// Runs `ocipack build` on the fixtures with `extra` arguments; returns
/// stdout.
pub fn build(extra: &[&str]) -> String {
    run_ok(ocipack_cmd().args(build_args()).args(extra))
}

/// Everything a pipeline expects of the amd64 wrapper, run for real in
/// containerd. Returns what is wrong instead of panicking, so the broken
/// image test can assert on it.
pub fn check_amd64_wrapper(ctrd: &Containerd, image: &str, id: &str) -> Result<(), String> {
    // The image's own entrypoint and cmd.
    let out = ctrd.run(image, &format!("{id}-default"), &[]);
    let stdout = out.output;
    if !out.success {
        return Err(format!("entrypoint failed to run: {stdout}"));
    }
    for (want, what) in [
        ("uid=1001", "user 1001"),
        ("TARGET_ARCH=amd64", "configured environment"),
        (
            "/usr/local/llvm-target/bin",
            "PATH with the relocated llvm-target",
        ),
        ("\n/workspace\n", "working directory /workspace"),
    ] {
        if !stdout.contains(want) {
            return Err(format!(
                "{what} missing: {want:?} not in the entrypoint's output:\n{stdout}"
            ));
        }
    }
    // The payload as a program in the container sees it.
    let script = "readlink /usr/bin/cc; readlink /etc/alternatives/cc; \
                  test -x /usr/local/llvm-target/bin/clang && echo clang-present; \
                  /usr/local/lib/onnxruntime-genai/bin/genai-demo; cc -dumpmachine";
    let out = ctrd.run(
        image,
        &format!("{id}-payload"),
        &["/usr/local/bin/entrypoint.sh", "/bin/sh", "-c", script],
    );
    let stdout = out.output;
    for (want, what) in [
        (
            "/etc/alternatives/cc\n",
            "alternatives link /usr/bin/cc -> /etc/alternatives/cc",
        ),
        (
            "/opt/gcc-16.1.0/bin/gcc\n",
            "alternatives target /etc/alternatives/cc -> /opt/gcc-16.1.0/bin/gcc",
        ),
        (
            "clang-present",
            "relocated /usr/local/llvm-target/bin/clang",
        ),
        (
            "genai-demo x86_64-linux-gnu ok",
            "payload /usr/local/lib/onnxruntime-genai/bin/genai-demo",
        ),
        ("x86_64-linux-gnu\n", "cc -dumpmachine"),
    ] {
        if !stdout.contains(want) {
            return Err(format!(
                "{what} missing in the container; it printed:\n{stdout}"
            ));
        }
    }
    Ok(())
}
