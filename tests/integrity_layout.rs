//! Layout integrity (issue 11, defects 5-9 and `fsck`): what is already in
//! a destination is verified before it is trusted, files get the modes other
//! tools expect, nothing is silently lost or left behind, and `ocipack fsck`
//! finds (and repairs) what a crash or a full disk leaves.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use oci_spec::image::{Descriptor, MediaType};
use ocipack::digest::sha256;
use ocipack::layout::Layout;
use ocipack::manifest::canonical_json;
use serde_json::json;

/// A tar holding one file `name` with `data`.
fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// Writes a one-layer image (uncompressed layer) tagged `tag` (untagged if
/// empty); returns (manifest, layer) descriptors.
fn image(layout: &Path, tag: &str, layer_tar: &[u8]) -> (Descriptor, Descriptor) {
    let l = Layout::open_or_create(layout).unwrap();
    let layer = l
        .write_blob_bytes(layer_tar, MediaType::ImageLayer)
        .unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar).to_string()]}
    });
    let cfg = l
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let man = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": layer.size(), "digest": layer.digest().to_string()}]
    });
    let man = l
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    if !tag.is_empty() {
        l.set_tags(&[(tag.to_string(), man.clone())]).unwrap();
    }
    (man, layer)
}

fn blob(layout: &Path, d: &Descriptor) -> PathBuf {
    layout.join("blobs/sha256").join(d.digest().digest())
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Runs ocipack under `umask`.
fn ocipack_umask(umask: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ocipack {args:?} under umask {umask}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn oci(dir: &Path, sel: &str) -> String {
    format!("oci:{}{sel}", dir.display())
}

// Defect 5: a same-size corrupt blob already in a destination was trusted
// (size compared only): the copy skipped it, tagged the image, and no re-run
// repaired it.
#[test]
fn corrupt_blob_in_destination_is_replaced_not_trusted() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (_, layer) = image(&src, "v1", &tar_with("f", &[7u8; 4096]));
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    // Same size, different bytes: only a hash tells.
    let p = blob(&dst, &layer);
    let mut bytes = fs::read(&p).unwrap();
    bytes[600] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let out = ocipack_ok(&["copy", "--json", &oci(&src, ":v1"), &oci(&dst, ":v2")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["blobs_copied"], 1,
        "the corrupt layer is copied again: {v}"
    );
    assert_eq!(
        &sha256(&fs::read(&p).unwrap()),
        layer.digest(),
        "the corrupt blob was kept"
    );
    // The image reads back clean.
    ocipack_ok(&[
        "unpack",
        &oci(&dst, ":v2"),
        &t.path().join("root").display().to_string(),
    ]);
    // Same for a layer written by `append` into a layout holding a corrupt
    // copy of it: the next writer replaces it.
    fs::write(&p, &bytes).unwrap();
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v3")]);
    assert_eq!(&sha256(&fs::read(&p).unwrap()), layer.digest());
}

// Defect 6: everything was written 0600 whatever the umask, and a rewritten
// 0644 index.json became 0600.
#[test]
fn files_get_umask_modes_and_rewrites_keep_theirs() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (man, layer) = image(&src, "v1", &tar_with("f", b"hello"));
    let dst = t.path().join("dst");
    ocipack_umask("022", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    for f in [
        dst.join("index.json"),
        dst.join("oci-layout"),
        blob(&dst, &layer),
        blob(&dst, &man),
    ] {
        assert_eq!(mode(&f), 0o644, "{}", f.display());
    }
    for d in [dst.clone(), dst.join("blobs"), dst.join("blobs/sha256")] {
        assert_eq!(mode(&d), 0o755, "{}", d.display());
    }
    let tar = t.path().join("a.tar");
    ocipack_umask(
        "027",
        &[
            "copy",
            &oci(&src, ":v1"),
            &format!("oci-archive:{}:v1", tar.display()),
        ],
    );
    assert_eq!(mode(&tar), 0o640);
    // A rewrite keeps the file's mode, whatever the umask.
    ocipack_umask("077", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v2")]);
    assert_eq!(mode(&dst.join("index.json")), 0o644);
    fs::set_permissions(dst.join("index.json"), fs::Permissions::from_mode(0o664)).unwrap();
    ocipack_umask("022", &["copy", &oci(&src, ":v1"), &oci(&dst, ":v3")]);
    assert_eq!(mode(&dst.join("index.json")), 0o664);
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o604)).unwrap();
    ocipack_umask(
        "022",
        &[
            "copy",
            &oci(&src, ":v1"),
            &format!("oci-archive:{}:v2", tar.display()),
        ],
    );
    assert_eq!(mode(&tar), 0o604);
}

fn index_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// Tags of an archive's index.json (read back by ocipack inspect of the tar
/// through skopeo's view: the tar member itself).
fn archive_tags(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg("index.json")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -xOf {}", tar.display());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    tags.sort();
    tags
}

// Defect 7: a copy by digest into a destination without a tag wrote blobs
// and no index.json entry, so `umoci gc` deleted them all.
#[test]
fn copy_by_digest_without_tag_records_an_untagged_entry() {
    common::tools::require("umoci");
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (man, layer) = image(&src, "v1", &tar_with("f", b"kept"));
    let by_digest = oci(&src, &format!("@{}", man.digest()));
    ocipack_ok(&["copy", &by_digest, &oci(&dst, "")]);
    let idx = index_json(&dst);
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{idx}");
    assert_eq!(entries[0]["digest"], man.digest().to_string());
    assert!(entries[0]["annotations"].is_null(), "untagged: {idx}");
    // Copying it again adds no duplicate.
    ocipack_ok(&["copy", &by_digest, &oci(&dst, "")]);
    assert_eq!(index_json(&dst)["manifests"].as_array().unwrap().len(), 1);
    // umoci gc keeps what index.json references.
    common::tools::run_ok("umoci", &["gc", "--layout", &dst.display().to_string()]);
    assert!(blob(&dst, &layer).is_file(), "umoci gc removed the layer");
    // The same into an archive.
    let tar = t.path().join("a.tar");
    ocipack_ok(&[
        "copy",
        &by_digest,
        &format!("oci-archive:{}", tar.display()),
    ]);
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("index.json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifests"][0]["digest"], man.digest().to_string(), "{v}");
}

