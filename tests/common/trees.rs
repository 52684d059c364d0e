//! Comparing unpacked root filesystems: what `umoci unpack` restores
//! (paths, types, modes, owners, link targets, link counts, sizes, file
//! mtimes, bytes, xattrs), so two unpackers can be checked against each
//! other.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Everything umoci restores, except directory mtimes (creating children
/// changes them) and the root itself.
pub fn fingerprint(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(concat!(
            "find . -mindepth 1 -printf '%P %y %m %U %G %l %n %s\\n' | LC_ALL=C sort; ",
            "find . -mindepth 1 ! -type d -printf '%P %T@\\n' | LC_ALL=C sort; ",
            "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; ",
            "getfattr -R -h -d -m - . 2>/dev/null | grep -v '^#' | LC_ALL=C sort"
        ))
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics with a diff when the two trees' fingerprints differ; `t` is a
/// scratch directory for the diff's inputs.
pub fn assert_same_tree(ours: &Path, expected: &Path, t: &Path) {
    let (a, b) = (fingerprint(ours), fingerprint(expected));
    if a != b {
        fs::write(t.join("ours.txt"), &a).unwrap();
        fs::write(t.join("expected.txt"), &b).unwrap();
        let d = Command::new("diff")
            .arg(t.join("expected.txt"))
            .arg(t.join("ours.txt"))
            .output()
            .unwrap();
        panic!(
            "trees differ (< expected {}, > ours {}):\n{}",
            expected.display(),
            ours.display(),
            String::from_utf8_lossy(&d.stdout)
        );
    }
}
