//! Hostile and broken layers (issue 11, defects 1-4): whiteout names from
//! directories, unpack of a tampered layer, gzip/zstd trailers and
//! diff_ids, tar header bombs. Each image is the fixture base (amd64) plus
//! one hand-made layer, in a copy of the fixture layout with recomputed
//! config and manifest digests.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use oci_spec::image::MediaType;
use ocipack::digest::sha256;
use ocipack::layout::Layout;
use ocipack::manifest::canonical_json;
use serde_json::{json, Value};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A copy of the fixture base layout.
fn base_copy(dir: &Path) -> PathBuf {
    let l = dir.join("l");
    copy_tree(&fixtures().join("base"), &l);
    l
}

/// Tags `tag` in `layout`: base-amd64 plus `blob` (of `media_type`) whose
/// config diff_id is `diff_id`. Returns the `oci:` reference and the
/// layer's digest.
fn with_layer(
    layout: &Path,
    tag: &str,
    blob: &[u8],
    media_type: &str,
    diff_id: &str,
) -> (String, String) {
    let l = Layout::open_or_create(layout).unwrap();
    let base = format!("oci:{}:base-amd64", layout.display());
    let src =
        ocipack::transport::open_source_with(&base.parse().unwrap(), &Default::default()).unwrap();
    let img = ocipack::image::resolve_image(src.as_ref(), None).unwrap();
    let layer = l
        .write_blob_bytes(blob, MediaType::Other(media_type.into()))
        .unwrap();
    let mut cfg = img.config_json.clone();
    cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(diff_id));
    let cfg = l
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let mut man: Value = serde_json::from_slice(img.raw.bytes()).unwrap();
    man["config"]["digest"] = json!(cfg.digest().to_string());
    man["config"]["size"] = json!(cfg.size());
    man["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": media_type, "digest": layer.digest().to_string(), "size": layer.size()
    }));
    let man = l
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    l.set_tags(&[(tag.to_string(), man)]).unwrap();
    (
        format!("oci:{}:{tag}", layout.display()),
        layer.digest().to_string(),
    )
}

/// A layer tar of regular files `(path, mode, body)`.
fn tar_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, mode, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, p, *body).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zst(data: &[u8], checksum: bool) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(checksum).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn unpack_err(reference: &str, dir: &Path) -> String {
    ocipack_err(&["unpack", reference, &dir.display().to_string()])
}

fn verify_err(reference: &str) -> String {
    ocipack_err(&["verify", "--arch", "amd64", reference])
}

/// Entries of `dir` whose name starts with `.ocipack-tmp`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".ocipack-tmp"))
                .collect()
        })
        .unwrap_or_default()
}

// ---- 1. whiteout names from a directory ----

#[test]
fn append_refuses_files_named_like_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    for name in [".wh.passwd", ".wh..wh..opq"] {
        let d = t.path().join(format!("dir{}", name.len()));
        fs::create_dir_all(d.join("etc")).unwrap();
        let f = d.join("etc").join(name);
        fs::write(&f, b"not a whiteout\n").unwrap();
        let out = t.path().join("out");
        let err = ocipack_err(&[
            "append",
            "--no-cache",
            "--base",
            &format!("oci:{}:base-amd64", l.display()),
            "--dir",
            &d.display().to_string(),
            "--out",
            &format!("oci:{}:x", out.display()),
        ]);
        assert!(
            err.contains(&f.display().to_string()) && err.contains("whiteout"),
            "{err}"
        );
        let idx = fs::read_to_string(out.join("index.json")).unwrap_or_default();
        assert!(!idx.contains("\"x\""), "an image was tagged: {idx}");
    }
}

// ---- 2. unpack trusts a layer before its digest is known ----

