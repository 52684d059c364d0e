//! Images written by other tools (issue 10): what ocipack makes of them
//! must be what umoci makes of them. The corpus is generated at test time
//! by tests/corpus/gen.sh (umoci, buildah, skopeo, GNU tar, bsdtar,
//! Python's tarfile); nothing is committed as blobs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{require, run_ok};
use common::trees::{assert_same_tree, fingerprint};
use common::{ocipack_err, ocipack_ok, repo};
use ocipack::image::resolve_image;
use ocipack::layer::{
    layer_from_image, ImagePath, LayerOptions, MergedTree, SelectRule, Selection,
};
use ocipack::layout::Layout;
use ocipack::manifest::{canonical_json, Compression, RawManifest};
use ocipack::reference::Reference;
use ocipack::transport::open_source_with;
use serde_json::json;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs tests/corpus/gen.sh for `cases` into `out`.
fn generate(out: &Path, cases: &[&str]) {
    require("python3");
    let st = Command::new("bash")
        .arg(repo().join("tests/corpus/gen.sh"))
        .arg(out)
        .args(cases)
        .output()
        .expect("running tests/corpus/gen.sh");
    assert!(
        st.status.success(),
        "tests/corpus/gen.sh {cases:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", s(layout)),
            &s(bundle),
        ],
    );
    bundle.join("rootfs")
}

/// `ocipack unpack` of `reference` equals `umoci unpack` of `layout:tag`.
fn unpack_like_umoci(reference: &str, layout: &Path, tag: &str, t: &Path) -> PathBuf {
    require("umoci");
    require("getfattr");
    let ours = t.join("ours");
    ocipack_ok(&["unpack", reference, &s(&ours)]);
    let theirs = umoci_unpack(layout, tag, &t.join("bundle"));
    assert_same_tree(&ours, &theirs, t);
    ours
}

#[test]
fn root_entries_and_absolute_names_unpack_like_umoci() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["py-names"]);
    let l = t.path().join("py-names");
    let r = format!("oci:{}:t", s(&l));
    let ours = unpack_like_umoci(&r, &l, "t", t.path());
    let fp = fingerprint(&ours);
    // `/etc/hostname` is `etc/hostname`; `usr/../etc/motd` is `etc/motd`;
    // the hard links named absolutely share the inode of their target.
    for want in [
        "etc/hostname f 644 0 0  2 7",
        "etc/hostname.link f 644 0 0  2 7",
        "etc/hosts f 644 7 8  1 20",
        "etc/motd f 644 0 0  1 8",
        "usr/bin d 711",
        "usr/bin/tool f 755 0 0  2 4",
        "bin l 777 0 0 usr/bin 1",
    ] {
        assert!(fp.contains(want), "{want} missing in\n{fp}");
    }
    // The root's own entry (`/`, then `./`) is applied as umoci does.
    let ocipack_root = std::fs::metadata(&ours).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(ocipack_root.permissions().mode() & 0o7777, 0o755);
    ocipack_ok(&["inspect", &r]);
}

#[test]
fn an_escaping_name_is_refused_naming_the_input_it_came_from() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["py-escape"]);
    let base = format!("oci:{}:t", s(&t.path().join("py-escape")));
    let err = ocipack_err(&["unpack", &base, &s(&t.path().join("root"))]);
    assert!(
        err.contains("refusing entry \"etc/../../escaped\"") && err.contains("'..'"),
        "{err}"
    );
    assert!(!t.path().join("escaped").exists());
    // In a step the error says which input the layer belongs to.
    let art = format!(
        "oci:{}:cross-android-amd64",
        s(&common::fixtures().join("artifacts"))
    );
    let err = ocipack_err(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &s(&repo().join("layouts/fixtures/package.toml")),
        "--out",
        &format!("oci:{}:x", s(&t.path().join("out"))),
    ]);
    assert!(
        err.contains(&format!("base {base}: layer sha256:")) && err.contains("refusing entry"),
        "{err}"
    );
    // ...and for an artifact, `input artifact (REF)`.
    let good_base = format!("oci:{}:base", s(&common::fixtures().join("base")));
    let err = ocipack_err(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &good_base,
        "--artifact",
        &base,
        "--recipe",
        &s(&repo().join("layouts/fixtures/package.toml")),
        "--out",
        &format!("oci:{}:x", s(&t.path().join("out"))),
    ]);
    assert!(
        err.contains(&format!("input artifact ({base}): layer sha256:"))
            && err.contains("refusing entry"),
        "{err}"
    );
}

