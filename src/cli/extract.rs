use std::path::PathBuf;

use anyhow::Context;
use ocipack::extract::{extract, ExtractRequest, METADATA_FILE, SUMS_FILE};
use ocipack::image::resolve_image;
use ocipack::platform::{PlatformSpec, TargetArch};
use ocipack::reference::Reference;
use ocipack::transport::open_source_with;

use super::registry_args::{ProgressScope, RegistryArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// A path inside the image to copy out (repeatable); it lands under the
    /// same name in the target (`/artifacts` is `DIR/artifacts`).
    #[arg(long = "path", value_name = "PATH", required = true)]
    pub paths: Vec<String>,
    /// Target directory (absent or empty); receives SHA256SUMS and
    /// ocipack-extract.json too.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Platform to read when the reference is an index.
    #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Refuse (nothing written, exit status 3) when an extracted ELF file
    /// is not built for this architecture.
    #[arg(long, value_name = "ARCH", value_parser = super::package::arch_arg)]
    pub check_elf: Option<TargetArch>,
    /// Print the metadata (as written to ocipack-extract.json).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let progress = ProgressScope::new("pulled", a.json);
    let opts = a.registry.source_options(&progress.0)?;
    // The merged view, then the files: a registry image is spooled so
    // its blobs are downloaded once.
    let src = open_source_with(&a.reference, &opts)
        .and_then(|s| ocipack::spool::for_reference(&a.reference, s))
        .with_context(|| format!("opening {}", a.reference))?;
    let img = resolve_image(src.as_ref(), a.arch.as_ref())?;
    let req = ExtractRequest {
        reference: a.reference.to_string(),
        paths: a.paths.clone(),
        check_elf: a.check_elf,
    };
    let meta = extract(src.as_ref(), &img, &req, &a.to)
        .with_context(|| format!("extracting from {} into {}", a.reference, a.to.display()))?;
    drop(progress);
    if a.json {
        return super::print_json(&meta);
    }
    let files = meta.files.iter().filter(|f| f.sha256.is_some()).count();
    let bytes: u64 = meta.files.iter().map(|f| f.size).sum();
    println!(
        "extracted {} ({}) into {}: {files} files, {bytes} bytes; {SUMS_FILE} and {METADATA_FILE} written",
        a.reference,
        meta.manifest_digest,
        a.to.display(),
    );
    if let Some(c) = &meta.check_elf {
        println!("ELF check: {} ELF files, all {}", c.checked, c.arch);
    }
    Ok(())
}
