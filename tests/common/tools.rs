//! External tools the tests cross-check against. A missing tool is a test
//! failure with the command that installs it, never a silent skip.

use std::process::{Command, Output};

/// Debian package providing each tool.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "skopeo" => "skopeo",
        "umoci" => "umoci",
        "docker-registry" => "docker-registry",
        "containerd" | "ctr" => "containerd",
        "runc" => "runc",
        "htpasswd" => "apache2-utils",
        "update-alternatives" => "dpkg",
        t if t.starts_with("qemu-") => "qemu-user-static",
        "getfattr" | "setfattr" => "attr",
        "buildah" => "buildah",
        "bsdtar" => "libarchive-tools",
        "python3" => "python3",
        "apt-get" => "apt",
        "dpkg-deb" => "dpkg",
        "openssl" => "openssl",
        "script" => "util-linux",
        _ => "the package providing it",
    }
}

/// Panics with an install hint unless `tool` is on PATH.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{tool}` is not installed: run `apt-get install -y {}` (as root), or run tests/run.sh which installs everything",
        package_of(tool)
    );
}

/// Runs a tool (after `require`) and returns its output.
pub fn run(tool: &str, args: &[&str]) -> Output {
    require(tool);
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"))
}

/// Runs a tool and asserts success, returning stdout.
pub fn run_ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