/// One image of the corpus and how to check it.
struct Case<'a> {
    /// What ocipack reads (`oci:DIR:TAG`, `oci-archive:FILE:TAG`).
    reference: String,
    /// The OCI layout and tag umoci unpacks to give the expected tree
    /// (the image itself, or an OCI-typed, uncompressed twin where umoci
    /// 0.4.7 cannot read the image: zstd, Docker media types).
    umoci: Option<(PathBuf, &'a str)>,
    /// Otherwise, a directory holding the expected tree.
    expected: Option<PathBuf>,
    /// Whether umoci can read an image appended to this one (it keeps the
    /// base's media types and compression).
    umoci_reads_append: bool,
    /// Docker media types: skopeo 1.9 writes them into `oci:` layouts but
    /// reads only OCI-typed index entries back ("no descriptor found"), so
    /// skopeo is not asked to read these (ocipack and umoci's twin are).
    docker: bool,
    /// Whether containerd can read an image appended to this one.
    containerd: bool,
}

fn case(dir: &Path, layout: &str, tag: &'static str) -> Case<'static> {
    Case {
        reference: format!("oci:{}:{tag}", s(&dir.join(layout))),
        umoci: Some((dir.join(layout), tag)),
        expected: None,
        umoci_reads_append: true,
        docker: false,
        containerd: true,
    }
}

/// The merged view (what `package` selects from) rewritten as one new
/// layer, as a one-layer OCI image in `dir` tagged `t`: duplicates, a
/// directory after its children, whiteouts and sparse files resolved the
/// way unpack resolves them, content streamed through the layer writer.
fn whole_tree_image(reference: &str, dir: &Path) {
    let r: Reference = reference.parse().unwrap();
    let src = open_source_with(&r, &Default::default()).unwrap();
    let img = resolve_image(src.as_ref(), None).unwrap();
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    let out = Layout::open_or_create(dir).unwrap();
    let opts = LayerOptions {
        compression: Compression::Gzip,
        threads: 2,
        source_date_epoch: None,
        reuse_layers: false,
        cache: None,
        ..LayerOptions::default()
    };
    let sel = Selection::new(vec![SelectRule::path("/")]);
    let l = layer_from_image(src.as_ref(), &img, &tree, &sel, &out, &opts).unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]}
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
        "layers": [{"mediaType": l.descriptor.media_type().to_string(),
                    "size": l.descriptor.size(), "digest": l.descriptor.digest().to_string()}]
    });
    let raw = RawManifest::from_bytes(canonical_json(&man).unwrap(), None).unwrap();
    let d = raw.descriptor();
    out.put_blob(&d, &mut raw.bytes()).unwrap();
    out.set_tags(&[("t".to_string(), d)]).unwrap();
}

