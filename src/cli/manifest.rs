use std::path::PathBuf;

use anyhow::Context;
use ocipack::index::children::DEFAULT_TEMPLATE;
use ocipack::index::pins::{write_digest_file, write_digestfile};
use ocipack::index::publish::alias_reference;
use ocipack::index::{plan_index, IndexFormat, IndexOptions, IndexReport};
use ocipack::platform::parse_arch_list;
use ocipack::reference::Reference;
use ocipack::registry::Progress;

use super::registry_args::{ProgressScope, RegistryArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index to write, with its tag (oci:DIR:TAG or docker://HOST/REPO:TAG).
    #[arg(long, value_parser = super::reference_arg)]
    pub image: Reference,
    /// The arches the index must hold, in entry order.
    /// (Also read from TARGET_ARCHES, as the seed's scripts do.)
    #[arg(long, env = "TARGET_ARCHES", default_value = "amd64,arm64,riscv64")]
    pub target_arches: String,
    /// Where each per-arch image is: {image}, {tag} and {arch} are replaced;
    /// a bare tag stays beside the index.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    pub children: String,
    /// Also copy per-arch images that live in another store into the index's
    /// store (tagged <tag>-<arch> there).
    #[arg(long)]
    pub push: bool,
    /// Rebuild the index from the existing per-arch images only; refuses
    /// children without provenance unless --force.
    #[arg(long, visible_alias = "manifest-only")]
    pub repair: bool,
    /// Publish even if a gate (completeness, coherence, freshness) fails.
    #[arg(long)]
    pub force: bool,
    /// More tags for the index (a tag, or a reference in the same store).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// oci (default unless every child is a Docker manifest) or docker.
    #[arg(long)]
    pub format: Option<IndexFormat>,
    /// Print the plan (children, platforms, index digest, gates); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the pins as JSON {"<ref>": "<repo@sha256:…>"} to this file.
    /// (`--digest-file` is its former, deprecated name: skopeo's
    /// `--digestfile` holds one digest, see --digestfile.)
    #[arg(long = "pins-file", alias = "digest-file", value_name = "FILE")]
    pub digest_file: Option<PathBuf>,
    /// Write the index digest alone (`sha256:…`, no newline) to this file,
    /// as skopeo's and podman's --digestfile do.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let targets = parse_arch_list(&a.target_arches).context("--target-arches")?;
    let mut opts = IndexOptions::new(a.image.clone(), targets, Some(&a.children))?;
    opts.aliases = a
        .aliases
        .iter()
        .map(|s| alias_reference(&a.image, s))
        .collect::<Result<_, _>>()?;
    opts.format = a.format;
    opts.push = a.push;
    opts.repair = a.repair;
    opts.force = a.force;
    opts.dry_run = a.dry_run;
    let progress = ProgressScope::new("pushed", a.json || a.dry_run);
    opts.registry = a.registry.dest_options(&progress.0)?;
    opts.source_registry = Some(a.registry.source_options(&Progress::hidden())?);

    let mut plan = plan_index(&opts).with_context(|| format!("indexing {}", a.image))?;
    let gates = plan.check_gates();
    if let Err(e) = gates {
        if a.dry_run {
            print(&plan.report(), a.json)?;
        }
        return Err(anyhow::Error::new(e)
            .context("refusing to publish (fix what the gate names; --force publishes anyway)"));
    }
    let report = if a.dry_run {
        plan.report()
    } else {
        let r = plan.publish();
        drop(progress);
        r.with_context(|| format!("publishing {}", a.image))?
    };
    warn_forced(&report);
    if let Some(path) = &a.digest_file {
        if !a.dry_run {
            write_digest_file(path, &report.pins)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = a.digestfile.as_ref().filter(|_| !a.dry_run) {
        write_digestfile(path, &report.digest)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print(&report, a.json)
}

/// Says on stderr which gates `--force` let through.
pub(super) fn warn_forced(report: &IndexReport) {
    for g in report.gates.iter().filter(|g| g.forced) {
        eprintln!(
            "ocipack: warning: {} gate failed, overridden by --force: {}",
            g.gate,
            g.problems.join("; ")
        );
    }
}

/// The report as `manifest` prints it (`build --push` prints the same).
pub(super) fn print(r: &IndexReport, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(r);
    }
    let verb = if r.written {
        if r.repair {
            "repaired"
        } else {
            "wrote"
        }
    } else {
        "would write"
    };
    println!(
        "{verb} {} index {} {} ({} bytes)",
        r.format, r.image, r.digest, r.size
    );
    if let Some(t) = &r.transfer {
        println!(
            "  blobs    {} uploaded, {} already there, {} mounted ({} bytes)",
            t.pushed.len(),
            t.skipped.len(),
            t.mounted.len(),
            t.bytes_pushed
        );
    }
    for c in &r.children {
        println!(
            "  {:<8} {:<18} {} {}{}",
            c.info.arch.to_string(),
            c.info.platform,
            c.info.digest,
            c.destination,
            if c.copied {
                format!(" (from {})", c.info.reference)
            } else {
                String::new()
            }
        );
    }
    for m in &r.missing {
        println!("  {:<8} missing: {}", m.arch.to_string(), m.reference);
    }
    for g in &r.gates {
        let state = match (g.passed, g.forced) {
            (true, _) => "ok",
            (false, true) => "FAILED, overridden by --force",
            (false, false) => "FAILED",
        };
        let detail = if g.problems.is_empty() {
            g.notes.join("; ")
        } else {
            g.problems.join("; ")
        };
        println!("  gate {:<12} {state}: {detail}", g.gate.to_string());
    }
    if !r.written {
        println!("  tags     {}", r.tags.join(", "));
    }
    for (reference, pin) in &r.pins {
        println!("pin {reference} {pin}");
    }
    Ok(())
}
