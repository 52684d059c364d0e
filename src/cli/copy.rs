use anyhow::Context;
use ocipack::copy::{copy_image, CopyOptions, CopyReport};
use ocipack::digest::parse_sha256;
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;
use ocipack::registry::{Progress, TransferLog};

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_parser = super::reference_arg)]
    pub source: Reference,
    #[arg(value_parser = super::reference_arg)]
    pub destination: Reference,
    /// Copy every platform of an index (and the index itself).
    #[arg(long, conflicts_with = "arch")]
    pub all: bool,
    /// Write the digest of the copied manifest or index (`sha256:…`, no
    /// newline) to this file, as skopeo copy --digestfile does.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<std::path::PathBuf>,
    /// Copy only this platform of an index.
    #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Do not copy the images' referrers (SBOM and provenance artifact
    /// manifests); by default they travel with the images to a layout or
    /// registry (never into an archive).
    #[arg(long)]
    pub no_referrers: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `--json` output: the copy report, the pins, and for a registry
/// destination what was pushed, skipped and mounted.
#[derive(serde::Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a CopyReport,
    /// `HOST/REPO@sha256:…` (or `oci:DIR@…`) of the copied image first,
    /// then of every other manifest stored.
    pins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer: Option<TransferLog>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let verb = if matches!(a.destination, Reference::Registry(_)) {
        "pushed"
    } else {
        "copied"
    };
    let progress = if a.json {
        Progress::hidden()
    } else {
        Progress::stderr(verb)
    };
    let src = a.registry.open_source(&a.source, &progress)?;
    // Resolve before creating anything at the destination, so a missing
    // tag leaves no empty layout behind.
    src.resolve()
        .with_context(|| format!("resolving {}", a.source))?;
    let (dst, log) = a
        .registry
        .open_sink(&a.destination, &a.source, &progress)
        .with_context(|| format!("opening {}", a.destination))?;
    // The destination's tag, else the source's (as skopeo does); a registry
    // destination named by neither tag nor digest gets `latest`.
    let mut tags: Vec<String> = a
        .destination
        .tag()
        .or(a.source.tag())
        .map(|t| vec![t.to_string()])
        .unwrap_or_default();
    if let Reference::Registry(r) = &a.destination {
        if tags.is_empty() && r.digest.is_none() {
            tags.push("latest".into());
        }
    }
    let opts = CopyOptions {
        all: a.all,
        platform: a.arch.clone(),
        tags,
        // A copy by digest without a tag must not write unreachable blobs.
        record_untagged: true,
        // Archives are handoffs to `ctr images import` / `docker load`,
        // which take every index.json entry for an image (containerd's
        // `--index-name` then fails on an artifact without a platform):
        // referrers go to layouts and registries only.
        referrers: !a.no_referrers
            && matches!(
                a.destination,
                Reference::Layout { .. } | Reference::Registry(_)
            ),
    };
    let result = copy_image(src.as_ref(), dst, &opts);
    progress.finish();
    let report = result.with_context(|| format!("copying {} to {}", a.source, a.destination))?;
    let transfer = log.and_then(|l| l.lock().ok().map(|l| l.clone()));
    if let Some(path) = &a.digestfile {
        ocipack::index::pins::write_digestfile(path, &report.digest)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut top = parse_sha256(&report.digest)?;
    if let Reference::DockerArchive { .. } = &a.destination {
        // The archive stores no manifest: pin the one it now presents.
        top = a
            .registry
            .open_source_quiet(&a.destination)?
            .resolve()
            .with_context(|| format!("reading back {}", a.destination))?
            .digest()
            .clone();
    }
    let mut pins = vec![a.destination.pin(&top)];
    if let Some(t) = &transfer {
        for p in &t.manifests {
            if !pins.contains(p) {
                pins.push(p.clone());
            }
        }
    }
    if a.json {
        return super::print_json(&Output {
            report: &report,
            pins,
            transfer,
        });
    }
    match &transfer {
        Some(t) => println!(
            "pushed {} -> {}: {} {} ({} blobs uploaded, {} already present, {} mounted, {} bytes)",
            a.source,
            a.destination,
            report.media_type,
            report.digest,
            t.pushed.len(),
            t.skipped.len(),
            t.mounted.len(),
            t.bytes_pushed
        ),
        None => println!(
            "copied {} -> {}: {} {} ({} blobs written, {} already present, {} bytes)",
            a.source,
            a.destination,
            report.media_type,
            report.digest,
            report.blobs_copied,
            report.blobs_skipped,
            report.bytes_copied
        ),
    }
    for p in pins {
        println!("{p}");
    }
    Ok(())
}
