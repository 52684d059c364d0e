//! End-to-end tests of the layer engine (issue 3), cross-checked with
//! umoci: what `umoci unpack` makes of our layers must equal what it makes
//! of the source images (whiteouts, opaque dirs, hard links, xattrs,
//! owners included).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::tools::{require, run_ok};
use common::trees::{assert_same_tree, fingerprint};
use common::*;
use oci_spec::image::Descriptor;
use ocipack::image::{resolve_image, ResolvedImage};
use ocipack::layer::{
    layer_from_image, BuiltLayer, ImagePath, LayerOptions, MergedTree, SelectRule, Selection,
};
use ocipack::layout::Layout;
use ocipack::manifest::{canonical_json, Compression, RawManifest};
use ocipack::reference::Reference;
use ocipack::transport::{open_source_with, ImageSource};
use serde_json::json;

fn source(layout: &str, tag: &str) -> (Box<dyn ImageSource>, ResolvedImage) {
    let r: Reference = format!("oci:{}:{tag}", fixtures().join(layout).display())
        .parse()
        .unwrap();
    let src = open_source_with(&r, &Default::default()).unwrap();
    let img = resolve_image(src.as_ref(), None).unwrap();
    (src, img)
}

fn opts(c: Compression, threads: usize) -> LayerOptions {
    LayerOptions {
        compression: c,
        threads,
        source_date_epoch: None,
        reuse_layers: false,
        cache: None,
        ..LayerOptions::default()
    }
}

/// Wraps layers in a minimal single-platform image and tags it.
fn image_of(out: &Layout, tag: &str, layers: &[&BuiltLayer]) -> Descriptor {
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()}
    });
    let cfg = out
        .write_blob_bytes(
            &canonical_json(&cfg).unwrap(),
            oci_spec::image::MediaType::ImageConfig,
        )
        .unwrap();
    let man = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.descriptor.media_type().to_string(),
            "size": l.descriptor.size(),
            "digest": l.descriptor.digest().to_string()})).collect::<Vec<_>>()
    });
    let raw = RawManifest::from_bytes(canonical_json(&man).unwrap(), None).unwrap();
    let d = raw.descriptor();
    out.put_blob(&d, &mut raw.bytes()).unwrap();
    out.set_tags(&[(tag.to_string(), d.clone())]).unwrap();
    d
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            &bundle.display().to_string(),
        ],
    );
    bundle.join("rootfs")
}

/// Decompresses a blob with the system tools and hashes it, to check
/// diff_ids independently.
fn tool_diff_id(out: &Layout, l: &BuiltLayer) -> String {
    let p = out.blob_path(l.descriptor.digest()).unwrap();
    let cmd = match Compression::of_media_type(l.descriptor.media_type()).unwrap() {
        Compression::Gzip => "gzip -dc",
        Compression::Zstd => "zstd -dc",
        Compression::None => "cat",
    };
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} < '{}' | sha256sum", p.display()))
        .output()
        .unwrap();
    assert!(o.status.success());
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&o.stdout)
            .split(' ')
            .next()
            .unwrap()
    )
}

#[test]
fn whole_tree_equals_umoci_unpack_of_the_source() {
    require("umoci");
    require("getfattr");
    require("zstd");
    for (tag, c) in [
        ("cross-android-arm64", Compression::Gzip),
        ("cross-android-riscv64-bad", Compression::Zstd),
        ("cross-android-amd64", Compression::None),
    ] {
        let t = tempfile::tempdir().unwrap();
        let (src, img) = source("artifacts", tag);
        let tree = MergedTree::load(src.as_ref(), &img).unwrap();
        let out = Layout::open_or_create(t.path().join("out")).unwrap();
        let sel = Selection::new(vec![SelectRule::path("/")]);
        let built = layer_from_image(src.as_ref(), &img, &tree, &sel, &out, &opts(c, 2)).unwrap();
        assert!(!built.reused);
        assert_eq!(
            tool_diff_id(&out, &built),
            built.diff_id.to_string(),
            "{tag}"
        );
        let ours = if c == Compression::Zstd {
            // umoci 0.4.7 reads no zstd: decompress with the zstd tool
            // into an uncompressed layer, then let umoci read that.
            let plain = Layout::open_or_create(t.path().join("plain")).unwrap();
            let p = out.blob_path(built.descriptor.digest()).unwrap();
            let tar = Command::new("zstd").arg("-dc").arg(&p).output().unwrap();
            assert!(tar.status.success());
            let d = plain
                .write_blob_bytes(&tar.stdout, oci_spec::image::MediaType::ImageLayer)
                .unwrap();
            let l = BuiltLayer {
                descriptor: d,
                ..built.clone()
            };
            image_of(&plain, "t", &[&l]);
            umoci_unpack(plain.root(), "t", &t.path().join("ours"))
        } else {
            image_of(&out, "t", &[&built]);
            umoci_unpack(out.root(), "t", &t.path().join("ours"))
        };
        let theirs = umoci_unpack(&fixtures().join("artifacts"), tag, &t.path().join("theirs"));
        let fp = fingerprint(&ours);
        assert!(fp.contains("opt/opencv5/share/new/b.txt"), "{fp}");
        assert!(!fp.contains("share/old"), "opaque dir not applied");
        assert!(!fp.contains("junk.txt"), "whiteout not applied");
        assert!(fp.contains("security.capability"), "xattr lost");
        assert_same_tree(&ours, &theirs, t.path());
    }
}

