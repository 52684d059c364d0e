//! Proof on a real runtime (issue 7): containerd imports and runs what
//! ocipack writes. Grows with the package/wrapper/build commands.

mod common;

use common::containerd::Containerd;
use common::*;

#[test]
fn containerd_imports_and_runs_an_archive_we_wrote() {
    let ctrd = Containerd::start();
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("base.tar");
    let src = format!("oci:{}:base", fixtures().join("base").display());
    ocipack_ok(&[
        "copy",
        "--all",
        &src,
        &format!("oci-archive:{}:base", tar.display()),
    ]);
    ctrd.import(&tar, "ocipack.test/base:all");
    let list = ctrd.ctr_ok(&["images", "ls"]);
    assert!(list.contains("ocipack.test/base:all"), "{list}");
    assert!(
        list.contains("linux/amd64,linux/arm64/v8,linux/riscv64") || list.contains("linux/riscv64"),
        "{list}"
    );
    let out = ctrd.run(
        "ocipack.test/base:all",
        "base-smoke",
        &["/bin/sh", "-c", "id -u; echo $PATH; cat /etc/os-release"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctr run failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ctrd.log()
    );
    assert!(
        stdout.contains("/usr/local/sbin:/usr/local/bin"),
        "{stdout}"
    );
    assert!(stdout.contains("26.04"), "{stdout}");
}
