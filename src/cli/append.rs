use anyhow::{bail, Context};
use ocipack::copy::{copy_image, CopyOptions};
use ocipack::image::resolve_image;
use ocipack::layer::append::{append_layers, NewLayer};
use ocipack::layer::dir::split_dir_arg;
use ocipack::layer::verify::verify_layers;
use ocipack::layer::{layer_from_dir, LayerCache, LayerOptions};
use ocipack::layout::Layout;
use ocipack::manifest::Compression;
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;
use serde::Serialize;

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to add layers to.
    #[arg(long, value_parser = super::reference_arg)]
    pub base: Reference,
    /// A directory to add as one layer, below DEST (default `/`). Repeat
    /// for several layers.
    #[arg(long = "dir", value_name = "DIR[:DEST]", required = true)]
    pub dirs: Vec<String>,
    /// Where to write the new image (`oci:DIR:TAG`, `oci-archive:FILE:TAG`).
    #[arg(long, value_parser = super::reference_arg)]
    pub out: Reference,
    /// Platform of the base when it is an index.
    #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Layer compression: gzip, zstd or none.
    #[arg(long, default_value = "gzip", value_parser = compression_arg)]
    pub compression: Compression,
    /// Compression level (gzip: libdeflate 1-12, default 2; zstd: 1-19,
    /// default 3). See BENCHMARKS.md.
    #[arg(long)]
    pub level: Option<i32>,
    /// Compression threads (the output does not depend on it).
    #[arg(long)]
    pub threads: Option<usize>,
    /// uid:gid for everything added.
    #[arg(long, value_parser = owner_arg)]
    pub owner: Option<(u64, u64)>,
    /// Do not read or write the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn compression_arg(s: &str) -> Result<Compression, String> {
    s.parse().map_err(|e: ocipack::Error| e.to_string())
}

/// The recipes' `owner` syntax (`UID[:GID]`), parsed by the same function.
fn owner_arg(s: &str) -> Result<(u64, u64), String> {
    ocipack::recipe::parse_owner(s)
}

#[derive(Serialize)]
struct LayerReport {
    dir: String,
    dest: String,
    digest: String,
    diff_id: String,
    size: u64,
    entries: u64,
    reused: bool,
}

#[derive(Serialize)]
struct Report {
    base: String,
    out: String,
    digest: String,
    config: String,
    tag: Option<String>,
    layers: Vec<LayerReport>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    // Read twice (verified, then copied): a registry base is spooled.
    let src = ocipack::spool::for_reference(&a.base, a.registry.open_source_quiet(&a.base)?)?;
    let img = resolve_image(src.as_ref(), a.arch.as_ref())
        .with_context(|| format!("resolving {}", a.base))?;
    let mut opts = LayerOptions {
        compression: a.compression,
        ..LayerOptions::default()
    };
    if let Some(l) = a.level {
        match a.compression {
            Compression::Gzip if (1..=12).contains(&l) => opts.gzip_level = l as u32,
            Compression::Zstd if (1..=19).contains(&l) => opts.zstd_level = l,
            Compression::None => {}
            c => bail!("--level {l} is out of range for {c:?}"),
        }
    }
    if let Some(t) = a.threads {
        opts.threads = t.max(1);
    }
    if !a.no_cache {
        opts.cache = LayerCache::default_dir();
    }
    // Layers are built straight into a layout; other destinations get a
    // staging layout that is copied over at the end.
    let staging;
    let layout = match &a.out {
        Reference::Layout { path, .. } => {
            Layout::open_or_create(path).with_context(|| format!("opening {}", a.out))?
        }
        _ => {
            staging = ocipack::atomic::scratch_dir().context("creating a staging directory")?;
            Layout::open_or_create(staging.path().join("oci"))?
        }
    };
    // The base's blobs and diff_ids go into the new image as they are:
    // verify them first (each base layer is read once; the cache remembers
    // what was verified, see layer::verify).
    let cache = opts.cache.as_ref().map(LayerCache::new);
    verify_layers(src.as_ref(), &img, cache.as_ref())
        .with_context(|| format!("verifying the layers of {}", a.base))?;
    let mut new_layers = Vec::new();
    let mut reports = Vec::new();
    for arg in &a.dirs {
        let (dir, dest) = split_dir_arg(arg);
        if !dir.is_dir() {
            bail!("--dir {arg}: {} is not a directory", dir.display());
        }
        let built = layer_from_dir(&dir, &dest, a.owner, &layout, &opts)
            .with_context(|| format!("building a layer from {}", dir.display()))?;
        reports.push(LayerReport {
            dir: dir.display().to_string(),
            dest: dest.clone(),
            digest: built.descriptor.digest().to_string(),
            diff_id: built.diff_id.to_string(),
            size: built.descriptor.size(),
            entries: built.entries,
            reused: built.reused,
        });
        new_layers.push(NewLayer {
            layer: built,
            created_by: format!("ocipack append {dest}"),
        });
    }
    let appended = append_layers(
        src.as_ref(),
        &img,
        &new_layers,
        &layout,
        opts.source_date_epoch,
    )
    .with_context(|| format!("writing the new image into {}", a.out))?;
    let tag = a.out.tag().map(str::to_string);
    match &a.out {
        Reference::Layout { .. } => match &tag {
            Some(t) => layout.set_tags(&[(t.clone(), appended.descriptor.clone())])?,
            None => layout.update_index(|i| i.add_untagged(&appended.descriptor))?,
        },
        other => {
            let staged = Reference::Layout {
                path: layout.root().to_path_buf(),
                selector: Some(ocipack::reference::Selector::Digest(
                    appended.descriptor.digest().clone(),
                )),
            };
            let s = a.registry.open_source_quiet(&staged)?;
            let progress = super::registry_args::ProgressScope::new("pushed", a.json);
            let (sink, _) = a.registry.open_sink(other, &a.base, &progress.0)?;
            copy_image(
                s.as_ref(),
                sink,
                &CopyOptions {
                    all: false,
                    platform: None,
                    tags: tag.clone().into_iter().collect(),
                    record_untagged: true,
                    referrers: false,
                },
            )
            .with_context(|| format!("copying the new image to {other}"))?;
        }
    }
    let report = Report {
        base: a.base.to_string(),
        out: a.out.to_string(),
        digest: appended.descriptor.digest().to_string(),
        config: appended.config.digest().to_string(),
        tag,
        layers: reports,
    };
    if a.json {
        return super::print_json(&report);
    }
    for l in &report.layers {
        println!(
            "layer {} ({} entries, {} bytes{}) from {} at {}",
            l.digest,
            l.entries,
            l.size,
            if l.reused { ", cached" } else { "" },
            l.dir,
            l.dest
        );
    }
    println!("{} {}", report.out, report.digest);
    Ok(())
}
