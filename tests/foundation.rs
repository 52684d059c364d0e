//! End-to-end tests of the offline data path (issue 2): layouts, archives,
//! references, copy, inspect, unpack; cross-checked with skopeo and umoci,
//! and fed hostile input.

mod common;

use std::fs;
use std::path::Path;

use common::layers::{image_with_layer, raw_tar};
use common::tools::{require, run_ok};
use common::*;
use oci_spec::image::MediaType;
use ocipack::digest::sha256;
use ocipack::layout::Layout;

fn fx(layout: &str, tag: &str) -> String {
    format!("oci:{}:{tag}", fixtures().join(layout).display())
}

#[test]
fn skopeo_and_umoci_read_what_we_write() {
    require("skopeo");
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    let ls = l.display().to_string();
    ocipack_ok(&[
        "copy",
        "--all",
        &fx("base", "base"),
        &format!("oci:{ls}:base"),
    ]);
    ocipack_ok(&[
        "copy",
        &fx("artifacts", "cross-android-arm64"),
        &format!("oci:{ls}:art"),
    ]);
    // skopeo sees the same manifest bytes the fixture has.
    let ours = run_ok("skopeo", &["inspect", "--raw", &format!("oci:{ls}:base")]);
    let theirs = run_ok("skopeo", &["inspect", "--raw", &fx("base", "base")]);
    assert_eq!(ours, theirs);
    let inspect = run_ok("skopeo", &["inspect", &format!("oci:{ls}:art")]);
    assert!(inspect.contains("\"Architecture\": \"amd64\""), "{inspect}");
    // umoci unpacks it.
    let bundle = t.path().join("bundle");
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{ls}:art"),
            &bundle.display().to_string(),
        ],
    );
    assert!(bundle.join("rootfs/opt/gcc-16.1.0/bin/gcc").is_file());
    // And reads an archive we wrote.
    let tar = t.path().join("a.tar");
    ocipack_ok(&[
        "copy",
        &format!("oci:{ls}:art"),
        &format!("oci-archive:{}:art", tar.display()),
    ]);
    let from_archive = run_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:art", tar.display()),
        ],
    );
    let from_layout = run_ok("skopeo", &["inspect", "--raw", &format!("oci:{ls}:art")]);
    assert_eq!(from_archive, from_layout);
}

#[test]
fn we_read_what_skopeo_writes_with_identical_digests() {
    require("skopeo");
    let t = tempfile::tempdir().unwrap();
    let sl = t.path().join("skopeo-layout");
    let sa = t.path().join("skopeo.tar");
    run_ok(
        "skopeo",
        &[
            "copy",
            &fx("artifacts", "cross-android-riscv64"),
            &format!("oci:{}:x", sl.display()),
        ],
    );
    run_ok(
        "skopeo",
        &[
            "copy",
            &fx("artifacts", "cross-android-riscv64"),
            &format!("oci-archive:{}:x", sa.display()),
        ],
    );
    let want = sha256(
        run_ok(
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:x", sl.display())],
        )
        .as_bytes(),
    );
    for src in [
        format!("oci:{}:x", sl.display()),
        format!("oci-archive:{}:x", sa.display()),
    ] {
        let out = ocipack_ok(&["inspect", "--json", &src]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["digest"], want.to_string(), "{src}");
        let dst = t.path().join(format!("ours-{}", src.len()));
        let rep = ocipack_ok(&["copy", "--json", &src, &format!("oci:{}:y", dst.display())]);
        let rep: serde_json::Value = serde_json::from_str(&rep).unwrap();
        assert_eq!(rep["digest"], want.to_string());
    }
}

#[test]
fn layout_archive_layout_round_trip_preserves_everything() {
    let t = tempfile::tempdir().unwrap();
    let a1 = t.path().join("1.tar");
    let a2 = t.path().join("2.tar");
    let l2 = t.path().join("l2");
    ocipack_ok(&[
        "copy",
        "--all",
        &fx("base", "base"),
        &format!("oci-archive:{}:base", a1.display()),
    ]);
    ocipack_ok(&[
        "copy",
        "--all",
        &format!("oci-archive:{}:base", a1.display()),
        &format!("oci:{}:base", l2.display()),
    ]);
    ocipack_ok(&[
        "copy",
        "--all",
        &format!("oci:{}:base", l2.display()),
        &format!("oci-archive:{}:base", a2.display()),
    ]);
    // Every blob identical, archives bit-identical (deterministic writer).
    for e in fs::read_dir(fixtures().join("base/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let copy = l2.join("blobs/sha256").join(e.file_name());
        assert_eq!(
            fs::read(e.path()).unwrap(),
            fs::read(&copy).unwrap(),
            "{:?}",
            e.file_name()
        );
    }
    assert_eq!(fs::read(&a1).unwrap(), fs::read(&a2).unwrap());
    let idx = ocipack_ok(&["inspect", "--json", &format!("oci:{}:base", l2.display())]);
    let orig = ocipack_ok(&["inspect", "--json", &fx("base", "base")]);
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&idx).unwrap(),
        serde_json::from_str(&orig).unwrap(),
    );
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["manifests"], b["manifests"]);
}