/// unpack equals umoci's; the merged view rewritten as one layer (what
/// `package` does with a selection) is read by umoci as the same tree;
/// inspect and copy work; an append on top is read
/// back by umoci (unpack) and skopeo (inspect, copy).
fn check(c: &Case, t: &Path) -> String {
    require("umoci");
    require("skopeo");
    require("getfattr");
    let what = &c.reference;
    let t = t.join(
        what.chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect::<String>()
            .trim_start_matches('_'),
    );
    std::fs::create_dir_all(&t).unwrap();
    ocipack_ok(&["inspect", what]);
    let ours = t.join("ours");
    ocipack_ok(&["unpack", what, &s(&ours)]);
    let fp = fingerprint(&ours);
    assert!(!fp.is_empty(), "{what}: empty tree");
    if let Some((l, tag)) = &c.umoci {
        let theirs = umoci_unpack(l, tag, &t.join("bundle"));
        assert_same_tree(&ours, &theirs, &t);
    }
    if let Some(e) = &c.expected {
        assert_same_tree(&ours, e, &t);
    }
    whole_tree_image(what, &t.join("whole"));
    let whole = umoci_unpack(&t.join("whole"), "t", &t.join("whole-bundle"));
    assert_same_tree(&whole, &ours, &t);
    // copy keeps the tree.
    let copy = format!("oci:{}:t", s(&t.join("copy")));
    ocipack_ok(&["copy", what, &copy]);
    ocipack_ok(&["unpack", &copy, &s(&t.join("copy-tree"))]);
    assert_eq!(fingerprint(&t.join("copy-tree")), fp, "{what}: copy");
    if !c.docker {
        run_ok("skopeo", &["inspect", &copy]);
    }
    // append: read back by umoci and skopeo.
    let extra = t.join("extra");
    std::fs::create_dir_all(extra.join("bin")).unwrap();
    std::fs::write(extra.join("bin/added"), b"appended\n").unwrap();
    let app_dir = t.join("app");
    let app = format!("oci:{}:t", s(&app_dir));
    ocipack_ok(&[
        "append",
        "--base",
        what,
        "--dir",
        &format!("{}:/corpus-extra", s(&extra)),
        "--out",
        &app,
    ]);
    let app_tree = t.join("app-tree");
    if c.docker {
        ocipack_ok(&["unpack", &app, &s(&app_tree)]);
    } else {
        run_ok("skopeo", &["inspect", &app]);
        let sk = format!("oci:{}:t", s(&t.join("skopeo-copy")));
        run_ok("skopeo", &["copy", "-q", &app, &sk]);
        ocipack_ok(&["unpack", &sk, &s(&app_tree)]);
    }
    let app_fp = fingerprint(&app_tree);
    assert!(app_fp.contains("corpus-extra/bin/added f"), "{app_fp}");
    for line in fp.lines() {
        assert!(app_fp.contains(line), "{what}: append lost {line:?}");
    }
    if c.umoci_reads_append {
        let theirs = umoci_unpack(&app_dir, "t", &t.join("app-bundle"));
        assert_same_tree(&app_tree, &theirs, &t);
    }
    if c.containerd {
        containerd_reads(&app, &app_tree, &t);
    }
    fp
}

#[test]
fn umoci_images() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["umoci"]);
    for tag in ["root", "sub", "repack"] {
        let fp = check(&case(t.path(), "umoci", tag), t.path());
        if tag == "repack" {
            // umoci's whiteouts: deleted names gone, a recreated directory
            // holds only its new content.
            assert!(
                !fp.contains("etc/app") && !fp.contains("usr/bin/hi "),
                "{fp}"
            );
            assert!(
                fp.contains("var/empty/new") && !fp.contains(".keep"),
                "{fp}"
            );
        }
    }
}

#[test]
fn buildah_images() {
    require("buildah");
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["buildah"]);
    for tag in ["one", "two"] {
        let fp = check(&case(t.path(), "buildah", tag), t.path());
        // buildah's whiteouts (second commit) hide what the first wrote.
        assert_eq!(fp.contains("etc/app/conf"), tag == "one", "{fp}");
    }
}

#[test]
fn skopeo_copies() {
    require("zstd");
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["umoci", "skopeo"]);
    let d = t.path();
    check(&case(d, "skopeo-plain", "t"), d);
    // umoci 0.4.7 reads no zstd: the expected tree is umoci's unpack of the
    // uncompressed copy, and an append keeps zstd base layers.
    check(
        &Case {
            umoci: Some((d.join("skopeo-plain"), "t")),
            umoci_reads_append: false,
            ..case(d, "skopeo-zstd", "t")
        },
        d,
    );
    check(
        &Case {
            reference: format!("oci-archive:{}:t", s(&d.join("skopeo-archive.tar"))),
            umoci: Some((d.join("umoci"), "repack")),
            ..case(d, "umoci", "repack")
        },
        d,
    );
    check(
        &Case {
            umoci: Some((d.join("umoci"), "repack")),
            umoci_reads_append: false,
            docker: true,
            ..case(d, "skopeo-v2s2", "t")
        },
        d,
    );
}

