//! The layer reader (plain tar, gzip, zstd) under hostile bytes.
//!
//! Invariants, not just "no panic":
//! - unpack never writes outside its target directory, whatever the layer
//!   says (a sentinel tree beside the target must stay as it was), and a
//!   finished unpack leaves nothing but the target beside it;
//! - a layer that reads without error round-trips through the canonical
//!   writer: the layer written from its merged tree reads back to the same
//!   paths, kinds, modes, owners, sizes and link targets (plus, at most, the
//!   parent directories the tar left implicit).
//!
//! The first byte picks how the rest is presented: as a plain tar, as a tar
//! gzip- or zstd-compressed here (so the fuzzer works on tar structure), or
//! as raw bytes that claim to be gzip or zstd (so it works on the decoders).
#![no_main]
use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use oci_spec::image::{Descriptor, MediaType};
use ocipack::digest::sha256;
use ocipack::image::resolve_image;
use ocipack::layer::{layer_from_image, LayerOptions, MergedTree, SelectRule, Selection};
use ocipack::layout::Layout;
use ocipack::manifest::{canonical_json, Compression};
use ocipack::reference::Selector;
use ocipack::transport::LayoutSource;
use ocipack::unpack::{unpack_image, UnpackOptions};
use serde_json::json;

fn image(layout: &Layout, blob: &[u8], mt: MediaType, diff_id: &str) -> Descriptor {
    let layer = layout.write_blob_bytes(blob, mt.clone()).expect("layer blob");
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let cfg = layout
        .write_blob_bytes(&canonical_json(&cfg).unwrap(), MediaType::ImageConfig)
        .expect("config blob");
    let man = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": [{"mediaType": mt.to_string(), "size": layer.size(),
                    "digest": layer.digest().to_string()}]
    });
    let man = layout
        .write_blob_bytes(&canonical_json(&man).unwrap(), MediaType::ImageManifest)
        .expect("manifest blob");
    layout.set_tags(&[("t".into(), man.clone())]).expect("tag");
    man
}

fn source(layout: &Layout) -> LayoutSource {
    LayoutSource {
        layout: layout.clone(),
        selector: Some(Selector::Tag("t".into())),
    }
}

/// What the round trip must keep of an entry.
fn summary(t: &MergedTree) -> Vec<String> {
    t.iter()
        .map(|e| {
            format!(
                "{} {:?} {:o} {}:{} {} {:?}",
                e.path,
                e.kind,
                e.mode & 0o7777,
                e.uid,
                e.gid,
                e.size,
                e.link
            )
        })
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let (blob, mt, diff_id) = match mode % 5 {
        0 => (body.to_vec(), MediaType::ImageLayer, sha256(body).to_string()),
        1 => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            (e.finish().unwrap(), MediaType::ImageLayerGzip, sha256(body).to_string())
        }
        2 => (
            zstd::encode_all(body, 1).unwrap(),
            MediaType::ImageLayerZstd,
            sha256(body).to_string(),
        ),
        3 => (body.to_vec(), MediaType::ImageLayerGzip, sha256(b"").to_string()),
        _ => (body.to_vec(), MediaType::ImageLayerZstd, sha256(b"").to_string()),
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::open_or_create(tmp.path().join("layout")).expect("layout");
    image(&layout, &blob, mt, &diff_id);
    let src = source(&layout);
    let img = resolve_image(&src, None).expect("the image we wrote resolves");

    // Unpack: confined to its target.
    let work = tmp.path().join("work");
    fs::create_dir_all(work.join("outside")).unwrap();
    fs::write(work.join("outside/sentinel"), b"keep").unwrap();
    let target = work.join("root");
    let opts = UnpackOptions {
        preserve_ownership: false,
        devices: false,
    };
    let _ = unpack_image(&src, &img, &target, &opts);
    let beside = listing(&work);
    assert!(
        beside.iter().all(|n| n == "outside" || n == "root"),
        "unpack left {beside:?} beside its target"
    );
    assert_eq!(listing(&work.join("outside")), ["sentinel"], "wrote outside the target");
    assert_eq!(fs::read(work.join("outside/sentinel")).unwrap(), b"keep");

    // Round trip through the canonical writer.
    let Ok(tree) = MergedTree::load_with_threads(&src, &img, 1) else {
        return;
    };
    if tree.is_empty() {
        return;
    }
    let out = Layout::open_or_create(tmp.path().join("out")).expect("out layout");
    let lopts = LayerOptions {
        compression: Compression::Gzip,
        threads: 1,
        source_date_epoch: None,
        reuse_layers: false,
        ..LayerOptions::default()
    };
    let sel = Selection::new(vec![SelectRule::path("/")]);
    let built = match layer_from_image(&src, &img, &tree, &sel, &out, &lopts) {
        Ok(b) => b,
        // The tree read fine but its contents did not (a hard link to a
        // file the layer never had...): an error, never a panic.
        Err(_) => return,
    };
    let blob = fs::read(out.blob_path(built.descriptor.digest()).unwrap()).unwrap();
    let back = Layout::open_or_create(tmp.path().join("back")).expect("back layout");
    image(
        &back,
        &blob,
        built.descriptor.media_type().clone(),
        &built.diff_id.to_string(),
    );
    let bsrc = source(&back);
    let bimg = resolve_image(&bsrc, None).expect("rewritten image resolves");
    let again = MergedTree::load_with_threads(&bsrc, &bimg, 1)
        .expect("a layer written by the canonical writer reads back");
    // Every entry comes back as it was; the writer may add only the parent
    // directories a tar left implicit (`usr/` for `usr/x/long`).
    let before = summary(&tree);
    let after = summary(&again);
    for e in &before {
        assert!(after.contains(e), "canonical round trip lost or changed {e:?}\nafter: {after:?}");
    }
    let kept: std::collections::BTreeSet<_> = tree.iter().map(|e| e.path.clone()).collect();
    for e in again.iter().filter(|e| !kept.contains(&e.path)) {
        assert!(
            e.kind == ocipack::layer::FileKind::Dir
                && kept.iter().any(|k| k.starts_with(&e.path)),
            "canonical round trip added {:?}, which is not an implicit parent",
            e.path
        );
    }
});