#[test]
fn platform_selection_is_consistent() {
    let out = ocipack_ok(&[
        "inspect",
        "--json",
        "--arch",
        "aarch64",
        &fx("base", "base"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["platform"], "linux/arm64/v8");
    let out = ocipack_ok(&[
        "inspect",
        "--json",
        "--arch",
        "linux/arm64",
        &fx("base", "base"),
    ]);
    assert!(out.contains("linux/arm64/v8"));
    let out = ocipack_ok(&["inspect", "--json", "--arch", "x86_64", &fx("base", "base")]);
    assert!(out.contains("\"linux/amd64\""));
    let t = tempfile::tempdir().unwrap();
    let err = ocipack_err(&[
        "copy",
        &fx("base", "base"),
        &format!("oci:{}:x", t.path().join("l").display()),
    ]);
    assert!(
        err.contains("--all or --arch") && err.contains("linux/riscv64"),
        "{err}"
    );
    let err = ocipack_err(&["inspect", "--arch", "s390x", &fx("base", "base")]);
    assert!(err.contains("s390x") && err.contains("available"), "{err}");
    // One platform out of an index.
    ocipack_ok(&[
        "copy",
        "--arch",
        "riscv64",
        &fx("base", "base"),
        &format!("oci:{}:rv", t.path().join("l").display()),
    ]);
    let out = ocipack_ok(&[
        "inspect",
        "--json",
        &format!("oci:{}:rv", t.path().join("l").display()),
    ]);
    assert!(out.contains("linux/riscv64"));
}

#[test]
fn unpack_matches_umoci() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let ours = t.path().join("ours");
    let bundle = t.path().join("bundle");
    let reference = fx("artifacts", "cross-android-riscv64");
    ocipack_ok(&["unpack", &reference, &ours.display().to_string()]);
    let img = format!(
        "{}:cross-android-riscv64",
        fixtures().join("artifacts").display()
    );
    run_ok(
        "umoci",
        &["unpack", "--image", &img, &bundle.display().to_string()],
    );
    let fp = |dir: &Path| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("find . -mindepth 1 -printf '%P %y %m %U %G %l %n %s\\n' | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; getfattr -R -h -d -m - . 2>/dev/null | grep -v '^#' | LC_ALL=C sort")
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (fp(&ours), fp(&bundle.join("rootfs")));
    assert!(a.contains("opt/opencv5/share/new"), "{a}");
    assert!(
        !a.contains("opt/opencv5/share/old"),
        "opaque dir not applied"
    );
    assert!(!a.contains("junk.txt"), "whiteout not applied");
    assert!(a.contains("security.capability"), "xattr lost");
    if a != b {
        let diff = std::process::Command::new("diff")
            .arg(t.path().join("a"))
            .arg(t.path().join("b"))
            .output();
        fs::write(t.path().join("a"), &a).unwrap();
        fs::write(t.path().join("b"), &b).unwrap();
        let diff = diff
            .and_then(|_| {
                std::process::Command::new("diff")
                    .arg(t.path().join("a"))
                    .arg(t.path().join("b"))
                    .output()
            })
            .unwrap();
        panic!(
            "ocipack unpack differs from umoci unpack:\n{}",
            String::from_utf8_lossy(&diff.stdout)
        );
    }
}

#[test]
fn docker_schema2_images_keep_bytes_and_digests() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let tar = raw_tar(&[
        ("etc/", b'5', "", b""),
        ("etc/hostname", b'0', "", b"docker\n"),
    ]);
    let man = image_with_layer(&src, "d", &tar, true);
    let out = ocipack_ok(&["inspect", "--json", &format!("oci:{}:d", src.display())]);
    assert!(
        out.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{out}"
    );
    let dst = t.path().join("dst.tar");
    ocipack_ok(&[
        "copy",
        &format!("oci:{}:d", src.display()),
        &format!("oci-archive:{}:d", dst.display()),
    ]);
    let back = t.path().join("back");
    let rep = ocipack_ok(&[
        "copy",
        "--json",
        &format!("oci-archive:{}:d", dst.display()),
        &format!("oci:{}:d", back.display()),
    ]);
    assert!(rep.contains(&man.digest().to_string()), "{rep}");
    let root = t.path().join("root");
    ocipack_ok(&[
        "unpack",
        &format!("oci:{}:d", back.display()),
        &root.display().to_string(),
    ]);
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"docker\n");
}