#[test]
fn a_tampered_layer_leaves_the_target_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    // Uncompressed, so a same-size forgery is easy: same names and sizes,
    // other bytes, a setuid bit.
    let good = tar_of(&[("usr/bin/tool", 0o755, b"#!/bin/sh\necho good\n")]);
    let evil = tar_of(&[("usr/bin/tool", 0o4755, b"#!/bin/sh\necho EVIL\n")]);
    assert_eq!(good.len(), evil.len());
    let (r, layer) = with_layer(&l, "t", &good, TAR, sha256(&good).as_ref());
    let blob = l
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    fs::write(&blob, &evil).unwrap();
    // Target absent: still absent.
    let root = t.path().join("root");
    let err = unpack_err(&r, &root);
    assert!(
        err.contains(&layer) && err.contains("content has digest"),
        "{err}"
    );
    assert!(!root.exists(), "a failed unpack left {}", root.display());
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
    // Target empty: still empty.
    fs::create_dir(&root).unwrap();
    let err = unpack_err(&r, &root);
    assert!(err.contains(&layer), "{err}");
    let left: Vec<_> = fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "a failed unpack left {left:?}");
    // The good blob unpacks.
    fs::write(&blob, &good).unwrap();
    ocipack_ok(&["unpack", &r, &root.display().to_string()]);
    assert_eq!(
        fs::read(root.join("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\necho good\n"
    );
    assert!(root.join("etc/passwd").is_file());
}

#[test]
fn stale_staging_of_a_killed_unpack_is_removed_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    // What `kill -9` leaves: a staging directory (read-only parts too) of
    // a process that no longer exists.
    let stale = t.path().join(".ocipack-tmp-unpack-999999-0123456789abcdef");
    fs::create_dir_all(stale.join("usr/lib")).unwrap();
    fs::write(stale.join("usr/lib/big"), vec![0u8; 1 << 20]).unwrap();
    std::process::Command::new("chmod")
        .args(["0555"])
        .arg(stale.join("usr"))
        .status()
        .unwrap();
    let root = t.path().join("root");
    ocipack_ok(&[
        "unpack",
        &format!("oci:{}:base-amd64", l.display()),
        &root.display().to_string(),
    ]);
    assert!(!stale.exists(), "stale staging directory kept");
    assert!(leftovers(t.path()).is_empty());
    // Killed while unpacking into an existing empty directory: the staging
    // directory is inside it, and does not make it "not empty" next time.
    let root2 = t.path().join("root2");
    fs::create_dir_all(root2.join(".ocipack-tmp-unpack-999999-fedcba9876543210/etc")).unwrap();
    ocipack_ok(&[
        "unpack",
        &format!("oci:{}:base-amd64", l.display()),
        &root2.display().to_string(),
    ]);
    assert!(leftovers(&root2).is_empty());
    assert!(root2.join("etc/passwd").is_file());
}