#[test]
fn tar_writers() {
    require("bsdtar");
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    generate(d, &["gnutar", "bsdtar", "py-layers", "py-names"]);
    for tag in ["gnu", "posix", "ustar"] {
        let fp = check(&case(d, "gnutar", tag), d);
        // `tar -C DIR .` names entries `./x`; the cross-directory hard
        // link shares its inode; GNU tar keeps xattrs only with --xattrs.
        assert!(
            fp.contains("opt/tool/lib-hardlink.so f 644 0 0  2 70000"),
            "{fp}"
        );
        assert!(fp.contains("usr/bin/hi f 4755 0 0  1 18"), "{fp}");
        assert_eq!(fp.contains("user.corpus"), tag == "posix", "{tag}: {fp}");
        assert_eq!(fp.contains("mmmmmmmmmm"), tag != "ustar", "{tag}");
    }
    for tag in ["pax", "gnu"] {
        let fp = check(&case(d, "bsdtar", tag), d);
        assert!(fp.contains("opt/tool d 755 1001 1002"), "{fp}");
    }
    let fp = check(
        &Case {
            // A hard link to a file of a lower layer: containerd's overlayfs
            // snapshotter applies each layer in its own upper directory,
            // where the target does not exist ("link ...: no such file").
            // umoci and ocipack link to the lower file. (The link's header
            // also says 0644 for a 0755 file: containerd would chmod the
            // inode to 0644, umoci and ocipack keep the file's mode.)
            containerd: false,
            ..case(d, "py-layers", "t")
        },
        d,
    );
    // Duplicates: the later entry wins (`dup` is layer 2's, `dupdir` the
    // directory listed after the file); a directory listed after its
    // children keeps its own mode and owner; whiteout and opaque applied;
    // the hard link into layer 1 shares the file's inode and mode.
    for want in [
        "a/b d 750 5 6",
        "a/b/c d 700 0 0",
        "dup f 644 0 0  1 6",
        "dupdir d 711",
        "bin/libx-hardlink f 755 0 0  2 12",
        "keep/new f",
    ] {
        assert!(fp.contains(want), "{want} missing in\n{fp}");
    }
    assert!(!fp.contains("gone") && !fp.contains("keep/old"), "{fp}");
    check(&case(d, "py-names", "t"), d);
    // Docker schema2 media types: umoci 0.4.7 reads only OCI ones, so the
    // expected tree is its unpack of the OCI twin (the same layer tars).
    for tag in ["gnu", "posix"] {
        check(
            &Case {
                umoci: Some((d.join("gnutar"), tag)),
                umoci_reads_append: false,
                docker: true,
                ..case(d, "gnutar-docker", tag)
            },
            d,
        );
    }
}

