//! `build`: package then wrapper for every arch into one layout, and the
//! index over them. With `--push` that layout is the staging area: the
//! per-arch images and the index are then published through `manifest`'s
//! code (gates, children by digest before the index, tags last, pins).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ocipack::index::pins::{write_digest_file, write_digestfile, Pins};
use ocipack::index::publish::alias_reference;
use ocipack::index::push::{push_image, push_platform_image, PushedImage};
use ocipack::index::{plan_index, publish_index, IndexOptions, IndexReport};
use ocipack::platform::{parse_arch_list, PlatformSpec, TargetArch};
use ocipack::recipe::RecipeKind;
use ocipack::reference::Reference;
use ocipack::step::run::run_step;
use ocipack::step::{derive_run_id, StepReport};
use ocipack::transport::open_source;

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

#[derive(serde::Serialize)]
struct BuildReport {
    run_id: String,
    packages: Vec<StepReport>,
    wrappers: Vec<StepReport>,
    /// The index in the (staging) layout.
    index: IndexReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<Published>,
    /// Reference -> pin of what this run leaves for the next stage.
    pins: Pins,
}

/// What `--push` published.
#[derive(serde::Serialize)]
struct Published {
    /// Base images (`--push-all`, as `<tag>-base-<arch>`), in arch order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bases: Vec<PushedImage>,
    /// Package stage images (`--push-all`), in arch order.
    packages: Vec<PushedImage>,
    /// The per-arch images and the index, as `manifest --push` reports them.
    index: IndexReport,
}

/// One arch: inputs, the staged images, and where they are published.
struct ArchPlan {
    arch: TargetArch,
    base: Reference,
    artifact: Reference,
    package: Reference,
    wrapper: Reference,
    /// (package, wrapper) destinations with --push.
    publish: Option<(Reference, Reference)>,
    /// Where --push-all pushes the base: `<tag>-base-<arch>`.
    publish_base: Option<Reference>,
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

fn per_arch(template: &str, arch: TargetArch) -> anyhow::Result<Reference> {
    let s = template.replace("{arch}", arch.oci_name());
    s.parse().with_context(|| format!("reference {s}"))
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
                let t = tempfile::Builder::new()
                    .prefix("ocipack-build-")
                    .tempdir()
                    .context("creating a staging directory (set TMPDIR or give --out)")?;
                let p = t.path().join("layout");
                staging_dir = Some(t);
                p
            };
            Reference::parse(&format!("oci:{}:{tag}", path.display()))?
        }
    };
    let mut plan = Vec::new();
    for &arch in &arches {
        let publish = match &image {
            Some(img) => Some((
                img.with_tag(&format!("{tag}-package-{arch}"))?,
                img.with_tag(&format!("{tag}-{arch}"))?,
            )),
            None => None,
        };
        let publish_base = match &image {
            Some(img) if a.push_all => Some(img.with_tag(&format!("{tag}-base-{arch}"))?),
            _ => None,
        };
        plan.push(ArchPlan {
            arch,
            base: per_arch(&a.base, arch)?,
            artifact: per_arch(&a.artifact, arch)?,
            package: out.with_tag(&format!("{tag}-package-{arch}"))?,
            wrapper: out.with_tag(&format!("{tag}-{arch}"))?,
            publish,
            publish_base,
        });
    }
    let index_ref = image.clone().unwrap_or_else(|| out.clone());
    let aliases = a
        .aliases
        .iter()
        .map(|s| alias_reference(&index_ref, s))
        .collect::<Result<Vec<_>, _>>()?;
    if a.dry_run {
        return print_plan(&a, &plan, &out, image.as_ref(), &aliases);
    }

    let (run_id, packages, wrappers) = build_all(&a, &arches, &plan)?;
    // The index in the layout, gated: a build that cannot be indexed
    // stops here, before anything is pushed.
    let mut opts = IndexOptions::new(out.clone(), arches.clone(), None)?;
    opts.force = a.force;
    if image.is_none() {
        opts.aliases = aliases.clone();
    }
    let mut iplan = plan_index(&opts).with_context(|| format!("indexing {out}"))?;
    iplan.check_gates()?;
    let index = iplan.publish()?;

    let published = match &image {
        Some(img) => Some(publish(&a, &plan, img, &aliases)?),
        None => None,
    };
    let mut pins = Pins::new();
    match &published {
        Some(p) => {
            for pkg in p.bases.iter().chain(&p.packages) {
                pins.insert(pkg.destination.clone(), pkg.pin.clone());
            }
            pins.extend(p.index.pins.clone());
        }
        None => {
            for s in &packages {
                pins.insert(s.reference.clone(), s.pin.clone());
            }
            pins.extend(index.pins.clone());
        }
    }
    // The staging directory goes; what was pushed is in the report.
    let temporary_staging = staging_dir.is_some();
    drop(staging_dir);
    let report = BuildReport {
        run_id,
        packages,
        wrappers,
        index,
        published,
        pins,
    };
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
        return super::print_json(&report);
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
        inputs.extend(
            a.inputs
                .iter()
                .map(|i| i.replace("{arch}", p.arch.oci_name())),
        );
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