// Defect 7: concurrent copies into one oci-archive all exited 0 and all but
// one tag were lost.
#[test]
fn concurrent_copies_into_one_archive_keep_every_tag() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    image(&src, "v1", &tar_with("f", &vec![3u8; 1 << 20]));
    let tar = t.path().join("a.tar");
    let n = 6;
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_ocipack"))
                .args([
                    "copy",
                    &oci(&src, ":v1"),
                    &format!("oci-archive:{}:t{i}", tar.display()),
                ])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    assert_eq!(archive_tags(&tar), want);
    // No temp file is left beside the archive.
    for e in fs::read_dir(t.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".ocipack-tmp"), "{name} left behind");
    }
}

// Defect 8: a failed copy created the destination layout holding orphan
// blobs; a half-created layout (what a full disk leaves) was refused by
// every retry.
#[test]
fn failed_copy_leaves_no_layout_and_a_skeleton_is_completed() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (_, layer) = image(&src, "v1", &tar_with("f", &[1u8; 8192]));
    let p = blob(&src, &layer);
    let good = fs::read(&p).unwrap();
    let mut bad = good.clone();
    bad[1000] ^= 1;
    fs::write(&p, &bad).unwrap();
    let dst = t.path().join("dst");
    let err = ocipack_err(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    assert!(err.contains(&layer.digest().to_string()), "{err}");
    assert!(!dst.exists(), "a failed copy created {}", dst.display());
    let names: Vec<String> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".ocipack-tmp")),
        "{names:?}"
    );
    fs::write(&p, &good).unwrap();
    // A skeleton: the directories and a dead writer's temp file, no
    // index.json and no oci-layout (the disk filled up while creating it).
    fs::create_dir_all(dst.join("blobs/sha256")).unwrap();
    fs::write(dst.join(".ocipack-tmp-dead"), b"partial").unwrap();
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    assert!(dst.join("oci-layout").is_file());
    assert!(!dst.join(".ocipack-tmp-dead").exists());
    ocipack_ok(&["fsck", &oci(&dst, "")]);
    // An empty directory is fine as a destination too.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&empty, ":v1")]);
    ocipack_ok(&["fsck", &oci(&empty, "")]);
    // A foreign directory is still refused.
    let foreign = t.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let err = ocipack_err(&["copy", &oci(&src, ":v1"), &oci(&foreign, ":v1")]);
    assert!(err.contains("not empty"), "{err}");
}