#[test]
fn selection_equals_a_copy_of_the_unpacked_source() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let (src, img) = source("artifacts", "cross-android-arm64");
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let rule = |s: &str| SelectRule::path(s);
    let sel = Selection::new(vec![
        rule("/opt/gcc-16.1.0"),
        SelectRule {
            dest: Some("/usr/local/llvm-target".into()),
            ..rule("/opt/llvm-target")
        },
        SelectRule {
            owner: Some((4242, 4243)),
            ..rule("/opt/android-sdk")
        },
        SelectRule {
            exclude: vec!["/opt/vulkan/*/x86_64".into()],
            ..rule("/opt/vulkan")
        },
        SelectRule {
            optional: true,
            ..rule("/usr/local/lib/onnxruntime-gpu")
        },
        rule("/usr/local/lib/libLiteRt*.so*"),
        rule("/opt/opencv5"),
    ]);
    let out = Layout::open_or_create(t.path().join("out")).unwrap();
    let built = layer_from_image(
        src.as_ref(),
        &img,
        &tree,
        &sel,
        &out,
        &opts(Compression::Gzip, 2),
    )
    .unwrap();
    assert!(built
        .paths
        .iter()
        .any(|p| p == "/usr/local/llvm-target/bin/clang"));
    image_of(&out, "t", &[&built]);
    let ours = umoci_unpack(out.root(), "t", &t.path().join("ours"));
    let s = umoci_unpack(
        &fixtures().join("artifacts"),
        "cross-android-arm64",
        &t.path().join("src"),
    );
    // The same selection made with coreutils on umoci's unpack.
    let e = t.path().join("expected");
    let sh = format!(
        r#"set -e
        umask 022
        S='{s}'; E='{e}'
        mkdir -m 755 -p "$E/opt" "$E/usr/local/lib"
        chmod 755 "$E" "$E/usr" "$E/usr/local"
        cp -a "$S/opt/gcc-16.1.0" "$S/opt/android-sdk" "$S/opt/vulkan" "$S/opt/opencv5" "$E/opt/"
        cp -a "$S/opt/llvm-target" "$E/usr/local/llvm-target"
        chown -R 4242:4243 "$E/opt/android-sdk"
        # chown drops file capabilities; ocipack keeps xattrs as they are.
        setfattr -n security.capability -v 0sAQAAAgAEAAAAAAAAAAAAAAAAAAA= "$E/opt/android-sdk/platform-tools/adb"
        rm -rf "$E"/opt/vulkan/*/x86_64
        cp -a "$S"/usr/local/lib/libLiteRt*.so* "$E/usr/local/lib/"
        "#,
        s = s.display(),
        e = e.display()
    );
    let st = Command::new("sh").arg("-c").arg(&sh).status().unwrap();
    assert!(st.success());
    let fp = fingerprint(&ours);
    assert!(!fp.contains("x86_64/bin/vulkaninfo"), "exclude ignored");
    assert!(fp.contains("opt/vulkan/1.4.321.0/aarch64/lib/libvulkan.so.1"));
    assert!(fp.contains("usr/local/lib/libLiteRtRuntime.so l"), "{fp}");
    assert_same_tree(&ours, &e, t.path());
}

#[test]
fn a_hard_link_whose_target_is_not_selected_becomes_a_file() {
    // On arm64, `gcc` is the hard-link entry pointing at
    // `aarch64-linux-gnu-gcc`.
    let t = tempfile::tempdir().unwrap();
    let (src, img) = source("artifacts", "cross-android-arm64");
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let gcc = tree
        .get(&ImagePath::from("/opt/gcc-16.1.0/bin/gcc"))
        .unwrap();
    assert_eq!(gcc.kind, ocipack::layer::FileKind::HardLink);
    let out = Layout::open_or_create(t.path().join("out")).unwrap();
    let sel = Selection::new(vec![SelectRule::path("/opt/gcc-16.1.0/bin/gcc")]);
    let built = layer_from_image(
        src.as_ref(),
        &img,
        &tree,
        &sel,
        &out,
        &opts(Compression::None, 1),
    )
    .unwrap();
    assert_eq!(built.paths, ["/opt/gcc-16.1.0/bin/gcc"]);
    let blob = fs::read(out.blob_path(built.descriptor.digest()).unwrap()).unwrap();
    let mut a = tar::Archive::new(&blob[..]);
    let mut kinds = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        kinds.push((
            e.path().unwrap().display().to_string(),
            e.header().entry_type(),
            e.size(),
        ));
    }
    let want = tree
        .read_file(
            src.as_ref(),
            &ImagePath::from("/opt/gcc-16.1.0/bin/gcc"),
            1 << 20,
        )
        .unwrap();
    assert_eq!(
        kinds.last().unwrap(),
        &(
            "opt/gcc-16.1.0/bin/gcc".to_string(),
            tar::EntryType::Regular,
            want.len() as u64
        )
    );
    assert_eq!(&want[..4], b"\x7fELF");
    // Parents were created: opt, opt/gcc-16.1.0, opt/gcc-16.1.0/bin.
    assert_eq!(kinds.len(), 4);
}

#[test]
fn output_depends_on_the_tree_not_on_layer_split_or_threads() {
    let t = tempfile::tempdir().unwrap();
    let (src, img) = source("artifacts", "cross-android-riscv64");
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let out = Layout::open_or_create(t.path().join("out")).unwrap();
    let sel = Selection::new(vec![SelectRule::path("/")]);
    let mut digests = Vec::new();
    for threads in [1, 2, 8] {
        let g = layer_from_image(
            src.as_ref(),
            &img,
            &tree,
            &sel,
            &out,
            &opts(Compression::Gzip, threads),
        )
        .unwrap();
        let z = layer_from_image(
            src.as_ref(),
            &img,
            &tree,
            &sel,
            &out,
            &opts(Compression::Zstd, threads),
        )
        .unwrap();
        assert_eq!(g.diff_id, z.diff_id);
        digests.push((g.descriptor.digest().clone(), z.descriptor.digest().clone()));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    // Re-read the one-layer result and write it again: same bytes.
    let one = layer_from_image(
        src.as_ref(),
        &img,
        &tree,
        &sel,
        &out,
        &opts(Compression::Gzip, 2),
    )
    .unwrap();
    image_of(&out, "flat", &[&one]);
    let r: Reference = format!("oci:{}:flat", out.root().display())
        .parse()
        .unwrap();
    let src2 = open_source_with(&r, &Default::default()).unwrap();
    let img2 = resolve_image(src2.as_ref(), None).unwrap();
    let tree2 = MergedTree::load(src2.as_ref(), &img2).unwrap();
    let again = layer_from_image(
        src2.as_ref(),
        &img2,
        &tree2,
        &sel,
        &out,
        &opts(Compression::Gzip, 1),
    )
    .unwrap();
    assert_eq!(again.descriptor.digest(), one.descriptor.digest());
    assert_eq!(again.diff_id, one.diff_id);
}

/// Counts blob reads, to prove cache hits do no work.
struct Counting<'a> {
    inner: &'a dyn ImageSource,
    opened: AtomicUsize,
}

impl ImageSource for Counting<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn resolve(&self) -> ocipack::Result<Descriptor> {
        self.inner.resolve()
    }
    fn read_manifest(&self, d: &Descriptor) -> ocipack::Result<RawManifest> {
        self.inner.read_manifest(d)
    }
    fn read_blob(&self, d: &Descriptor) -> ocipack::Result<Vec<u8>> {
        self.inner.read_blob(d)
    }
    fn open_blob(&self, d: &Descriptor) -> ocipack::Result<Box<dyn std::io::Read + Send + '_>> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.inner.open_blob(d)
    }
}

#[test]
fn whole_layers_are_reused_and_reruns_hit_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let out = Layout::open_or_create(t.path().join("out")).unwrap();
    // venv-export is one layer holding /opt/venv: selecting it is that layer.
    let (src, img) = source("artifacts", "venv-export-arm64");
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let sel = Selection::new(vec![SelectRule::path("/opt/venv")]);
    let o = LayerOptions {
        reuse_layers: true,
        ..opts(Compression::Gzip, 2)
    };
    let built = layer_from_image(src.as_ref(), &img, &tree, &sel, &out, &o).unwrap();
    assert!(built.reused);
    assert_eq!(built.descriptor.digest(), img.layers()[0].digest());
    assert_eq!(built.diff_id.to_string(), img.diff_ids()[0]);
    // Relocated or re-owned, it is new work.
    let moved = Selection::new(vec![SelectRule {
        dest: Some("/srv/venv".into()),
        ..SelectRule::path("/opt/venv")
    }]);
    let b2 = layer_from_image(src.as_ref(), &img, &tree, &moved, &out, &o).unwrap();
    assert!(!b2.reused);

    // The cache: a second run opens no blob at all.
    let (src, img) = source("artifacts", "cross-android-amd64");
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let counting = Counting {
        inner: src.as_ref(),
        opened: AtomicUsize::new(0),
    };
    let o = LayerOptions {
        cache: Some(t.path().join("cache")),
        ..opts(Compression::Zstd, 2)
    };
    let sel = Selection::new(vec![
        SelectRule::path("/opt/gcc-16.1.0"),
        SelectRule::path("/usr/local/cargo"),
    ]);
    let first = layer_from_image(&counting, &img, &tree, &sel, &out, &o).unwrap();
    assert!(!first.reused);
    assert!(counting.opened.load(Ordering::SeqCst) > 0);
    counting.opened.store(0, Ordering::SeqCst);
    let second = layer_from_image(&counting, &img, &tree, &sel, &out, &o).unwrap();
    assert!(second.reused);
    assert_eq!(counting.opened.load(Ordering::SeqCst), 0);
    assert_eq!(second.descriptor, first.descriptor);
    assert_eq!(second.paths, first.paths);
    // Other settings, other key.
    let gz = LayerOptions {
        compression: Compression::Gzip,
        ..o.clone()
    };
    let third = layer_from_image(&counting, &img, &tree, &sel, &out, &gz).unwrap();
    assert!(!third.reused);
    // A hit whose blob is gone from the output is a miss.
    let out2 = Layout::open_or_create(t.path().join("out2")).unwrap();
    let fourth = layer_from_image(&counting, &img, &tree, &sel, &out2, &o).unwrap();
    assert!(!fourth.reused);
    assert_eq!(fourth.descriptor, first.descriptor);
}

#[test]
fn append_a_directory_equals_umoci_unpack() {
    require("umoci");
    require("setfattr");
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("scripts");
    let long = "n".repeat(120);
    let sh = format!(
        r#"set -e
        mkdir -p '{d}/sub/{long}' '{d}/empty'
        printf '#!/bin/sh\necho hi\n' > '{d}/entrypoint.sh'
        chmod 755 '{d}/entrypoint.sh'
        ln '{d}/entrypoint.sh' '{d}/sub/hard'
        ln -s entrypoint.sh '{d}/link'
        ln -s '/{long}/dangling' '{d}/longlink'
        head -c 3000000 /dev/urandom > '{d}/sub/{long}/big.bin'
        chmod 4755 '{d}/sub/{long}/big.bin'
        mkfifo '{d}/fifo'
        setfattr -n user.ocipack -v yes '{d}/entrypoint.sh'
        chown 1001:1001 '{d}/sub'
        "#,
        d = d.display()
    );
    assert!(Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .status()
        .unwrap()
        .success());
    let out = t.path().join("out");
    let cache = t.path().join("cache");
    let run = |tag: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "append".to_string(),
            "--base".into(),
            format!("oci:{}:base-amd64", fixtures().join("base").display()),
            "--dir".into(),
            format!("{}:/usr/local/bin", d.display()),
            "--out".into(),
            format!("oci:{}:{tag}", out.display()),
            "--json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = Command::new(env!("CARGO_BIN_EXE_ocipack"))
            .args(&args)
            .env("OCIPACK_CACHE_DIR", &cache)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let a = run("a", &["--threads", "1"]);
    assert_eq!(a["layers"][0]["reused"], false);
    let b = run("b", &["--threads", "2"]);
    assert_eq!(b["layers"][0]["reused"], true, "rerun should hit the cache");
    assert_eq!(a["digest"], b["digest"]);
    let c = run("c", &["--threads", "8", "--no-cache"]);
    assert_eq!(a["digest"], c["digest"], "thread count changed the output");
    let z = run("z", &["--compression", "zstd"]);
    assert_eq!(a["layers"][0]["diff_id"], z["layers"][0]["diff_id"]);

    let rootfs = umoci_unpack(&out, "a", &t.path().join("bundle"));
    assert!(rootfs.join("etc/os-release").exists(), "base content lost");
    // umoci sets what the layer says; compare with the source dir, whose
    // mtimes we clamp: clamp them on the source too.
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -exec touch -h -d @1700000000 {{}} +",
            d.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    assert_same_tree(&rootfs.join("usr/local/bin"), &d, t.path());
    let cfg_digest = a["config"].as_str().unwrap().trim_start_matches("sha256:");
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("blobs/sha256").join(cfg_digest)).unwrap())
            .unwrap();
    let hist = cfg["history"].as_array().unwrap();
    assert_eq!(
        hist.last().unwrap()["created_by"],
        "ocipack append /usr/local/bin"
    );
    assert_eq!(hist.last().unwrap()["created"], "2023-11-14T22:13:20Z");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(cfg["rootfs"]["diff_ids"][2], a["layers"][0]["diff_id"]);

    // A bad --dir fails and leaves no tag.
    let err = ocipack_err(&[
        "append",
        "--base",
        &format!("oci:{}:base-amd64", fixtures().join("base").display()),
        "--dir",
        "/nonexistent:/x",
        "--out",
        &format!("oci:{}:bad", out.display()),
    ]);
    assert!(err.contains("nonexistent"), "{err}");
    let idx = fs::read_to_string(out.join("index.json")).unwrap();
    assert!(!idx.contains("\"bad\""));
}

#[test]
fn appending_to_a_docker_image_keeps_docker_media_types() {
    let t = tempfile::tempdir().unwrap();
    let l = Layout::open_or_create(t.path().join("l")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/hostname").unwrap();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let ld = l
        .write_blob_bytes(
            &layer,
            oci_spec::image::MediaType::Other(
                "application/vnd.docker.image.rootfs.diff.tar".into(),
            ),
        )
        .unwrap();
    let cfg = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ocipack::digest::sha256(&layer).to_string()]}});
    let cd = l
        .write_blob_bytes(
            &canonical_json(&cfg).unwrap(),
            oci_spec::image::MediaType::Other(ocipack::manifest::DOCKER_CONFIG.into()),
        )
        .unwrap();
    let man = json!({"schemaVersion": 2, "mediaType": ocipack::manifest::DOCKER_MANIFEST,
        "config": {"mediaType": ocipack::manifest::DOCKER_CONFIG, "size": cd.size(), "digest": cd.digest().to_string()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": ld.size(), "digest": ld.digest().to_string()}]});
    let raw = RawManifest::from_bytes(canonical_json(&man).unwrap(), None).unwrap();
    l.put_blob(&raw.descriptor(), &mut raw.bytes()).unwrap();
    l.set_tags(&[("d".into(), raw.descriptor())]).unwrap();
    let dir = t.path().join("add");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), b"y").unwrap();
    let out = ocipack_ok(&[
        "append",
        "--base",
        &format!("oci:{}:d", l.root().display()),
        "--dir",
        &format!("{}:/srv", dir.display()),
        "--out",
        &format!("oci:{}:d2", l.root().display()),
        "--no-cache",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = v["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(l.root().join("blobs/sha256").join(d)).unwrap()).unwrap();
    assert_eq!(m["mediaType"], ocipack::manifest::DOCKER_MANIFEST);
    assert_eq!(m["config"]["mediaType"], ocipack::manifest::DOCKER_CONFIG);
    assert_eq!(
        m["layers"][1]["mediaType"],
        ocipack::manifest::DOCKER_LAYER_GZIP
    );
    assert_eq!(m["layers"][0], man["layers"][0]);
}