#[test]
fn corrupt_and_truncated_blobs_are_refused_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    copy_tree(&fixtures().join("artifacts"), &l);
    let out = ocipack_ok(&[
        "inspect",
        "--json",
        &format!("oci:{}:cross-android-arm64", l.display()),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layer = v["layers"][1]["digest"].as_str().unwrap().to_string();
    let blob = l
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let before = tree_fingerprint(&l);
    let dst = t.path().join("dst");
    let err = ocipack_err(&[
        "copy",
        &format!("oci:{}:cross-android-arm64", l.display()),
        &format!("oci:{}:x", dst.display()),
    ]);
    assert!(
        err.contains(&layer) && err.contains("content has digest"),
        "{err}"
    );
    // No tag and no partial blob at the destination; the input untouched.
    let idx = fs::read_to_string(dst.join("index.json")).unwrap_or_default();
    assert!(!idx.contains("\"x\""), "{idx}");
    assert!(!dst
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"))
        .exists());
    let leftovers: Vec<_> = fs::read_dir(&dst)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".ocipack-tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty());
    assert_eq!(before, tree_fingerprint(&l));
    // Archive destination: nothing appears at all.
    let tar = t.path().join("x.tar");
    ocipack_err(&[
        "copy",
        &format!("oci:{}:cross-android-arm64", l.display()),
        &format!("oci-archive:{}:x", tar.display()),
    ]);
    assert!(!tar.exists());
    // Unpack refuses too.
    let err = ocipack_err(&[
        "unpack",
        &format!("oci:{}:cross-android-arm64", l.display()),
        &t.path().join("root").display().to_string(),
    ]);
    assert!(err.contains(&layer), "{err}");
    // Truncated.
    bytes.truncate(bytes.len() - 10);
    fs::write(&blob, &bytes).unwrap();
    let err = ocipack_err(&[
        "copy",
        &format!("oci:{}:cross-android-arm64", l.display()),
        &format!("oci:{}:x", dst.display()),
    ]);
    assert!(err.contains("truncated") && err.contains(&layer), "{err}");
}

#[test]
fn hostile_layer_paths_are_refused_and_nothing_outside_is_touched() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"precious").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            raw_tar(&[("../outside/keep", b'0', "", b"pwned")]),
            "'..'",
        ),
        (
            "deep-dotdot",
            raw_tar(&[("a/../../outside/keep", b'0', "", b"pwned")]),
            "'..'",
        ),
        // An absolute name is rooted inside the target (issue 10, as
        // containerd and umoci read it; tests/corpus.rs checks that), but
        // `..` above `/` is still refused.
        (
            "absolute-dotdot",
            raw_tar(&[("/../outside/keep", b'0', "", b"pwned")]),
            "'..'",
        ),
        (
            "hardlink-escape",
            raw_tar(&[("h", b'1', "../outside/keep", b"")]),
            "'..'",
        ),
    ];
    for (name, tar, why) in cases {
        let l = t.path().join(format!("layout-{name}"));
        image_with_layer(&l, "evil", &tar, false);
        let root = t.path().join(format!("root-{name}"));
        let err = ocipack_err(&[
            "unpack",
            &format!("oci:{}:evil", l.display()),
            &root.display().to_string(),
        ]);
        assert!(
            err.contains("refusing entry") && err.contains(why),
            "{name}: {err}"
        );
        assert_eq!(
            fs::read(outside.join("keep")).unwrap(),
            b"precious",
            "{name}"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "{name}");
    }
    assert!(!Path::new("/etc/ocipack-pwned").exists());
}

