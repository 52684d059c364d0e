use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ocipack::layer::LayerOptions;
use ocipack::platform::TargetArch;
use ocipack::recipe::{RecipeKind, VarInputs};
use ocipack::reference::Reference;
use ocipack::step::run::{run_step, StepRequest};
use ocipack::step::StepReport;

use super::registry_args::RegistryArgs;

/// Options shared by `package` and `wrapper`.
#[derive(Debug, clap::Args)]
pub struct StepArgs {
    /// Target architecture (amd64, arm64, riscv64).
    #[arg(long, visible_alias = "platform", value_parser = arch_arg)]
    pub arch: TargetArch,
    /// The image to build on (its layers are reused byte for byte).
    #[arg(long, value_parser = super::reference_arg)]
    pub base: Reference,
    /// The recipe (layouts/*.toml).
    #[arg(long)]
    pub recipe: PathBuf,
    /// Output: an OCI layout and tag, e.g. oci:out/runtime:package-arm64.
    #[arg(long, value_parser = super::reference_arg)]
    pub out: Reference,
    /// An input image of the recipe: NAME=REF (repeatable).
    #[arg(long = "input", value_name = "NAME=REF")]
    pub inputs: Vec<String>,
    /// Set a recipe variable (repeatable; overrides --versions).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Version pins, KEY=VALUE lines.
    #[arg(long)]
    pub versions: Option<PathBuf>,
    /// Run id recorded in org.kataglyphis.run-id (default: derived from the inputs).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Waive a failing guard, recorded in the image: NAME=REASON (repeatable).
    #[arg(long = "waive", value_name = "GUARD=REASON")]
    pub waive: Vec<String>,
    /// Compression threads (the output does not depend on it).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not use the layer and merged-tree caches ($OCIPACK_CACHE_DIR,
    /// else ~/.cache/ocipack); the output is the same either way.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the result as JSON (digests, layers, pin).
    #[arg(long)]
    pub json: bool,
    /// How base and inputs in registries are read.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// The cross-android artifact image (= --input artifact=REF).
    #[arg(long, value_parser = super::reference_arg)]
    pub artifact: Option<Reference>,
}

/// Parses `--arch`/`--platform`: `arm64`, or `linux/arm64[/v8]` as crane
/// and Docker write it (images built here are Linux ones).
pub fn arch_arg(s: &str) -> Result<TargetArch, String> {
    let arch = match s.split_once('/') {
        Some(("linux", rest)) => rest,
        Some((os, _)) => return Err(format!("{s:?}: only linux images are built here, not {os}")),
        None => s,
    };
    arch.parse().map_err(|e: ocipack::Error| e.to_string())
}

pub(super) fn kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{what} {s:?}: expected NAME=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// `--versions FILE` then `--set K=V` (which override it).
pub(super) fn vars(sets: &[String], versions: Option<&Path>) -> anyhow::Result<VarInputs> {
    let mut vars = VarInputs::default();
    if let Some(v) = versions {
        vars.load_versions(v)?;
    }
    for s in sets {
        vars.set(s)?;
    }
    Ok(vars)
}

/// `--waive GUARD=REASON`: a known guard, a reason.
pub(super) fn waivers(waive: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut waivers = BTreeMap::new();
    for w in waive {
        let (k, v) = kv(w, "--waive")?;
        if !ocipack::recipe::GUARD_NAMES.contains(&k.as_str()) {
            anyhow::bail!(
                "--waive {k}: unknown guard (guards: {})",
                ocipack::recipe::GUARD_NAMES.join(", ")
            );
        }
        if v.trim().is_empty() {
            anyhow::bail!("--waive {k}: a waiver needs a reason");
        }
        waivers.insert(k, v);
    }
    Ok(waivers)
}

/// The layer and merged-tree cache, unless `--no-cache`.
pub(super) fn cache_dir(no_cache: bool) -> Option<PathBuf> {
    if no_cache {
        None
    } else {
        ocipack::layer::cache::LayerCache::default_dir()
    }
}

pub(super) fn request(
    a: &StepArgs,
    kind: RecipeKind,
    extra: Option<(&str, &Reference)>,
) -> anyhow::Result<StepRequest> {
    let vars = vars(&a.sets, a.versions.as_deref())?;
    let mut inputs = BTreeMap::new();
    if let Some((name, r)) = extra {
        inputs.insert(name.to_string(), r.clone());
    }
    for i in &a.inputs {
        let (k, v) = kv(i, "--input")?;
        let r: Reference = v.parse()?;
        if inputs.insert(k.clone(), r).is_some() {
            anyhow::bail!("input {k} given twice");
        }
    }
    let waivers = waivers(&a.waive)?;
    let mut layer_options = LayerOptions::default();
    if let Some(t) = a.threads {
        layer_options.threads = t.max(1);
    }
    layer_options.cache = cache_dir(a.no_cache);
    Ok(StepRequest {
        kind,
        arch: a.arch,
        recipe: a.recipe.clone(),
        vars,
        base: a.base.clone(),
        inputs,
        out: a.out.clone(),
        run_id: a.run_id.clone(),
        waivers,
        layer_options,
        sources: std::sync::Arc::new(ocipack::spool::SharedSources::new(
            a.registry
                .source_options(&ocipack::registry::Progress::hidden())?,
        )),
    })
}

pub(super) fn print(report: &StepReport, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(report);
    }
    println!("{} {} -> {}", report.step, report.arch, report.reference);
    println!("  digest   {} ({} bytes)", report.digest, report.size);
    println!("  pin      {}", report.pin);
    println!(
        "  base     {} ({} layers reused)",
        report.base_digest,
        report.base_layers.len()
    );
    for l in &report.added_layers {
        println!(
            "  + {:<12} {} {} bytes, {} entries{}",
            l.name,
            l.descriptor.digest(),
            l.descriptor.size(),
            l.entries,
            if l.reused { " (reused)" } else { "" }
        );
    }
    for g in &report.guards.guards {
        let state = match (g.passed(), &g.waived) {
            (true, Some(_)) if g.checked == 0 => "waived, not run",
            (true, _) => "ok",
            (false, _) => "WAIVED",
        };
        println!("  guard {:<9} {state} ({} checked)", g.guard, g.checked);
    }
    for w in &report.warnings {
        println!("  warning  {w}");
    }
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let req = request(
        &a.step,
        RecipeKind::Package,
        a.artifact.as_ref().map(|r| ("artifact", r)),
    )?;
    let report = run_step(&req).with_context(|| format!("package {} for {}", req.out, req.arch))?;
    print(&report, a.step.json)
}
