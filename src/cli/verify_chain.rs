use ocipack::platform::PlatformSpec;
use ocipack::provenance::chain::{verify_chain, Stage, StageStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stage as NAME=REF, repeated parent first (e.g. --stage
    /// package=oci:out:latest-cross-package-amd64 --stage wrapper=oci:out:latest-cross-amd64).
    #[arg(long = "stage", value_parser = stage_arg, required = true)]
    pub stages: Vec<Stage>,
    /// Pick this platform when references name indexes.
    #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
    pub arch: Option<PlatformSpec>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn stage_arg(s: &str) -> Result<Stage, String> {
    s.parse().map_err(|e: ocipack::Error| e.to_string())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let report = verify_chain(&a.stages, a.arch.as_ref())?;
    if a.json {
        super::print_json(&report)?;
    } else {
        for s in &report.stages {
            let status = match s.status {
                StageStatus::Root => "root",
                StageStatus::Fresh => "fresh",
                StageStatus::Stale => "STALE",
                StageStatus::Unrecorded => "UNRECORDED",
            };
            println!("{:<12} {:<10} {} {}", s.name, status, s.digest, s.reference);
            for r in &s.recorded {
                if !r.matches {
                    println!(
                        "  built on {} ({}), parent is now {}",
                        r.digest,
                        r.source,
                        s.parent_current.join(" / ")
                    );
                }
            }
            if s.status == StageStatus::Unrecorded {
                println!("  records no parent digest (label org.kataglyphis.parent-digest or annotation org.opencontainers.image.base.digest)");
            }
            if let Some(up) = &s.downstream_of {
                println!("  built on top of {up}, which is stale");
            }
            for n in &s.notes {
                println!("  note: {n}");
            }
        }
    }
    if !report.ok {
        let unrecorded = report
            .stages
            .iter()
            .any(|s| s.status == StageStatus::Unrecorded);
        return Err(super::exit::CheckFailed(format!(
            "{}: {} (rebuild from the first one)",
            if unrecorded {
                "stale or unrecorded stages"
            } else {
                "stale stages"
            },
            report.stale.join(", ")
        ))
        .into());
    }
    Ok(())
}
