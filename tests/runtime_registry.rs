//! Issue 7 through a registry: containerd pulls what `ocipack build --push`
//! published and runs the amd64 wrapper; after the index is deleted through
//! the registry API, `ocipack manifest --repair` restores it and the same
//! pull succeeds with the same digest.

mod common;

use common::containerd::Containerd;
use common::registry::Registry;
use common::runtime::{build, check_amd64_wrapper};
use common::*;

/// The `ctr images ls` line of `name`: (digest, platforms).
fn listed(ctrd: &Containerd, name: &str) -> (String, String) {
    let list = ctrd.ctr_ok(&["images", "ls"]);
    let line = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in ctr images ls:\n{list}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let digest = cols
        .iter()
        .find(|c| c.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {line}"));
    let platforms = cols
        .iter()
        .find(|c| c.contains("linux/"))
        .unwrap_or_else(|| panic!("no platforms in {line}"));
    (digest.to_string(), platforms.to_string())
}

#[test]
fn containerd_pulls_and_runs_what_build_push_published_and_again_after_repair() {
    let reg = Registry::start();
    let ctrd = Containerd::start();
    let image = reg.url("k/rt:latest-cross");
    let r = json(&build(&["--push", "--image", &image, "--json"]));
    let digest = r["published"]["index"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let name = format!("{}/k/rt:latest-cross", reg.host());
    let pull = ["images", "pull", "--plain-http", "--all-platforms", &name];

    ctrd.ctr_ok(&pull);
    let (d, platforms) = listed(&ctrd, &name);
    assert_eq!(d, digest, "containerd resolved another index");
    for p in ["linux/amd64", "linux/arm64", "linux/riscv64"] {
        assert!(platforms.contains(p), "{p} not pulled: {platforms}");
    }
    if let Err(e) = check_amd64_wrapper(&ctrd, &name, "pulled") {
        panic!("{e}\ncontainerd log:\n{}", ctrd.log());
    }

    // The index deleted through the registry API: containerd cannot pull it.
    assert_eq!(reg.delete_manifest_of("k/rt", "latest-cross"), digest);
    ctrd.ctr_ok(&["images", "rm", &name]);
    let gone = ctrd.ctr(&pull);
    let why = String::from_utf8_lossy(&gone.stderr);
    assert!(
        !gone.status.success() && why.contains("not found"),
        "a deleted index must not resolve: {why}"
    );

    // Repaired from the per-arch images: the same pull, the same digest.
    let rep = json(&run_ok(
        ocipack_cmd().args(["manifest", "--repair", "--image", &image, "--json"]),
    ));
    assert_eq!(rep["digest"], digest.as_str());
    ctrd.ctr_ok(&pull);
    assert_eq!(listed(&ctrd, &name).0, digest);
}
