//! `referrers REF`: the OCI 1.1 referrers (SBOM, provenance) of an image,
//! or of an index and each of its images, from a layout, an archive or a
//! registry (its referrers API, else the `sha256-<hex>` tag schema).

use anyhow::Context;
use ocipack::reference::Reference;
use ocipack::referrers::{list, Referrer};
use ocipack::registry::Progress;

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image or index reference (oci:DIR[:TAG], oci-archive:FILE[:TAG],
    /// docker://HOST/REPO[:TAG|@DIGEST]).
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// Only referrers of this artifact type (e.g. application/spdx+json,
    /// application/vnd.in-toto+json).
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(serde::Serialize)]
struct Output {
    reference: String,
    /// What the reference resolved to.
    digest: String,
    referrers: Vec<Referrer>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let src = a
        .registry
        .open_source(&a.reference, &Progress::hidden())
        .with_context(|| format!("opening {}", a.reference))?;
    let digest = src
        .resolve()
        .with_context(|| format!("resolving {}", a.reference))?
        .digest()
        .to_string();
    let referrers = list(src.as_ref(), a.artifact_type.as_deref())
        .with_context(|| format!("listing the referrers of {}", a.reference))?;
    let out = Output {
        reference: a.reference.to_string(),
        digest,
        referrers,
    };
    if a.json {
        return super::print_json(&out);
    }
    println!("{} {}", out.reference, out.digest);
    for r in &out.referrers {
        println!(
            "  {:<22} {} {} ({} bytes) -> {}",
            r.platform.as_deref().unwrap_or("-"),
            r.artifact_type,
            r.digest,
            r.size,
            r.subject
        );
    }
    Ok(())
}