/// A merged-/usr base (`lib -> usr/lib`) and a layer holding `lib/x` with
/// no `lib/` entry of its own: containerd (`fs.RootPath` on the parent) and
/// umoci (securejoin) write it to `usr/lib/x`, and so does ocipack, in
/// unpack and in the merged view `package` selects from. Links pointing out
/// of the root (`/opt`, `../../../..`) are resolved inside it.
#[test]
fn a_layer_written_through_merged_usr_symlinks_lands_where_umoci_puts_it() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), &["py-merged-usr"]);
    let r = format!("oci:{}:t", s(&t.path().join("py-merged-usr")));
    // containerd disagrees with itself here, on purpose not followed: its
    // overlayfs snapshotter applies each layer into an empty upper
    // directory (core/diff/apply/apply_linux.go), where `lib -> usr/lib` is
    // not seen, so `lib/` becomes a directory shadowing the base's link;
    // its native snapshotter applies onto the whole tree and agrees with
    // umoci. ocipack follows umoci; what it writes itself (the merged view
    // rewritten as a layer, below) names `usr/lib/x` and every reader agrees.
    let mut c = case(t.path(), "py-merged-usr", "t");
    c.containerd = false;
    let fp = check(&c, t.path());
    for want in [
        "usr/lib/x f 644",
        "usr/lib/x.link f 644",
        "usr/lib/sub/z f 644",
        "usr/bin/tool f 755",
        "opt/a f 644",
        "top f 644",
        "lib l 777 0 0 usr/lib",
    ] {
        assert!(fp.contains(want), "{want} missing in\n{fp}");
    }
    // Whiteouts and opaque markers named through the link hide what the
    // link leads to.
    assert!(!fp.contains("usr/lib/old") && !fp.contains("sub/y"), "{fp}");
    // The merged view (package, verify, guards) keys them the same way.
    let src = open_source_with(&r.parse::<Reference>().unwrap(), &Default::default()).unwrap();
    let img = resolve_image(src.as_ref(), None).unwrap();
    let tree = MergedTree::load(src.as_ref(), &img).unwrap();
    for p in [
        "/usr/lib/x",
        "/usr/lib/x.link",
        "/usr/bin/tool",
        "/opt/a",
        "/top",
    ] {
        assert!(
            tree.get(&ImagePath::from(p)).is_some(),
            "{p} not in the merged view"
        );
    }
    assert!(tree.get(&ImagePath::from("/usr/lib/old")).is_none());
    assert!(tree.get(&ImagePath::from("/usr/lib/sub/y")).is_none());
    assert!(tree.get(&ImagePath::from("/usr/lib/sub/z")).is_some());
    let x = tree
        .read_file(src.as_ref(), &ImagePath::from("/lib/x"), 16)
        .unwrap();
    assert_eq!(x, b"x\n");
    // The merged view as one layer: containerd (overlayfs) reads it as the
    // same tree as ocipack's unpack of the source and umoci's.
    let d = t.path().join("rewritten");
    std::fs::create_dir_all(&d).unwrap();
    whole_tree_image(&r, &d.join("whole"));
    let ours = d.join("ours");
    ocipack_ok(&["unpack", &r, &s(&ours)]);
    containerd_reads(&format!("oci:{}:t", s(&d.join("whole"))), &ours, &d);
    // `package` selects through the links (`/lib/x` is `usr/lib/x`), its
    // guards see `/bin/sh` through `bin -> /usr/bin` (the over layer wrote
    // it as `bin/sh`), `verify` agrees, and umoci reads the result as ocipack.
    let recipe = d.join("merged-usr.toml");
    std::fs::write(
        &recipe,
        r#"[recipe]
name = "merged-usr"
kind = "package"
description = "payload selected through a merged-/usr symlink"
parent_stage = "base"
build_arch = "amd64"

[inputs.artifact]
description = "py-merged-usr"
platform = "any"

[[copy]]
layer = "payload"
paths = ["/lib/x", "/lib/sub/z", "/bin/tool"]

[guards.compiler]
links = []
"#,
    )
    .unwrap();
    let out = format!("oci:{}:p", s(&d.join("pkg")));
    ocipack_ok(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &r,
        "--artifact",
        &r,
        "--recipe",
        &s(&recipe),
        "--out",
        &out,
    ]);
    ocipack_ok(&["verify", &out, "--arch", "amd64", "--recipe", &s(&recipe)]);
    let trees = d.join("pkg-trees");
    std::fs::create_dir_all(&trees).unwrap();
    let pkg = unpack_like_umoci(&out, &d.join("pkg"), "p", &trees);
    for p in ["usr/lib/x", "usr/lib/sub/z", "usr/bin/tool", "usr/bin/sh"] {
        assert!(pkg.join(p).is_file(), "{p} missing from the package");
    }
    assert!(pkg.join("lib").symlink_metadata().unwrap().is_symlink());
}

