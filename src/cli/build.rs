//! `build`: the command line of [`ocipack::pipeline`]. Flags become a
//! [`BuildPlan`]; the pipeline reports through the spinners (an
//! [`Observer`]) and its [`BuildReport`] is printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use ocipack::index::pins::{write_digest_file, write_digestfile};
use ocipack::index::publish::alias_reference;
use ocipack::layer::LayerOptions;
use ocipack::pipeline::{build, ArchPlan, BuildPlan, BuildReport, Observer, Publish};
use ocipack::platform::{parse_arch_list, TargetArch};
use ocipack::reference::Reference;
use ocipack::registry::Progress;

use super::registry_args::{ProgressScope, RegistryArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The arches to build, in index order.
    /// (Also read from TARGET_ARCHES, as the seed's scripts do.)
    #[arg(long, env = "TARGET_ARCHES", default_value = "amd64,arm64,riscv64")]
    pub target_arches: String,
    /// Base image per arch; {arch} is replaced (an index is fine too), e.g.
    /// oci:out/local-oci/base-{arch} (BuildKit's export, dockerfiles/README.md).
    #[arg(long)]
    pub base: String,
    /// cross-android artifact per arch; {arch} is replaced, e.g.
    /// oci:out/local-oci/cross-android-{arch}.
    #[arg(long)]
    pub artifact: String,
    /// Wrapper inputs per arch: NAME=REF with {arch} (repeatable), e.g.
    /// venv=oci:out/local-oci/venv-export-{arch} and
    /// app=oci:out/local-oci/app-export-{arch} for layouts/wrapper.toml.
    #[arg(long = "input", value_name = "NAME=REF")]
    pub inputs: Vec<String>,
    #[arg(long, default_value = "layouts/package.toml")]
    pub package_recipe: PathBuf,
    #[arg(long, default_value = "layouts/wrapper.toml")]
    pub wrapper_recipe: PathBuf,
    /// The layout and index tag to write, as oci:DIR:TAG. Per-arch images
    /// are tagged <tag>-package-<arch> and <tag>-<arch> in it. With --push
    /// it is the staging layout (kept); without it --push stages in a
    /// temporary directory under $TMPDIR, removed at the end.
    #[arg(long, value_parser = super::reference_arg)]
    pub out: Option<Reference>,
    /// Publish to --image: the per-arch images <tag>-<arch> by digest, then
    /// the index and its --alias tags, behind the gates of `manifest --push`
    /// (completeness, coherence; freshness re-read after the push).
    #[arg(long)]
    pub push: bool,
    /// --push, and the intermediates too (pushed first): each arch's base
    /// as <tag>-base-<arch> and the package stage as <tag>-package-<arch>.
    #[arg(long)]
    pub push_all: bool,
    /// Where --push publishes the index, with its tag:
    /// docker://HOST/REPO:TAG.
    #[arg(long, value_parser = super::reference_arg)]
    pub image: Option<Reference>,
    /// More tags for the index (the published one with --push).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// Publish even if a gate fails; the override is printed and in --json.
    #[arg(long)]
    pub force: bool,
    /// Write the pins as JSON {"<ref>": "<repo@sha256:…>"} to this file:
    /// the published images and index with --push, else the layout's.
    /// (`--digest-file` is its former, deprecated name: skopeo's
    /// `--digestfile` holds one digest, see --digestfile.)
    #[arg(long = "pins-file", alias = "digest-file", value_name = "FILE")]
    pub digest_file: Option<PathBuf>,
    /// Write the index digest alone (`sha256:…`, no newline) to this file,
    /// as skopeo's and podman's --digestfile do.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
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
    /// Do not use the layer and merged-tree caches.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the plan; build and push nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The `--dry-run --json` plan.
#[derive(serde::Serialize)]
struct DryRun {
    /// `--push-all`: each arch's base, pushed as it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    base_pushes: Vec<DryPush>,
    steps: Vec<DryStep>,
    index: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_index: Option<String>,
    aliases: Vec<String>,
}

#[derive(serde::Serialize)]
struct DryPush {
    arch: TargetArch,
    source: String,
    push_to: String,
}

#[derive(serde::Serialize)]
struct DryStep {
    arch: TargetArch,
    stage: &'static str,
    inputs: Vec<String>,
    output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    push_to: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let arches = parse_arch_list(&a.target_arches).context("--target-arches")?;
    let push = a.push || a.push_all;
    let image = match (&a.image, push) {
        (Some(i), true) => Some(i.clone()),
        (None, true) => bail!("--push needs --image, e.g. --image docker://HOST/REPO:latest-cross"),
        (Some(_), false) => bail!("--image is where --push publishes: add --push"),
        (None, false) => None,
    };
    if let Some(img) = &image {
        if img.tag().is_none() {
            bail!("--image {img} needs a tag, e.g. :latest-cross");
        }
    }
    let tag = match (&a.out, &image) {
        (Some(o), _) => o
            .tag()
            .context("--out needs a tag, e.g. oci:out/runtime:latest")?
            .to_string(),
        (None, Some(i)) => i.tag().unwrap_or_default().to_string(),
        (None, None) => {
            bail!("give --out oci:DIR:TAG, or --push --image docker://HOST/REPO:TAG (or both)")
        }
    };
    if let (Some(o), Some(i)) = (&a.out, &image) {
        if i.tag() != Some(tag.as_str()) {
            bail!(
                "--out {o} and --image {i} have different tags; the per-arch tags \
                 (<tag>-<arch>, <tag>-package-<arch>) come from one tag"
            );
        }
    }
    // The staging layout: --out, else a temporary directory (a dry run
    // creates none).
    let mut staging_dir = None;
    let out = match &a.out {
        Some(o) => o.clone(),
        None => {
            let path = if a.dry_run {
                PathBuf::from("<staging>")
            } else {
                let t = ocipack::atomic::scratch_dir()
                    .context("creating a staging directory (set TMPDIR or give --out)")?;
                let p = t.path().join("layout");
                staging_dir = Some(t);
                p
            };
            Reference::parse(&format!("oci:{}:{tag}", path.display()))?
        }
    };
    let index_ref = image.clone().unwrap_or_else(|| out.clone());
    let aliases = a
        .aliases
        .iter()
        .map(|s| alias_reference(&index_ref, s))
        .collect::<Result<Vec<_>, _>>()?;
    // Pushes draw their bars while they run; reading the inputs is quiet
    // (the per-arch spinners show the steps).
    let progress = ProgressScope::new("pushed", a.json || a.dry_run);
    let plan = BuildPlan {
        arches,
        base: a.base.clone(),
        artifact: a.artifact.clone(),
        inputs: input_templates(&a.inputs)?,
        package_recipe: a.package_recipe.clone(),
        wrapper_recipe: a.wrapper_recipe.clone(),
        out: out.clone(),
        publish: image.clone().map(|image| Publish {
            image,
            push_all: a.push_all,
        }),
        aliases,
        force: a.force,
        vars: super::package::vars(&a.sets, a.versions.as_deref())?,
        run_id: a.run_id.clone(),
        waivers: super::package::waivers(&a.waive)?,
        threads: a.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        layer_options: LayerOptions {
            cache: super::package::cache_dir(a.no_cache),
            ..LayerOptions::default()
        },
        source_registry: a.registry.source_options(&Progress::hidden())?,
        dest_registry: a.registry.dest_options(&progress.0)?,
    };
    let arch_plans = plan.arch_plans()?;
    if a.dry_run {
        return print_plan(&a, &arch_plans, &out, image.as_ref(), &plan.aliases);
    }

    let stages = StageBars::new(plan.arches.iter().copied(), a.json);
    let report = build(&plan, &stages)?;
    drop(stages);
    drop(progress);
    // The staging directory goes; what was pushed is in the report.
    let temporary_staging = staging_dir.is_some();
    drop(staging_dir);
    print_report(&a, &report, &out, temporary_staging)
}

/// `--input NAME=REF` templates, each name once.
fn input_templates(inputs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for i in inputs {
        let (k, v) = super::package::kv(i, "--input")?;
        if map.insert(k.clone(), v).is_some() {
            bail!("input {k} given twice");
        }
    }
    Ok(map)
}

fn print_report(
    a: &Args,
    report: &BuildReport,
    out: &Reference,
    temporary_staging: bool,
) -> anyhow::Result<()> {
    if let Some(p) = &report.published {
        super::manifest::warn_forced(&p.index);
    }
    super::manifest::warn_forced(&report.index);
    if let Some(path) = &a.digest_file {
        write_digest_file(path, &report.pins)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.digestfile {
        write_digestfile(path, &report.index.digest)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        return super::print_json(report);
    }
    if !temporary_staging {
        for w in &report.wrappers {
            println!("{:<8} {} {}", w.arch.to_string(), w.digest, w.reference);
        }
        println!(
            "index    {} {} (run {})",
            report.index.digest, out, report.run_id
        );
    } else {
        println!("run      {}", report.run_id);
    }
    if let Some(p) = &report.published {
        for pkg in p.bases.iter().chain(&p.packages) {
            println!("pushed   {} {}", pkg.digest, pkg.destination);
        }
        super::manifest::print(&p.index, false)?;
    } else {
        for (reference, pin) in &report.pins {
            println!("pin {reference} {pin}");
        }
    }
    Ok(())
}

fn print_plan(
    a: &Args,
    plan: &[ArchPlan],
    out: &Reference,
    image: Option<&Reference>,
    aliases: &[Reference],
) -> anyhow::Result<()> {
    let mut steps = Vec::new();
    for p in plan {
        let (pkg_dest, wrp_dest) = match &p.publish {
            Some((pd, wd)) => (a.push_all.then(|| pd.to_string()), Some(wd.to_string())),
            None => (None, None),
        };
        steps.push(DryStep {
            arch: p.arch,
            stage: "package",
            inputs: vec![p.base.to_string(), p.artifact.to_string()],
            output: p.package.to_string(),
            push_to: pkg_dest,
        });
        let mut inputs = vec![p.package.to_string()];
        inputs.extend(p.inputs.iter().map(|(name, r)| format!("{name}={r}")));
        steps.push(DryStep {
            arch: p.arch,
            stage: "wrapper",
            inputs,
            output: p.wrapper.to_string(),
            push_to: wrp_dest,
        });
    }
    let base_pushes = plan
        .iter()
        .filter_map(|p| {
            p.publish_base.as_ref().map(|d| DryPush {
                arch: p.arch,
                source: p.base.to_string(),
                push_to: d.to_string(),
            })
        })
        .collect();
    let dry = DryRun {
        base_pushes,
        steps,
        index: out.to_string(),
        published_index: image.map(|i| i.to_string()),
        aliases: aliases.iter().map(|r| r.to_string()).collect(),
    };
    if a.json {
        return super::print_json(&dry);
    }
    for s in &dry.steps {
        println!(
            "{}: {} {} -> {}",
            s.arch,
            s.stage,
            s.inputs.join(" + "),
            s.output
        );
    }
    println!("index {} from {}", dry.index, a.target_arches);
    for b in &dry.base_pushes {
        println!("{}: push base {} -> {}", b.arch, b.source, b.push_to);
    }
    for s in &dry.steps {
        if let Some(d) = &s.push_to {
            println!("{}: push {} {} -> {d}", s.arch, s.stage, s.output);
        }
    }
    if let Some(i) = &dry.published_index {
        println!(
            "push index {i} last{}, after the completeness and coherence gates; \
             freshness re-read after the push",
            if dry.aliases.is_empty() {
                String::new()
            } else {
                format!(" (aliases {})", dry.aliases.join(", "))
            }
        );
    }
    Ok(())
}

/// Per-arch stage display: a spinner per arch on a terminal, plain lines on
/// stderr otherwise (logs stay greppable), nothing with `--json`.
struct StageBars {
    bars: Option<(
        indicatif::MultiProgress,
        Vec<(TargetArch, indicatif::ProgressBar)>,
    )>,
    quiet: bool,
}

impl Observer for StageBars {
    fn stage(&self, arch: TargetArch, stage: &str, out: &Reference) {
        self.show(arch, &format!("{stage} -> {out}"));
    }

    fn failed(&self, arch: TargetArch, stage: &str) {
        self.finish(arch, &format!("{stage} failed"));
    }

    fn done(&self, arch: TargetArch, digest: &str) {
        self.finish(arch, &format!("done {digest}"));
    }
}

impl StageBars {
    fn new(arches: impl Iterator<Item = TargetArch>, json: bool) -> StageBars {
        use std::io::IsTerminal;
        if json || !std::io::stderr().is_terminal() {
            return StageBars {
                bars: None,
                quiet: json,
            };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:<8} {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bars = arches
            .map(|arch| {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(arch.to_string());
                bar.set_message("waiting");
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                (arch, bar)
            })
            .collect();
        StageBars {
            bars: Some((multi, bars)),
            quiet: false,
        }
    }

    fn bar(&self, arch: TargetArch) -> Option<&indicatif::ProgressBar> {
        self.bars
            .as_ref()?
            .1
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, b)| b)
    }

    fn show(&self, arch: TargetArch, msg: &str) {
        match self.bar(arch) {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("ocipack: {arch}: {msg}"),
            None => {}
        }
    }

    fn finish(&self, arch: TargetArch, msg: &str) {
        if let Some(b) = self.bar(arch) {
            b.finish_with_message(msg.to_string());
        }
    }
}