// Defect 8: a full disk while creating a new layout left a skeleton that
// every retry refused. After freeing space, the same command succeeds and
// fsck finds nothing wrong.
#[test]
fn full_disk_while_creating_a_layout_then_retry_succeeds() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    image(&src, "v1", &tar_with("f", &vec![5u8; 64 * 1024]));
    let fs_ = Tmpfs::mount(t.path().join("small"), "1m");
    // Fill the disk completely.
    let fill = fs_.0.join("fill");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", fill.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let dst = fs_.0.join("l");
    let err = ocipack_err(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    assert!(err.contains("No space left on device"), "{err}");
    fs::remove_file(&fill).unwrap();
    ocipack_ok(&["copy", &oci(&src, ":v1"), &oci(&dst, ":v1")]);
    ocipack_ok(&["fsck", &oci(&dst, "")]);
}

/// Writes a tagged image whose single uncompressed layer holds `size` zero
/// bytes, streamed (nothing big in memory).
fn big_image(layout: &Path, tag: &str, size: u64) {
    use std::io::Write;
    let l = Layout::open_or_create(layout).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("big").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut w = l.blob_writer().unwrap();
    w.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n]).unwrap();
        left -= n as u64;
    }
    let pad = (512 - size % 512) % 512 + 1024;
    w.write_all(&vec![0u8; pad as usize]).unwrap();
    let (digest, len) = w.finish().unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest.to_string()]}
    });
    let cfg = l
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let man = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len, "digest": digest.to_string()}]
    });
    let man = l
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    l.set_tags(&[(tag.to_string(), man)]).unwrap();
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".ocipack-tmp-")
        })
        .collect()
}