/// A parent that is a symlink is resolved inside the target, as containerd
/// (`fs.RootPath`) and umoci (securejoin) resolve it (issue 10): a link to
/// an absolute path outside is read from the target's root, a relative one
/// climbing out stops at the root. Writes land inside; the sentinel beside
/// the target is never touched.
#[test]
fn symlinked_parents_resolve_inside_the_target_and_never_escape() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"precious").unwrap();
    let abs_outside: &'static str = Box::leak(outside.display().to_string().into_boxed_str());
    let cases: Vec<(&str, Vec<u8>, Vec<String>)> = vec![
        (
            // Absolute target: re-rooted, `ROOT/<tmp>/outside/keep`.
            "symlink-absolute",
            raw_tar(&[
                ("link", b'2', abs_outside, b""),
                ("link/keep", b'0', "", b"inside"),
            ]),
            vec![format!("{}/keep", abs_outside.trim_start_matches('/'))],
        ),
        (
            "symlink-etc",
            raw_tar(&[
                ("link", b'2', "/etc", b""),
                ("link/ocipack-pwned", b'0', "", b"inside"),
            ]),
            vec!["etc/ocipack-pwned".into()],
        ),
        (
            // `d/up -> ../../outside`: `..` stops at the root.
            "symlink-relative",
            raw_tar(&[
                ("d/", b'5', "", b""),
                ("d/up", b'2', "../../outside", b""),
                ("d/up/keep", b'0', "", b"inside"),
            ]),
            vec!["outside/keep".into()],
        ),
        (
            // A hard link named through the symlink, to a target named
            // through it as well.
            "hardlink-through-symlink",
            raw_tar(&[
                ("up", b'2', "../../../..", b""),
                ("up/keep", b'0', "", b"inside"),
                ("up/hl", b'1', "up/keep", b""),
            ]),
            vec!["keep".into(), "hl".into()],
        ),
    ];
    for (name, tar, inside) in cases {
        let l = t.path().join(format!("layout-{name}"));
        image_with_layer(&l, "evil", &tar, false);
        let root = t.path().join(format!("root-{name}"));
        ocipack_ok(&[
            "unpack",
            &format!("oci:{}:evil", l.display()),
            &root.display().to_string(),
        ]);
        for p in inside {
            assert_eq!(fs::read(root.join(&p)).unwrap(), b"inside", "{name}: {p}");
        }
        assert_eq!(
            fs::read(outside.join("keep")).unwrap(),
            b"precious",
            "{name}"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "{name}");
    }
    assert!(!Path::new("/etc/ocipack-pwned").exists());
    // A loop is refused, naming the entry, as containerd refuses it after
    // 255 links.
    let l = t.path().join("layout-loop");
    let tar = raw_tar(&[
        ("a", b'2', "b/x", b""),
        ("b", b'2', "a/y", b""),
        ("a/f", b'0', "", b"loop"),
    ]);
    image_with_layer(&l, "evil", &tar, false);
    let err = ocipack_err(&[
        "unpack",
        &format!("oci:{}:evil", l.display()),
        &t.path().join("root-loop").display().to_string(),
    ]);
    assert!(
        err.contains("refusing entry") && err.contains("a/f") && err.contains("255"),
        "{err}"
    );
}

#[test]
fn directory_metadata_is_not_applied_through_a_later_symlink() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("d")).unwrap();
    fs::set_permissions(outside.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let before = fs::metadata(outside.join("d")).unwrap();
    // `a/d` is recorded for its mode and mtime, then `a` becomes a symlink
    // to a directory outside the target: the deferred metadata pass must
    // not chmod or touch `outside/d` through it.
    let tar = raw_tar(&[
        ("a/", b'5', "", b""),
        ("a/d/", b'5', "", b""),
        (
            "a",
            b'2',
            &*Box::leak(outside.display().to_string().into_boxed_str()),
            b"",
        ),
    ]);
    let l = t.path().join("l");
    image_with_layer(&l, "evil", &tar, false);
    let root = t.path().join("root");
    let _ = ocipack(&[
        "unpack",
        &format!("oci:{}:evil", l.display()),
        &root.display().to_string(),
    ]);
    let after = fs::metadata(outside.join("d")).unwrap();
    assert_eq!(after.permissions().mode() & 0o7777, 0o700);
    assert_eq!(after.mtime(), before.mtime());
}

