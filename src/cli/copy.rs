use anyhow::Context;
use ocipack::copy::{copy_image, CopyOptions};
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;
use ocipack::transport::{open_sink, open_source};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_parser = super::reference_arg)]
    pub source: Reference,
    #[arg(value_parser = super::reference_arg)]
    pub destination: Reference,
    /// Copy every platform of an index (and the index itself).
    #[arg(long, conflicts_with = "arch")]
    pub all: bool,
    /// Copy only this platform of an index.
    #[arg(long, value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let src = open_source(&a.source).with_context(|| format!("opening {}", a.source))?;
    let dst = open_sink(&a.destination).with_context(|| format!("opening {}", a.destination))?;
    // The destination's tag, else the source's (as skopeo does).
    let tags: Vec<String> = a
        .destination
        .tag()
        .or(a.source.tag())
        .map(|t| vec![t.to_string()])
        .unwrap_or_default();
    let opts = CopyOptions {
        all: a.all,
        platform: a.arch.clone(),
        tags,
    };
    let report = copy_image(src.as_ref(), dst, &opts)
        .with_context(|| format!("copying {} to {}", a.source, a.destination))?;
    if a.json {
        return super::print_json(&report);
    }
    println!(
        "copied {} -> {}: {} {} ({} blobs written, {} already present, {} bytes)",
        a.source,
        a.destination,
        report.media_type,
        report.digest,
        report.blobs_copied,
        report.blobs_skipped,
        report.bytes_copied
    );
    Ok(())
}
