//! The package-style path, for `benches/compare.sh`: selected trees out of
//! an artifact image become one new layer on top of a base image. (The real
//! `ocipack package` lives elsewhere; this drives the same layer engine.)
//!
//! ```text
//! package_path --from REF --base REF --out oci:DIR:TAG [--select /SRC[:/DEST]]...
//!              [--compression gzip|zstd|none] [--threads N] [--cache DIR]
//! ```
//! Prints the manifest digest and what the run did.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use ocipack::image::resolve_image;
use ocipack::layer::append::{append_layers, NewLayer};
use ocipack::layer::{
    layer_from_image, LayerCache, LayerOptions, MergedTree, SelectRule, Selection,
};
use ocipack::layout::Layout;
use ocipack::reference::Reference;
use ocipack::transport::open_source_with;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut from, mut base, mut out, mut cache) = (None, None, None, None);
    let mut rules = Vec::new();
    let mut opts = LayerOptions {
        reuse_layers: false,
        ..LayerOptions::default()
    };
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--from" => from = Some(val()?),
            "--base" => base = Some(val()?),
            "--out" => out = Some(val()?),
            "--cache" => cache = Some(val()?),
            "--threads" => opts.threads = val()?.parse()?,
            "--compression" => opts.compression = val()?.parse()?,
            "--select" => {
                let v = val()?;
                let (s, d) = match v.split_once(":/") {
                    Some((s, d)) => (s.to_string(), Some(format!("/{d}"))),
                    None => (v, None),
                };
                rules.push(SelectRule {
                    dest: d,
                    ..SelectRule::path(s)
                });
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let (Some(from), Some(base), Some(out)) = (from, base, out) else {
        bail!("--from, --base and --out are required");
    };
    let out_ref: Reference = out.parse()?;
    let Reference::Layout { path, .. } = &out_ref else {
        bail!("--out must be an oci: layout");
    };
    let layout = Layout::open_or_create(path)?;
    let cache = cache.map(LayerCache::new);
    opts.cache = cache.as_ref().map(|c| c.dir().to_path_buf());

    let t0 = Instant::now();
    let src = open_source_with(&from.parse()?, &Default::default())?;
    let img = resolve_image(src.as_ref(), None)?;
    let tree = MergedTree::load_cached(src.as_ref(), &img, cache.as_ref())?;
    let t_tree = t0.elapsed();
    let built = layer_from_image(
        src.as_ref(),
        &img,
        &tree,
        &Selection::new(rules),
        &layout,
        &opts,
    )?;
    let t_layer = t0.elapsed();
    let base_src = open_source_with(&base.parse()?, &Default::default())?;
    let base_img = resolve_image(base_src.as_ref(), None)?;
    let entries = built.entries;
    let reused = built.reused;
    let appended = append_layers(
        base_src.as_ref(),
        &base_img,
        &[NewLayer {
            layer: built,
            created_by: "package_path bench".into(),
        }],
        &layout,
        opts.source_date_epoch,
    )?;
    if let Some(tag) = out_ref.tag() {
        layout.set_tags(&[(tag.to_string(), appended.descriptor.clone())])?;
    }
    eprintln!(
        "tree {:.2}s ({} entries), layer {:.2}s ({entries} entries, reused {reused}), total {:.2}s",
        t_tree.as_secs_f64(),
        tree.len(),
        (t_layer - t_tree).as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    println!("{}", appended.descriptor.digest());
    Ok(())
}
