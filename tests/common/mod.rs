//! Shared helpers for the end-to-end tests.
#![allow(dead_code)]

pub mod buildkit;
pub mod containerd;
pub mod debian;
pub mod layers;
pub mod proxy;
pub mod registry;
pub mod runtime;
pub mod token;
pub mod tools;
pub mod trees;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `fixtures/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("fixtures")
}

/// Runs the ocipack binary.
pub fn ocipack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .output()
        .expect("running ocipack")
}

/// Runs ocipack and asserts success, returning stdout.
pub fn ocipack_ok(args: &[&str]) -> String {
    let out = ocipack(args);
    assert!(
        out.status.success(),
        "ocipack {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs ocipack, asserts failure, returns stderr.
pub fn ocipack_err(args: &[&str]) -> String {
    let out = ocipack(args);
    assert!(
        !out.status.success(),
        "ocipack {args:?} should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copies a directory tree (for tests that must not touch the fixtures).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// A hash of every file under `dir` (path, type, content), to prove a
/// command left a tree untouched.
pub fn tree_fingerprint(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -printf '%p %y %s %m %l\\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum")
        .current_dir(dir)
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test (never skips it) when a tool is missing, naming the
/// Debian package that provides it; returns the tool's path.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(tool))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!("{tool} is required by this test: apt-get install {package}"),
    }
}

/// The ocipack binary as a `Command`, with the machine's registry
/// credentials hidden (tests pass their own).
pub fn ocipack_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocipack"));
    c.env_remove("REGISTRY_AUTH_FILE")
        .env("DOCKER_CONFIG", "/nonexistent-ocipack-test-docker-config")
        .env("XDG_RUNTIME_DIR", "/nonexistent-ocipack-test-runtime-dir")
        .env("XDG_CONFIG_HOME", "/nonexistent-ocipack-test-config-home")
        .env_remove("OCIPACK_USERNAME")
        .env_remove("OCIPACK_PASSWORD");
    c
}

/// Runs a command and returns stdout, failing with its stderr otherwise.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
pub fn run_fail(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses a command's JSON output.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

/// A small tmpfs mounted under `dir` (a full disk on demand), unmounted on
/// drop. Needs root: tests/run.sh runs as root.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        assert!(
            ocipack::unpack::is_root(),
            "this test mounts a tmpfs: run it as root (tests/run.sh does)"
        );
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