// Defect 8: kill -9 left `.ocipack-tmp-*` files that no later run removed.
// fsck reports them, the next writer removes them, fsck is then clean.
#[test]
fn kill_9_leftovers_are_reported_by_fsck_and_removed_by_the_next_writer() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    big_image(&src, "big", 768 << 20);
    image(&src, "small", &tar_with("f", b"small"));
    ocipack_ok(&["copy", &oci(&src, ":small"), &oci(&dst, ":small")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(["copy", &oci(&src, ":big"), &oci(&dst, ":big")])
        .spawn()
        .unwrap();
    // Kill it once its temp file holds some data.
    let start = std::time::Instant::now();
    loop {
        // The blob being written sits in a staging directory inside dst.
        let grown = walkdir::WalkDir::new(&dst).into_iter().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".ocipack-tmp-")
                && e.metadata().map(|m| m.len() > 16 << 20).unwrap_or(false)
        });
        if grown {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy finished before it could be killed"
        );
        assert!(start.elapsed().as_secs() < 60, "no temp file appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temp_files(&dst);
    assert!(!left.is_empty());
    let out = ocipack(&["fsck", "--json", &oci(&dst, "")]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "fsck must fail on temp files (exit 3: a check failed)"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = report["temp_files"].to_string();
    for p in &left {
        assert!(
            listed.contains(&*p.file_name().unwrap().to_string_lossy()),
            "{report}"
        );
    }
    // The next writer (any command writing the layout) removes them.
    ocipack_ok(&["copy", &oci(&src, ":small"), &oci(&dst, ":again")]);
    assert!(temp_files(&dst).is_empty(), "{:?}", temp_files(&dst));
    ocipack_ok(&["fsck", &oci(&dst, "")]);
}

// fsck: every defect a crash, a bad disk or a hostile hand can leave is
// found, named, and (for leftovers) repaired; referenced blobs never go.
#[test]
fn fsck_finds_and_repairs_layout_defects() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    copy_tree(&fixtures().join("base"), &l);
    let clean = ocipack_ok(&["fsck", "--json", &oci(&l, "")]);
    let v: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["blobs"].as_u64().unwrap() > 5 && v["layers"].as_u64().unwrap() >= 2,
        "{v}"
    );
    // The archive form of the same layout.
    let tar = t.path().join("base.tar");
    ocipack_ok(&[
        "copy",
        "--all",
        &oci(&l, ":base"),
        &format!("oci-archive:{}:base", tar.display()),
    ]);
    ocipack_ok(&["fsck", &format!("oci-archive:{}", tar.display())]);

    // Leftovers only: an orphan blob and a dead writer's temp file.
    let orphan = Layout::open(&l)
        .unwrap()
        .write_blob_bytes(b"nobody refers to me", MediaType::ImageLayer)
        .unwrap();
    fs::write(l.join(".ocipack-tmp-dead"), b"partial").unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&l, "")]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["orphans"][0], orphan.digest().to_string(), "{v}");
    assert!(
        v["temp_files"].to_string().contains(".ocipack-tmp-dead"),
        "{v}"
    );
    let before = fs::read_dir(l.join("blobs/sha256")).unwrap().count();
    ocipack_ok(&["fsck", "--repair", &oci(&l, "")]);
    assert!(!blob(&l, &orphan).exists() && !l.join(".ocipack-tmp-dead").exists());
    let after = fs::read_dir(l.join("blobs/sha256")).unwrap().count();
    assert_eq!(after + 1, before, "only the orphan went");
    ocipack_ok(&["fsck", &oci(&l, "")]);

    // Real defects: a corrupt layer, a missing config, a wrong diff_id.
    let inspect: serde_json::Value =
        serde_json::from_str(&ocipack_ok(&["inspect", "--json", &oci(&l, ":base-arm64")])).unwrap();
    let layer = inspect["layers"][0]["digest"].as_str().unwrap().to_string();
    let lp = l
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&lp).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&lp, &bytes).unwrap();
    let out = ocipack(&["fsck", &oci(&l, "")]);
    assert_eq!(out.status.code(), Some(3));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&layer), "{text}");
    // --repair never removes a referenced blob, even a corrupt one.
    ocipack(&["fsck", "--repair", &oci(&l, "")]);
    assert!(lp.exists());
    bytes[mid] ^= 0xff;
    fs::write(&lp, &bytes).unwrap();
    ocipack_ok(&["fsck", &oci(&l, "")]);

    // A config whose diff_id does not match its layer.
    let src = t.path().join("src");
    let layer_tar = tar_with("f", b"x");
    let l2 = Layout::open_or_create(&src).unwrap();
    let ld = l2
        .write_blob_bytes(&layer_tar, MediaType::ImageLayer)
        .unwrap();
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(b"something else").to_string()]}});
    let cd = l2
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let man = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cd.size(), "digest": cd.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": ld.size(), "digest": ld.digest().to_string()}]});
    let md = l2
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    l2.set_tags(&[("bad".into(), md)]).unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&src, "")]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("diff_id") && problems.contains(&ld.digest().to_string()),
        "{v}"
    );
    // A missing config.
    fs::remove_file(blob(&src, &cd)).unwrap();
    let out = ocipack(&["fsck", "--json", &oci(&src, "")]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("missing") && problems.contains(&cd.digest().to_string()),
        "{v}"
    );
}

// Defect 9: a whiteout for an absent path created its parent directories.
#[test]
fn whiteout_for_an_absent_path_creates_nothing() {
    common::tools::require("umoci");
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    let lay = Layout::open_or_create(&l).unwrap();
    let l1 = tar_with("keep", b"k");
    let l2 = tar_with("no/such/dir/.wh.gone", b"");
    let d1 = lay.write_blob_bytes(&l1, MediaType::ImageLayer).unwrap();
    let d2 = lay.write_blob_bytes(&l2, MediaType::ImageLayer).unwrap();
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d1.digest().to_string(), d2.digest().to_string()]}});
    let cd = lay
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .unwrap();
    let layer = |d: &Descriptor| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": d.size(), "digest": d.digest().to_string()});
    let man = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cd.size(), "digest": cd.digest().to_string()},
        "layers": [layer(&d1), layer(&d2)]});
    let md = lay
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .unwrap();
    lay.set_tags(&[("w".into(), md)]).unwrap();
    let root = t.path().join("root");
    ocipack_ok(&["unpack", &oci(&l, ":w"), &root.display().to_string()]);
    assert!(root.join("keep").is_file());
    assert!(
        !root.join("no").exists(),
        "unpack created the whiteout's parents"
    );
    // umoci agrees.
    let bundle = t.path().join("bundle");
    common::tools::run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:w", l.display()),
            &bundle.display().to_string(),
        ],
    );
    assert!(!bundle.join("rootfs/no").exists());
}