/// Commands' scratch space (a smoke's root, a spool, a build's staging
/// layout) lives under `$TMPDIR/ocipack-UID/`; what a `kill -9` leaves
/// there is removed by the next command that takes scratch space.
#[test]
fn scratch_of_a_killed_run_is_removed_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let dir = t.path().join("d");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("data"),
        (0..(8u32 << 20))
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let mut child = ocipack_cmd()
        .env("TMPDIR", &tmp)
        .args(["bench", "dir", d, "--json", "--seconds", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scratch = |tmp: &Path| -> Vec<PathBuf> {
        fs::read_dir(tmp)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ocipack-"))
            .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !scratch(&tmp)
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "d"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no scratch directory appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = scratch(&tmp);
    assert!(!left.is_empty(), "a killed run leaves its scratch behind");
    run_ok(ocipack_cmd().env("TMPDIR", &tmp).args([
        "bench",
        "dir",
        d,
        "--json",
        "--bytes",
        "1MiB",
        "--seconds",
        "0.2",
    ]));
    let now = scratch(&tmp);
    assert!(
        now.is_empty(),
        "left by the killed run: {left:?}; still there: {now:?}"
    );
}

#[test]
fn a_full_disk_leaves_no_partial_rootfs() {
    assert!(
        ocipack::unpack::is_root(),
        "this test mounts a small tmpfs: run it as root (tests/run.sh does)"
    );
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    // 3 MiB of data that gzip makes small: fits the layout, not the disk.
    let big = vec![7u8; 3 << 20];
    let tar = tar_of(&[("opt/big", 0o644, &big)]);
    let (r, _) = with_layer(&l, "big", &gz(&tar), GZIP, sha256(&tar).as_ref());
    let mnt = t.path().join("small");
    let _guard = common::Tmpfs::mount(mnt.clone(), "2m");
    let root = mnt.join("root");
    let err = unpack_err(&r, &root);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!root.exists());
    assert!(leftovers(&mnt).is_empty(), "{:?}", leftovers(&mnt));
    // Into the (empty) mount point itself: it stays empty.
    let err = unpack_err(&r, &mnt);
    assert!(err.contains("No space left on device"), "{err}");
    let left: Vec<_> = fs::read_dir(&mnt).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---- 3. gzip trailers, zstd frames and diff_ids ----

/// Each broken variant: unpack and verify refuse it, naming the layer.
#[test]
fn broken_compressed_streams_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    let tar = tar_of(&[("etc/motd", 0o644, b"hello\n")]);
    let id = sha256(&tar).to_string();
    let good = gz(&tar);
    let n = good.len();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut bad_crc = good.clone();
    bad_crc[n - 8] ^= 0xff;
    cases.push(("bad-crc", bad_crc, GZIP));
    let mut bad_size = good.clone();
    bad_size[n - 4] ^= 0x01;
    cases.push(("bad-isize", bad_size, GZIP));
    cases.push(("no-trailer", good[..n - 8].to_vec(), GZIP));
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"GARBAGE AFTER THE LAST MEMBER");
    cases.push(("garbage", garbage, GZIP));
    // Go's gzip reader (containerd, Docker) refuses zero padding too.
    let mut zeros = good.clone();
    zeros.extend_from_slice(&[0u8; 512]);
    cases.push(("zero-padding", zeros, GZIP));
    let zgood = zst(&tar, true);
    let mut zsum = zgood.clone();
    let zn = zsum.len();
    zsum[zn - 1] ^= 0xff;
    cases.push(("zstd-checksum", zsum, ZSTD));
    let mut zgarbage = zst(&tar, false);
    zgarbage.extend_from_slice(b"GARBAGE");
    cases.push(("zstd-garbage", zgarbage, ZSTD));
    let zcut = zgood[..zgood.len() - 6].to_vec();
    cases.push(("zstd-truncated", zcut, ZSTD));
    for (tag, blob, mt) in &cases {
        let (r, layer) = with_layer(&l, tag, blob, mt, &id);
        let root = t.path().join(format!("root-{tag}"));
        let err = unpack_err(&r, &root);
        assert!(err.contains(&layer), "{tag}: {err}");
        // gzip errors say which member and what the values are.
        let detail = match *tag {
            "bad-crc" => "member #1: CRC32 of the data is 0x",
            "bad-isize" => "size of the data mod 2^32 is",
            "no-trailer" => "member #1 ends without its 8-byte",
            "garbage" | "zero-padding" => "after gzip member #1 is not a gzip member",
            _ => "",
        };
        assert!(err.contains(detail), "{tag}: {err}");
        assert!(!root.exists(), "{tag}");
        let err = verify_err(&r);
        assert!(err.contains(&layer), "{tag}: {err}");
    }
    // Sanity: the good ones pass, and a multi-member gzip (what parallel
    // gzip writers emit) is fine.
    let mut multi = gz(&tar[..1024]);
    multi.extend(gz(&tar[1024..]));
    for (tag, blob, mt) in [
        ("good", good, GZIP),
        ("multi", multi, GZIP),
        ("zgood", zgood, ZSTD),
    ] {
        let (r, _) = with_layer(&l, tag, &blob, mt, &id);
        let root = t.path().join(format!("root-{tag}"));
        ocipack_ok(&["unpack", &r, &root.display().to_string()]);
        assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"hello\n");
    }
}

