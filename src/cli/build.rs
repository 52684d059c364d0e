use std::path::PathBuf;

use anyhow::Context;
use ocipack::index::children::expand_template;
use ocipack::index::{plan_index, IndexOptions};
use ocipack::platform::{parse_arch_list, TargetArch};
use ocipack::recipe::RecipeKind;
use ocipack::reference::Reference;
use ocipack::step::run::run_step;
use ocipack::step::{derive_run_id, StepReport};
use ocipack::transport::open_source;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The arches to build, in index order.
    #[arg(long, default_value = "amd64,arm64,riscv64")]
    pub target_arches: String,
    /// Base image per arch; {arch} is replaced (an index is fine too).
    #[arg(long)]
    pub base: String,
    /// cross-android artifact per arch; {arch} is replaced.
    #[arg(long)]
    pub artifact: String,
    /// Wrapper inputs per arch: NAME=REF with {arch} (repeatable), e.g.
    /// venv=oci:out/venv-export:venv-export-{arch}.
    #[arg(long = "input", value_name = "NAME=REF")]
    pub inputs: Vec<String>,
    #[arg(long, default_value = "layouts/package.toml")]
    pub package_recipe: PathBuf,
    #[arg(long, default_value = "layouts/wrapper.toml")]
    pub wrapper_recipe: PathBuf,
    /// The index to write, as oci:DIR:TAG. Per-arch images are tagged
    /// <tag>-package-<arch> and <tag>-<arch> in the same layout.
    #[arg(long, value_parser = super::reference_arg)]
    pub out: Reference,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long)]
    pub versions: Option<PathBuf>,
    /// One run id for every arch (default: derived from the inputs).
    #[arg(long)]
    pub run_id: Option<String>,
    #[arg(long = "waive", value_name = "GUARD=REASON")]
    pub waive: Vec<String>,
    /// Compression threads in total (split between the arches).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the plan; build nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct BuildReport {
    run_id: String,
    packages: Vec<StepReport>,
    wrappers: Vec<StepReport>,
    index: ocipack::index::IndexReport,
}

fn per_arch(template: &str, arch: TargetArch) -> anyhow::Result<Reference> {
    let s = template.replace("{arch}", arch.oci_name());
    s.parse().with_context(|| format!("reference {s}"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let arches = parse_arch_list(&a.target_arches).context("--target-arches")?;
    let tag = a
        .out
        .tag()
        .context("--out needs a tag, e.g. oci:out/runtime:latest")?
        .to_string();
    let tagged = |t: String| -> anyhow::Result<Reference> {
        Ok(expand_template(&a.out, &t, TargetArch::Amd64)?)
    };
    let mut plan = Vec::new();
    for &arch in &arches {
        let base = per_arch(&a.base, arch)?;
        let artifact = per_arch(&a.artifact, arch)?;
        let package = tagged(format!("{{image}}-package-{}", arch.oci_name()))?;
        let final_ref = tagged(format!("{{image}}-{}", arch.oci_name()))?;
        plan.push((arch, base, artifact, package, final_ref));
    }
    if a.dry_run {
        for (arch, base, artifact, package, final_ref) in &plan {
            println!("{arch}: package {base} + {artifact} -> {package}");
            println!("{arch}: wrapper {package} -> {final_ref}");
        }
        println!("index {} ({tag}) from {}", a.out, a.target_arches);
        return Ok(());
    }
    // One run id for the whole run: the index's coherence gate needs it.
    let run_id = match &a.run_id {
        Some(r) => r.clone(),
        None => {
            let mut parts = Vec::new();
            for (_, base, artifact, _, _) in &plan {
                for r in [base, artifact] {
                    let src = open_source(r)?;
                    parts.push(src.resolve()?.digest().to_string());
                }
            }
            parts.push(std::fs::read_to_string(&a.package_recipe).unwrap_or_default());
            parts.push(std::fs::read_to_string(&a.wrapper_recipe).unwrap_or_default());
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            derive_run_id(&refs)
        }
    };
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let per = (threads / arches.len()).max(1);
    let step_args = |arch: TargetArch, recipe: &PathBuf, base: &Reference, out: &Reference| {
        super::package::StepArgs {
            arch,
            base: base.clone(),
            recipe: recipe.clone(),
            out: out.clone(),
            inputs: Vec::new(),
            sets: a.sets.clone(),
            versions: a.versions.clone(),
            run_id: Some(run_id.clone()),
            waive: a.waive.clone(),
            threads: Some(per),
            json: false,
        }
    };
    // The arches in parallel: each is mostly its own compression work, and
    // the layout takes concurrent writers (blobs by digest, locked index).
    let results: Vec<anyhow::Result<(StepReport, StepReport)>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .map(|(arch, base, artifact, package, final_ref)| {
                let pa = step_args(*arch, &a.package_recipe, base, package);
                let mut wa = step_args(*arch, &a.wrapper_recipe, package, final_ref);
                wa.inputs = a
                    .inputs
                    .iter()
                    .map(|i| i.replace("{arch}", arch.oci_name()))
                    .collect();
                s.spawn(move || -> anyhow::Result<(StepReport, StepReport)> {
                    eprintln!("ocipack: {arch}: package -> {package}");
                    let req = super::package::request(
                        &pa,
                        RecipeKind::Package,
                        Some(("artifact", artifact)),
                    )?;
                    let p = run_step(&req).with_context(|| format!("package for {arch}"))?;
                    eprintln!("ocipack: {arch}: wrapper -> {final_ref}");
                    let req = super::package::request(&wa, RecipeKind::Wrapper, None)?;
                    let w = run_step(&req).with_context(|| format!("wrapper for {arch}"))?;
                    Ok((p, w))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("build thread panicked")))
            })
            .collect()
    });
    let mut packages = Vec::new();
    let mut wrappers = Vec::new();
    for r in results {
        let (p, w) = r?;
        packages.push(p);
        wrappers.push(w);
    }
    let opts = IndexOptions::new(a.out.clone(), arches, None)?;
    let mut iplan = plan_index(&opts).with_context(|| format!("indexing {}", a.out))?;
    iplan.check_gates()?;
    let index = iplan.publish()?;
    let report = BuildReport {
        run_id,
        packages,
        wrappers,
        index,
    };
    if a.json {
        return super::print_json(&report);
    }
    for w in &report.wrappers {
        println!("{:<8} {} {}", w.arch.to_string(), w.digest, w.reference);
    }
    println!(
        "index    {} {} (run {})",
        report.index.digest, a.out, report.run_id
    );
    Ok(())
}