/// The issue's first failure: a base handed over as a rootfs and inserted
/// at `/` by umoci (its layer starts with a `/` entry) must package,
/// verify and be indexed by `manifest`, and the result must be read by
/// umoci, skopeo and containerd.
#[test]
fn a_base_written_by_umoci_insert_at_root_packages_and_verifies() {
    require("umoci");
    require("skopeo");
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let st = Command::new("bash")
        .arg(repo().join("tests/corpus/gen.sh"))
        .arg(d)
        .arg("umoci-base")
        .env("FIXTURES", common::fixtures())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let base = format!("oci:{}:t", s(&d.join("umoci-base")));
    check(&case(d, "umoci-base", "t"), d);
    let art = format!(
        "oci:{}:cross-android-amd64",
        s(&common::fixtures().join("artifacts"))
    );
    let recipe = s(&repo().join("layouts/fixtures/package.toml"));
    let out = format!("oci:{}:package-amd64", s(&d.join("pkg")));
    ocipack_ok(&[
        "package",
        "--arch",
        "amd64",
        "--base",
        &base,
        "--artifact",
        &art,
        "--recipe",
        &recipe,
        "--out",
        &out,
    ]);
    ocipack_ok(&["verify", &out, "--arch", "amd64", "--recipe", &recipe]);
    run_ok("skopeo", &["inspect", &out]);
    // ... and `manifest` indexes it (children `<tag>-<arch>`), behind the
    // gates; skopeo reads the index and picks the amd64 image from it.
    let index = format!("oci:{}:package", s(&d.join("pkg")));
    ocipack_ok(&["manifest", "--image", &index, "--target-arches", "amd64"]);
    let raw = run_ok("skopeo", &["inspect", "--raw", &index]);
    assert!(raw.contains("\"architecture\":\"amd64\""), "{raw}");
    run_ok("skopeo", &["inspect", "--override-arch", "amd64", &index]);
    let ours = d.join("pkg-ours");
    ocipack_ok(&["unpack", &out, &s(&ours)]);
    let theirs = umoci_unpack(&d.join("pkg"), "package-amd64", &d.join("pkg-bundle"));
    assert_same_tree(&ours, &theirs, d);
    assert!(ours.join("usr/bin/cc").symlink_metadata().is_ok());
    // containerd applies the layers (`ctr images import` unpacks them into
    // its snapshotter) to the same tree.
    containerd_reads(&out, &ours, d);
}

/// GNU tar's sparse files. PAX 1.0 (`--format=posix`) is expanded as
/// umoci (Go's archive/tar) expands it. The old GNU format's typeflag `S`
/// umoci 0.4.7 refuses ("unknown typeflag"), while ocipack expands it: on
/// purpose, since GNU tar writes it by default with `--sparse`; the
/// expected tree is GNU tar's own extraction.
#[test]
fn sparse_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    generate(d, &["sparse"]);
    check(&case(d, "sparse", "pax"), d);
    check(
        &Case {
            umoci: None,
            expected: Some(d.join("sparse-expected")),
            umoci_reads_append: false,
            // containerd's applier also stops at typeflag S ("unhandled
            // tar header type").
            containerd: false,
            ..case(d, "sparse", "gnu")
        },
        d,
    );
    let fp = fingerprint(&d.join("sparse-expected"));
    assert!(fp.contains("d/holes f 644 0 0  1 3145728"), "{fp}");
}

/// containerd (a private daemon) imports `reference` (unpacking its layers
/// with its own applier) and mounts it: the tree must be `ours`.
fn containerd_reads(reference: &str, ours: &Path, d: &Path) {
    let ctrd = common::containerd::Containerd::start();
    let archive = d.join("ctr.tar");
    ocipack_ok(&["copy", reference, &format!("oci-archive:{}:t", s(&archive))]);
    ctrd.import(&archive, "ocipack.test/corpus:t");
    let mnt = d.join("ctr-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    ctrd.ctr_ok(&["images", "mount", "ocipack.test/corpus:t", &s(&mnt)]);
    // overlayfs reports a link count of 1 for directories: not compared.
    let fp = |p: &Path| {
        fingerprint(p)
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(' ').collect();
                if f.len() == 8 && f[1] == "d" {
                    f[6] = "-";
                }
                f.join(" ") + "\n"
            })
            .collect::<String>()
    };
    let (theirs, ours) = (fp(&mnt), fp(ours));
    ctrd.ctr_ok(&["images", "unmount", &s(&mnt)]);
    if theirs != ours {
        std::fs::write(d.join("ctr.txt"), &theirs).unwrap();
        std::fs::write(d.join("ours.txt"), &ours).unwrap();
        let diff = Command::new("diff")
            .arg(d.join("ctr.txt"))
            .arg(d.join("ours.txt"))
            .output()
            .unwrap();
        panic!(
            "{reference}: containerd's tree (<) differs from ours (>):\n{}",
            String::from_utf8_lossy(&diff.stdout)
        );
    }
}