// Defect 9: index.json had no size cap (a 200 MB one cost 826 MB of RSS);
// archives already capped theirs at 32 MiB.
#[test]
fn oversized_index_json_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let l = t.path().join("l");
    image(&l, "v1", &tar_with("f", b"x"));
    let mut idx = fs::read(l.join("index.json")).unwrap();
    // Still valid JSON: 33 MiB of whitespace.
    idx.extend(std::iter::repeat_n(b' ', 33 << 20));
    fs::write(l.join("index.json"), &idx).unwrap();
    let err = ocipack_err(&["inspect", &oci(&l, ":v1")]);
    assert!(
        err.contains("index.json") && err.contains("too large"),
        "{err}"
    );
}

// Defect 9: several errors printed their cause twice.
#[test]
fn errors_print_their_cause_once() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    image(&src, "v1", &tar_with("f", b"x"));
    let file = t.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = ocipack_err(&["copy", &oci(&src, ":v1"), &oci(&file.join("sub"), ":v1")]);
    assert_eq!(err.matches("os error 20").count(), 1, "{err}");
}

/// A registry holding image `r/img:v1` (one layer of `layer_len` bytes).
fn registry_with_image(t: &Path, layer_len: usize) -> (common::registry::Registry, Descriptor) {
    let reg = common::registry::Registry::start();
    let src = t.join("src");
    let data: Vec<u8> = (0..layer_len).map(|i| (i * 7 % 251) as u8).collect();
    let (_, layer) = image(&src, "v1", &tar_with("f", &data));
    run_ok(ocipack_cmd().args(["push", &oci(&src, ":v1"), &reg.url("r/img:v1")]));
    (reg, layer)
}

// Defect 9: the registry source silently truncated a blob the server sent
// longer than its descriptor; the layout source errors, so must it.
#[test]
fn registry_blob_longer_than_its_descriptor_is_an_error() {
    use common::proxy::{Action, FaultProxy, Rule, When};
    let t = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_image(t.path(), 4096);
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "GET",
            "/blobs/",
            When::Always,
            Action::Oversize(100),
        )],
    );
    let dst = t.path().join("dst");
    let err = run_fail(ocipack_cmd().args([
        "copy",
        "--retries",
        "0",
        &proxy.url("r/img:v1"),
        &oci(&dst, ":v1"),
    ]));
    assert!(err.contains("expected") && err.contains("bytes"), "{err}");
    assert!(
        !dst.join("index.json").exists()
            || !fs::read_to_string(dst.join("index.json"))
                .unwrap()
                .contains("v1")
    );
}

// Defect 9: `--timeout` was a no-progress timeout that a 1 byte/s drip
// never tripped: a pull could take days. A transfer slower than
// `--min-rate` over `--timeout` seconds is now dropped and retried.
#[test]
fn a_dripping_registry_trips_the_minimum_rate() {
    use common::proxy::{Action, FaultProxy, Rule, When};
    let t = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_image(t.path(), 4096);
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Rule::new(
            "GET",
            "/blobs/",
            When::Always,
            Action::Drip(std::time::Duration::from_millis(500)),
        )],
    );
    let dst = t.path().join("dst");
    let start = std::time::Instant::now();
    let mut child = ocipack_cmd()
        .args([
            "copy",
            "--timeout",
            "2",
            "--retries",
            "1",
            "--retry-delay-ms",
            "50",
            &proxy.url("r/img:v1"),
            &oci(&dst, ":v1"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(finished, "a 2 byte/s drip kept ocipack busy for 20 s");
    assert!(!out.status.success());
    assert!(err.contains("bytes/s"), "{err}");
}
