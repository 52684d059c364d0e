use ocipack::inspect::{inspect, InspectReport};
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image reference (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST/REPO[:TAG]).
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// Pick one platform of an index (amd64, arm64, riscv64, or os/arch[/variant]).
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
    let report = inspect(src.as_ref(), a.arch.as_ref())?;
    if a.json {
        return super::print_json(&report);
    }
    match report {
        InspectReport::Index {
            reference,
            media_type,
            digest,
            size,
            manifests,
        } => {
            println!("{reference}");
            println!("  index      {media_type}");
            println!("  digest     {digest} ({size} bytes)");
            for m in manifests {
                println!(
                    "  - {:<22} {} ({} bytes)",
                    m.platform.unwrap_or_else(|| "-".into()),
                    m.digest,
                    m.size
                );
            }
        }
        InspectReport::Image {
            reference,
            index_digest,
            image,
        } => {
            println!("{reference}");
            if let Some(i) = index_digest {
                println!("  index      {i}");
            }
            println!("  manifest   {}", image.media_type);
            println!("  digest     {} ({} bytes)", image.digest, image.size);
            println!("  platform   {}", image.platform);
            println!("  config     {}", image.config_digest);
            let c = &image.config;
            if let Some(created) = &c.created {
                println!("  created    {created}");
            }
            if let Some(u) = &c.user {
                println!("  user       {u}");
            }
            if let Some(w) = &c.working_dir {
                println!("  workdir    {w}");
            }
            if let Some(e) = &c.entrypoint {
                println!("  entrypoint {e:?}");
            }
            if let Some(cmd) = &c.cmd {
                println!("  cmd        {cmd:?}");
            }
            for e in &c.env {
                println!("  env        {e}");
            }
            for (k, v) in &c.labels {
                println!("  label      {k}={v}");
            }
            println!(
                "  layers     {} ({} bytes)",
                image.layers.len(),
                image.total_layer_size
            );
            for l in &image.layers {
                println!("  - {} {:>12}  diff_id {}", l.digest, l.size, l.diff_id);
            }
        }
    }
    Ok(())
}
