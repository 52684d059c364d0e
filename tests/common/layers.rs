//! Hand-made images for hostile-input tests: a one-layer image from raw tar
//! bytes, and tars built byte by byte.

use std::path::Path;

use oci_spec::image::{Descriptor, MediaType};
use ocipack::digest::sha256;
use ocipack::layout::Layout;
use ocipack::manifest::canonical_json;
use serde_json::json;

/// Writes a one-layer image whose layer is `layer_tar` (uncompressed) into a
/// layout, tagged `tag`, with OCI or Docker media types.
pub fn image_with_layer(layout: &Path, tag: &str, layer_tar: &[u8], docker: bool) -> Descriptor {
    let l = Layout::open_or_create(layout).unwrap();
    let (layer_mt, cfg_mt, man_mt) = if docker {
        (
            MediaType::Other("application/vnd.docker.image.rootfs.diff.tar".into()),
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    } else {
        (
            MediaType::ImageLayer,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
        )
    };
    let layer = l.write_blob_bytes(layer_tar, layer_mt.clone()).unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Healthcheck": {"Test": ["CMD", "true"]}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar).to_string()]}
    });
    let cfg = l
        .write_blob_bytes(
            &canonical_json(&cfg).unwrap(),
            MediaType::Other(cfg_mt.into()),
        )
        .unwrap();
    let man = json!({
        "schemaVersion": 2, "mediaType": man_mt,
        "config": {"mediaType": cfg_mt, "size": cfg.size(), "digest": cfg.digest().to_string()},
        "layers": [{"mediaType": layer_mt.to_string(), "size": layer.size(), "digest": layer.digest().to_string()}]
    });
    let man = l
        .write_blob_bytes(
            &canonical_json(&man).unwrap(),
            MediaType::Other(man_mt.into()),
        )
        .unwrap();
    l.set_tags(&[(tag.to_string(), man.clone())]).unwrap();
    man
}

/// A tar built byte by byte, so hostile names are possible (the `tar`
/// crate refuses them when building).
pub fn raw_tar(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
