use std::path::PathBuf;

use anyhow::Context;
use ocipack::image::resolve_image;
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;
use ocipack::unpack::{unpack_image, UnpackOptions};

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// Target directory (absent or empty).
    pub dir: PathBuf,
    /// Platform to unpack when the reference is an index.
    #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let src = a.registry.open_source_quiet(&a.reference)?;
    let img = resolve_image(src.as_ref(), a.arch.as_ref())?;
    let report = unpack_image(src.as_ref(), &img, &a.dir, &UnpackOptions::default())
        .with_context(|| format!("unpacking {} into {}", a.reference, a.dir.display()))?;
    if a.json {
        return super::print_json(&report);
    }
    println!(
        "unpacked {} ({}) into {}: {} layers, {} entries, {} bytes",
        a.reference,
        img.raw.digest(),
        a.dir.display(),
        report.layers,
        report.entries,
        report.bytes
    );
    Ok(())
}