#[test]
fn malformed_json_gives_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    copy_tree(&fixtures().join("base"), &l);
    let idx_path = l.join("index.json");
    let good = fs::read(&idx_path).unwrap();
    fs::write(&idx_path, &good[..good.len() / 2]).unwrap();
    let err = ocipack_err(&["inspect", &format!("oci:{}:base", l.display())]);
    assert!(
        err.contains("index.json") && err.contains("malformed JSON"),
        "{err}"
    );
    fs::write(&idx_path, br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":1,"digest":"sha256:../../../../etc/passwd"}]}"#).unwrap();
    let err = ocipack_err(&["inspect", &format!("oci:{}", l.display())]);
    assert!(err.contains("index.json"), "{err}");
    // A manifest blob that is not JSON, under its true digest.
    fs::write(&idx_path, &good).unwrap();
    let lay = Layout::open(&l).unwrap();
    let bad = lay
        .write_blob_bytes(
            b"{\"schemaVersion\": 2, \"layers\": [",
            MediaType::ImageManifest,
        )
        .unwrap();
    lay.set_tags(&[("bad".into(), bad.clone())]).unwrap();
    let err = ocipack_err(&["inspect", &format!("oci:{}:bad", l.display())]);
    assert!(
        err.contains(&bad.digest().to_string()) && err.contains("malformed JSON"),
        "{err}"
    );
    // Not a layout at all.
    let err = ocipack_err(&["inspect", &format!("oci:{}", t.path().display())]);
    assert!(err.contains("not an OCI image layout"), "{err}");
    let err = ocipack_err(&["inspect", "oci-layout:///nonexistent/x:tag"]);
    assert!(err.contains("/nonexistent/x"), "{err}");
}

#[test]
fn full_disk_is_an_error_and_leaves_no_image() {
    if !ocipack::unpack::is_root() {
        eprintln!("full_disk test needs root to mount a small tmpfs; run tests/run.sh as root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let _guard = common::Tmpfs::mount(mnt.clone(), "2m");
    // The base index is ~3.8 MB: it cannot fit in 2 MB.
    let dst = mnt.join("l");
    let err = ocipack_err(&[
        "copy",
        "--all",
        &fx("base", "base"),
        &format!("oci:{}:base", dst.display()),
    ]);
    assert!(err.contains("No space left on device"), "{err}");
    let idx = fs::read_to_string(dst.join("index.json")).unwrap_or_default();
    assert!(!idx.contains("\"base\""), "a tag was written: {idx}");
    // The copy was staged: a failed one leaves no layout at all (issue 11).
    assert!(!dst.join("oci-layout").exists(), "a layout was left behind");
    let tmp: Vec<_> = fs::read_dir(&dst)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".ocipack-tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp files left behind");
    let tar = mnt.join("a.tar");
    let err = ocipack_err(&[
        "copy",
        "--all",
        &fx("base", "base"),
        &format!("oci-archive:{}:base", tar.display()),
    ]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!tar.exists());
}

#[test]
fn unpack_verifies_bytes_past_the_end_of_archive_and_accepts_missing_end_blocks() {
    let t = tempfile::tempdir().unwrap();
    // Corruption after the tar's end-of-archive blocks: tar never reads
    // there, the digest check must.
    let tar = raw_tar(&[("etc/", b'5', "", b""), ("etc/motd", b'0', "", b"hi\n")]);
    let l = t.path().join("l");
    image_with_layer(&l, "x", &tar, false);
    let blob = l.join("blobs/sha256").join(sha256(&tar).digest());
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 0x42;
    fs::write(&blob, &bytes).unwrap();
    let err = ocipack_err(&[
        "unpack",
        &format!("oci:{}:x", l.display()),
        &t.path().join("r1").display().to_string(),
    ]);
    assert!(
        err.contains(&sha256(&tar).to_string()) && err.contains("content has digest"),
        "{err}"
    );
    // A tar that stops right after its last entry (umoci insert < 0.4.8
    // writes these; Go's reader and containerd accept them).
    let mut short = raw_tar(&[("etc/", b'5', "", b""), ("etc/motd", b'0', "", b"hi\n")]);
    short.truncate(short.len() - 1024);
    let l2 = t.path().join("l2");
    image_with_layer(&l2, "x", &short, false);
    let root = t.path().join("r2");
    ocipack_ok(&[
        "unpack",
        &format!("oci:{}:x", l2.display()),
        &root.display().to_string(),
    ]);
    assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"hi\n");
    // But a tar cut inside an entry's data is an error.
    let mut cut = raw_tar(&[("etc/motd", b'0', "", &[b'x'; 2000])]);
    cut.truncate(1000);
    let l3 = t.path().join("l3");
    image_with_layer(&l3, "x", &cut, false);
    let err = ocipack_err(&[
        "unpack",
        &format!("oci:{}:x", l3.display()),
        &t.path().join("r3").display().to_string(),
    ]);
    assert!(
        err.contains("truncated") || err.contains("corrupt"),
        "{err}"
    );
}
