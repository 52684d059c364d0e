//! Real Debian roots for the exec-smoke and ld.so.cache tests: packages
//! (`gcc`, `libc6`...) of one suite and architecture, downloaded from
//! deb.debian.org with apt (a private apt root, so the host's apt state is
//! untouched) and unpacked with `dpkg-deb -x`, the way a rootfs gets its
//! payload ([`rootfs`]), then made an image ([`image_of_root`]).
//!
//! Downloads are kept in `$OCIPACK_TEST_CACHE` when set (reruns then only
//! refresh the package lists), else in a temp dir of the test run.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ocipack_ok;
use super::tools::{require, run_ok};

/// The Debian mirror the tests use.
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// Where downloads go: `$OCIPACK_TEST_CACHE`, else `scratch`.
pub fn cache_dir(scratch: &Path) -> PathBuf {
    match std::env::var_os("OCIPACK_TEST_CACHE").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => scratch.to_path_buf(),
    }
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Downloads `packages` (with their dependencies, no recommends) of
/// `suite`/`arch` and returns the .deb files.
pub fn download(cache: &Path, suite: &str, arch: &str, packages: &[&str]) -> Vec<PathBuf> {
    require("apt-get");
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    assert!(
        Path::new(keyring).is_file(),
        "{keyring} is missing: apt-get install -y debian-archive-keyring"
    );
    let d = cache.join(format!("apt-{suite}-{arch}"));
    for sub in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
    ] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(
        d.join("etc/apt/sources.list"),
        format!("deb [arch={arch} signed-by={keyring}] {MIRROR} {suite} main\n"),
    )
    .unwrap();
    let opts: Vec<String> = [
        format!("Dir={}", d.display()),
        format!(
            "Dir::State::status={}",
            d.join("var/lib/dpkg/status").display()
        ),
        format!("APT::Architecture={arch}"),
        format!("APT::Architectures::={arch}"),
        "Acquire::Languages=none".into(),
        "Acquire::Retries=3".into(),
        "Debug::NoLocking=1".into(),
        // apt's download sandbox user cannot write into a root-owned temp dir.
        "APT::Sandbox::User=root".into(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect();
    let what = format!(
        "downloading {packages:?} for {arch} from {MIRROR} {suite} (the test needs the Debian mirror)"
    );
    run(
        &what,
        Command::new("apt-get").args(&opts).args(["-q", "update"]),
    );
    run(
        &what,
        Command::new("apt-get")
            .args(&opts)
            .args([
                "-q",
                "-y",
                "--no-install-recommends",
                "--download-only",
                "install",
            ])
            .args(packages),
    );
    // The cache directory is shared by tests asking for other packages:
    // only this request's packages (apt's simulated install set).
    let sim = run(
        &what,
        Command::new("apt-get")
            .args(&opts)
            .args(["-q", "-s", "-y", "--no-install-recommends", "install"])
            .args(packages),
    );
    let wanted: Vec<String> = sim
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| format!("{}_", name.split(':').next().unwrap_or(name)))
        .collect();
    let mut debs: Vec<PathBuf> = std::fs::read_dir(d.join("var/cache/apt/archives"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .filter(|p| {
            let f = p.file_name().unwrap_or_default().to_string_lossy();
            wanted.iter().any(|w| f.starts_with(w.as_str()))
        })
        .collect();
    debs.sort();
    assert!(!debs.is_empty(), "{what}: no .deb downloaded");
    debs
}

/// `dpkg-deb -x` every package into `root`.
pub fn extract(debs: &[PathBuf], root: &Path) {
    require("dpkg-deb");
    std::fs::create_dir_all(root).unwrap();
    for deb in debs {
        run(
            &format!("dpkg-deb -x {}", deb.display()),
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(root),
        );
    }
}

/// A root of `packages` (with their dependencies) of `suite`/`arch`,
/// unpacked into `tmp/rootfs`; on usr-merged suites `/lib`, `/bin` and
/// `/sbin` are the links base-files ships. Downloads go to
/// [`cache_dir`]`(tmp)`.
pub fn rootfs(tmp: &Path, suite: &str, arch: &str, packages: &[&str]) -> PathBuf {
    let cache = cache_dir(tmp);
    let debs = download(&cache, suite, arch, packages);
    let root = tmp.join("rootfs");
    extract(&debs, &root);
    let usr_merged = !root.join("lib").exists();
    if usr_merged {
        for d in ["lib", "bin", "sbin"] {
            std::os::unix::fs::symlink(format!("usr/{d}"), root.join(d)).unwrap();
        }
    }
    root
}

/// `root` as an image `oci:TMP/img:TAG`: an empty base written by umoci
/// in `tmp/base` (config: `arch`, linux, and each of `env`), plus `root`
/// as one uncompressed layer written by `ocipack append`.
pub fn image_of_root(tmp: &Path, root: &Path, arch: &str, env: &[&str], tag: &str) -> String {
    require("umoci");
    let base = tmp.join("base");
    let base_s = base.display().to_string();
    let empty = format!("{base_s}:empty");
    run_ok("umoci", &["init", "--layout", &base_s]);
    run_ok("umoci", &["new", "--image", &empty]);
    let mut config = vec![
        "config",
        "--image",
        &empty,
        "--architecture",
        arch,
        "--os",
        "linux",
    ];
    for e in env {
        config.extend(["--config.env", e]);
    }
    run_ok("umoci", &config);
    let image = format!("oci:{}:{tag}", tmp.join("img").display());
    ocipack_ok(&[
        "append",
        "--base",
        &format!("oci:{base_s}:empty"),
        "--dir",
        &root.display().to_string(),
        "--out",
        &image,
        "--no-cache",
        "--compression",
        "none",
    ]);
    image
}