#[test]
fn a_config_with_wrong_diff_ids_is_refused_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    let tar = tar_of(&[("etc/motd", 0o644, b"hello\n")]);
    let real = sha256(&tar).to_string();
    let lie = sha256(b"something else").to_string();
    let (r, layer) = with_layer(&l, "liar", &gz(&tar), GZIP, &lie);
    let check = |err: &str| {
        assert!(
            err.contains(&layer) && err.contains(&lie) && err.contains(&real),
            "{err}"
        );
    };
    let root = t.path().join("root");
    check(&unpack_err(&r, &root));
    assert!(!root.exists());
    check(&verify_err(&r));
    // append copies the base's diff_ids into the new image: it must not
    // copy a wrong one, with or without the cache.
    let d = t.path().join("add");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("hello"), b"hi").unwrap();
    let cache = t.path().join("cache");
    for extra in [&["--no-cache"][..], &[][..]] {
        let out = t.path().join("out");
        let mut args = vec!["append"];
        args.extend_from_slice(extra);
        let dir = d.display().to_string();
        let o = format!("oci:{}:x", out.display());
        args.extend(["--base", &r, "--dir", &dir, "--out", &o]);
        let res = std::process::Command::new(env!("CARGO_BIN_EXE_ocipack"))
            .args(&args)
            .env("OCIPACK_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert!(!res.status.success(), "append accepted a wrong diff_id");
        check(&String::from_utf8_lossy(&res.stderr));
    }
    // Same layers, a truthful config: fine, and a tree cached for the
    // truthful image does not vouch for the liar.
    let (good, _) = with_layer(&l, "truth", &gz(&tar), GZIP, &real);
    let out = t.path().join("out2");
    let dir = d.display().to_string();
    let run = |base: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ocipack"))
            .args([
                "append",
                "--base",
                base,
                "--dir",
                &dir,
                "--out",
                &format!("oci:{}:x", out.display()),
            ])
            .env("OCIPACK_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    assert!(run(&good).status.success());
    let res = run(&r);
    assert!(
        !res.status.success(),
        "the cache vouched for a wrong diff_id"
    );
    check(&String::from_utf8_lossy(&res.stderr));
}

// ---- 4. header bombs ----

/// A tar whose first header claims `size` bytes of type `kind`, followed
/// by `size` zero bytes, gzip-compressed as it is generated.
fn bomb(kind: u8, size: u64) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut h = tar::Header::new_ustar();
    h.set_path("././@LongLink").unwrap();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut hasher = sha2::Sha256::new();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut put = |b: &[u8]| {
        hasher.update(b);
        e.write_all(b).unwrap();
    };
    put(h.as_bytes());
    let zeros = vec![0u8; 1 << 20];
    let mut left = size.div_ceil(512) * 512 + 1024;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        put(&zeros[..k]);
        left -= k as u64;
    }
    let id = format!("sha256:{}", hex::encode(hasher.finalize()));
    (e.finish().unwrap(), id)
}

#[test]
fn header_bombs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let l = base_copy(t.path());
    for (tag, kind, what) in [
        ("pax", b'x', "PAX extended header"),
        ("longname", b'L', "GNU long name"),
        ("longlink", b'K', "GNU long link"),
    ] {
        let (blob, id) = bomb(kind, 64 << 20);
        assert!(blob.len() < 1 << 20);
        let (r, layer) = with_layer(&l, tag, &blob, GZIP, &id);
        let root = t.path().join(format!("root-{tag}"));
        let err = unpack_err(&r, &root);
        assert!(
            err.contains(&layer) && err.contains(what) && err.contains("cap"),
            "{tag}: {err}"
        );
        assert!(!root.exists());
        let err = verify_err(&r);
        assert!(err.contains(&layer) && err.contains(what), "{tag}: {err}");
    }
}
