//! `ocipack fsck`: check (and repair) a layout or archive.

use ocipack::fsck::{fsck, Report};
use ocipack::reference::Reference;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `oci:DIR` or `oci-archive:FILE` (a tag or digest is ignored: the
    /// whole store is checked).
    #[arg(value_parser = super::reference_arg)]
    pub target: Reference,
    /// Remove orphan blobs and temp files of writers that died (never a
    /// blob index.json reaches), under the layout lock.
    #[arg(long)]
    pub repair: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let report = fsck(&a.target, a.repair)?;
    if a.json {
        super::print_json(&report)?;
    } else {
        print_human(&report);
    }
    if report.ok {
        return Ok(());
    }
    let n = report.problems.len() + report.orphans.len() + report.temp_files.len();
    // A check that ran and failed: exit status 3 (`cli::exit`).
    Err(super::exit::CheckFailed(format!("fsck found {n} defect(s) in {}", report.target)).into())
}

fn print_human(r: &Report) {
    println!(
        "{}: {} blobs hashed, {} manifests parsed, {} layers checked against their diff_ids",
        r.target, r.blobs, r.manifests, r.layers
    );
    for p in &r.problems {
        println!("  {}: {}: {}", p.kind, p.object, p.message);
    }
    for o in &r.orphans {
        println!("  orphan blob: {o} (nothing in index.json reaches it; --repair removes it)");
    }
    for t in &r.temp_files {
        println!("  temp file of a writer that died: {t} (--repair or the next writer removes it)");
    }
    for t in &r.temp_in_use {
        println!("  temp file in use by a running writer: {t}");
    }
    for x in &r.repaired {
        println!("  repaired: {x}");
    }
    println!("{}", if r.ok { "clean" } else { "DEFECTS FOUND" });
}