/// Builds package then wrapper for every arch, the arches in parallel.
fn build_all(
    a: &Args,
    arches: &[TargetArch],
    plan: &[ArchPlan],
) -> anyhow::Result<(String, Vec<StepReport>, Vec<StepReport>)> {
    // One run id for the whole run: the index's coherence gate needs it.
    let run_id = match &a.run_id {
        Some(r) => r.clone(),
        None => {
            let mut parts = Vec::new();
            for p in plan {
                for r in [&p.base, &p.artifact] {
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
    let step_args = |arch: TargetArch, recipe: &Path, base: &Reference, out: &Reference| {
        super::package::StepArgs {
            arch,
            base: base.clone(),
            recipe: recipe.to_path_buf(),
            out: out.clone(),
            inputs: Vec::new(),
            sets: a.sets.clone(),
            versions: a.versions.clone(),
            run_id: Some(run_id.clone()),
            waive: a.waive.clone(),
            threads: Some(per),
            no_cache: a.no_cache,
            json: false,
        }
    };
    // The arches in parallel: each is mostly its own compression work, and
    // the layout takes concurrent writers (blobs by digest, locked index).
    let stages = StageBars::new(plan.iter().map(|p| p.arch), a.json);
    let stages = &stages;
    let results: Vec<anyhow::Result<(StepReport, StepReport)>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .map(|p| {
                let pa = step_args(p.arch, &a.package_recipe, &p.base, &p.package);
                let mut wa = step_args(p.arch, &a.wrapper_recipe, &p.package, &p.wrapper);
                wa.inputs = a
                    .inputs
                    .iter()
                    .map(|i| i.replace("{arch}", p.arch.oci_name()))
                    .collect();
                s.spawn(move || -> anyhow::Result<(StepReport, StepReport)> {
                    let arch = p.arch;
                    stages.stage(arch, &format!("package -> {}", p.package));
                    let req = super::package::request(
                        &pa,
                        RecipeKind::Package,
                        Some(("artifact", &p.artifact)),
                    )?;
                    let pkg = run_step(&req)
                        .with_context(|| format!("package for {arch}"))
                        .inspect_err(|_| stages.done(arch, "package failed"))?;
                    stages.stage(arch, &format!("wrapper -> {}", p.wrapper));
                    let req = super::package::request(&wa, RecipeKind::Wrapper, None)?;
                    let w = run_step(&req)
                        .with_context(|| format!("wrapper for {arch}"))
                        .inspect_err(|_| stages.done(arch, "wrapper failed"))?;
                    stages.done(arch, &format!("done {}", w.digest));
                    Ok((pkg, w))
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
    Ok((run_id, packages, wrappers))
}

/// Pushes the package stages (`--push-all`), then the per-arch images and
/// the index with `publish_index`: the same gates, order and re-reads as
/// `manifest --push`.
fn publish(
    a: &Args,
    plan: &[ArchPlan],
    image: &Reference,
    aliases: &[Reference],
) -> anyhow::Result<Published> {
    let progress = ProgressScope::new("pushed", a.json);
    let registry = a.registry.dest_options(&progress.0)?;
    // --push-all: the bases first, as the seed's `<tag>-base-<arch>` stage
    // tags (the arch's image of a multi-arch base), so every stage a
    // published wrapper was built on is in the registry.
    let mut bases = Vec::new();
    for p in plan {
        let Some(dest) = &p.publish_base else {
            continue;
        };
        progress
            .0
            .note(&format!("ocipack: {}: push base -> {dest}", p.arch));
        let pushed = push_platform_image(
            &p.base,
            Some(&PlatformSpec::linux(p.arch)),
            dest,
            &registry,
            a.force,
        )
        .with_context(|| format!("pushing {} to {dest}", p.base))?;
        if pushed.forced {
            progress.0.note(&format!(
                "ocipack: warning: freshness gate failed, overridden by --force: \
                 {dest} does not serve {}",
                pushed.digest
            ));
        }
        bases.push(pushed);
    }
    let mut packages = Vec::new();
    for p in plan {
        let Some((pkg_dest, _)) = &p.publish else {
            continue;
        };
        if !a.push_all {
            break;
        }
        progress
            .0
            .note(&format!("ocipack: {}: push package -> {pkg_dest}", p.arch));
        let pushed = push_image(&p.package, pkg_dest, &registry, a.force)
            .with_context(|| format!("pushing {} to {pkg_dest}", p.package))?;
        if pushed.forced {
            progress.0.note(&format!(
                "ocipack: warning: freshness gate failed, overridden by --force: \
                 {pkg_dest} does not serve {}",
                pushed.digest
            ));
        }
        packages.push(pushed);
    }
    let wrappers: Vec<String> = plan
        .iter()
        .filter_map(|p| p.publish.as_ref().map(|(_, w)| w.to_string()))
        .collect();
    progress.0.note(&format!(
        "ocipack: push {} then index {image}",
        wrappers.join(", ")
    ));
    let mut opts = IndexOptions::new(image.clone(), plan.iter().map(|p| p.arch).collect(), None)?;
    opts.children = plan.iter().map(|p| (p.arch, p.wrapper.clone())).collect();
    opts.aliases = aliases.to_vec();
    opts.push = true;
    opts.force = a.force;
    opts.registry = registry;
    let index = publish_index(&opts).with_context(|| format!("publishing {image}"))?;
    Ok(Published {
        bases,
        packages,
        index,
    })
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

    fn stage(&self, arch: TargetArch, msg: &str) {
        match self.bar(arch) {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("ocipack: {arch}: {msg}"),
            None => {}
        }
    }

    fn done(&self, arch: TargetArch, msg: &str) {
        if let Some(b) = self.bar(arch) {
            b.finish_with_message(msg.to_string());
        }
    }
}
