//! The build pipeline: package then wrapper for every arch into one
//! layout, the arches in parallel, then the index over them, gated. With a
//! publish target that layout is the staging area: the per-arch images and
//! the index are then pushed through `manifest`'s code (gates, children by
//! digest before the index, tags last, pins).
//!
//! The command line maps its flags to a [`BuildPlan`] and prints the
//! [`BuildReport`]; a library user or a test runs [`build`] the same way.

mod publish;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::pins::Pins;
use crate::index::push::PushedImage;
use crate::index::{plan_index, IndexOptions, IndexReport};
use crate::layer::LayerOptions;
use crate::platform::TargetArch;
use crate::recipe::{RecipeKind, VarInputs};
use crate::reference::Reference;
use crate::registry::RegistryOptions;
use crate::run_id::RunIdInputs;
use crate::spool::SharedSources;
use crate::step::run::{run_step, StepRequest};
use crate::step::StepReport;

/// Everything a build needs, flags already parsed.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The arches to build, in index order.
    pub arches: Vec<TargetArch>,
    /// Base image per arch; `{arch}` is replaced (an index is fine too).
    pub base: String,
    /// Cross artifact per arch; `{arch}` is replaced.
    pub artifact: String,
    /// Wrapper inputs per arch, NAME -> reference with `{arch}`.
    pub inputs: BTreeMap<String, String>,
    pub package_recipe: PathBuf,
    pub wrapper_recipe: PathBuf,
    /// The (staging) layout and the index tag, `oci:DIR:TAG`: per-arch
    /// images are tagged `<tag>-package-<arch>` and `<tag>-<arch>` in it.
    pub out: Reference,
    /// Where to publish, if anywhere.
    pub publish: Option<Publish>,
    /// More tags for the index: the published one, else the layout's.
    pub aliases: Vec<Reference>,
    /// Publish even if a gate fails (reported).
    pub force: bool,
    /// `--set` and `--versions`.
    pub vars: VarInputs,
    /// One run id for every arch; default: derived from every input.
    pub run_id: Option<String>,
    /// Guard -> reason.
    pub waivers: BTreeMap<String, String>,
    /// Compression threads in total, split between the arches.
    pub threads: usize,
    /// Layer options of every step (cache, compression); `threads` is set
    /// per arch from [`BuildPlan::threads`].
    pub layer_options: LayerOptions,
    /// How base, artifacts and inputs in registries are read.
    pub source_registry: RegistryOptions,
    /// How the published images are written.
    pub dest_registry: RegistryOptions,
}

/// Where and how a build publishes.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The index, with its tag: `docker://HOST/REPO:TAG`.
    pub image: Reference,
    /// Also each arch's base (`<tag>-base-<arch>`) and package stage
    /// (`<tag>-package-<arch>`), pushed first.
    pub push_all: bool,
}

/// One arch: inputs, the staged images, and where they are published.
#[derive(Debug, Clone)]
pub struct ArchPlan {
    pub arch: TargetArch,
    pub base: Reference,
    pub artifact: Reference,
    /// The wrapper's inputs, NAME -> reference.
    pub inputs: BTreeMap<String, Reference>,
    pub package: Reference,
    pub wrapper: Reference,
    /// (package, wrapper) destinations when publishing.
    pub publish: Option<(Reference, Reference)>,
    /// Where the base is pushed with `push_all`: `<tag>-base-<arch>`.
    pub publish_base: Option<Reference>,
}

/// What a build did.
#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub run_id: String,
    pub packages: Vec<StepReport>,
    pub wrappers: Vec<StepReport>,
    /// The index in the (staging) layout.
    pub index: IndexReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// Reference -> pin of what this run leaves for the next stage.
    pub pins: Pins,
}

/// What publishing pushed.
#[derive(Debug, Serialize)]
pub struct Published {
    /// Base images (`push_all`, as `<tag>-base-<arch>`), in arch order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<PushedImage>,
    /// Package stage images (`push_all`), in arch order.
    pub packages: Vec<PushedImage>,
    /// The per-arch images and the index, as `manifest --push` reports them.
    pub index: IndexReport,
}

/// Hears about the steps as they run (the command line's spinners). Called
/// from the arches' threads.
pub trait Observer: Sync {
    /// `arch` started `stage` (`package`, `wrapper`), writing `out`.
    fn stage(&self, _arch: TargetArch, _stage: &str, _out: &Reference) {}
    /// `arch`'s `stage` failed (the error is in the result).
    fn failed(&self, _arch: TargetArch, _stage: &str) {}
    /// `arch` is done: its wrapper image is `digest`.
    fn done(&self, _arch: TargetArch, _digest: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

impl BuildPlan {
    /// The index tag (`out`'s).
    pub fn tag(&self) -> Result<&str> {
        self.out.tag().ok_or_else(|| {
            Error::invalid(
                format!("--out {}", self.out),
                "needs a tag, e.g. oci:out/runtime:latest",
            )
        })
    }

    /// Per arch: the references read, staged and published.
    pub fn arch_plans(&self) -> Result<Vec<ArchPlan>> {
        let tag = self.tag()?;
        let mut plans = Vec::new();
        for &arch in &self.arches {
            let (publish, publish_base) = match &self.publish {
                Some(p) => (
                    Some((
                        p.image.with_tag(&format!("{tag}-package-{arch}"))?,
                        p.image.with_tag(&format!("{tag}-{arch}"))?,
                    )),
                    match p.push_all {
                        true => Some(p.image.with_tag(&format!("{tag}-base-{arch}"))?),
                        false => None,
                    },
                ),
                None => (None, None),
            };
            let inputs = self
                .inputs
                .iter()
                .map(|(name, t)| Ok((name.clone(), per_arch(t, arch)?)))
                .collect::<Result<_>>()?;
            plans.push(ArchPlan {
                arch,
                base: per_arch(&self.base, arch)?,
                artifact: per_arch(&self.artifact, arch)?,
                inputs,
                package: self.out.with_tag(&format!("{tag}-package-{arch}"))?,
                wrapper: self.out.with_tag(&format!("{tag}-{arch}"))?,
                publish,
                publish_base,
            });
        }
        Ok(plans)
    }

    /// The run id: `run_id`, else derived from every input (the digests
    /// base, artifact and each `--input` resolve to per arch, both recipes,
    /// the variables, the arches).
    pub fn run_id(&self, plans: &[ArchPlan]) -> Result<String> {
        self.run_id_with(plans, &SharedSources::new(self.source_registry.clone()))
    }

    /// [`BuildPlan::run_id`] through the run's sources, which the steps
    /// then read: a tag is resolved once, so the run id names what is
    /// built even if the tag moves meanwhile.
    fn run_id_with(&self, plans: &[ArchPlan], sources: &SharedSources) -> Result<String> {
        if let Some(r) = &self.run_id {
            return Ok(r.clone());
        }
        let digest = |r: &Reference| -> Result<String> {
            Ok(sources.open(r)?.resolve()?.digest().to_string())
        };
        let mut ids = RunIdInputs {
            arches: self.arches.clone(),
            recipes: vec![self.package_recipe.clone(), self.wrapper_recipe.clone()],
            vars: self.vars.clone(),
            ..RunIdInputs::default()
        };
        for p in plans {
            ids.bases.push(digest(&p.base)?);
            ids.artifacts.push(digest(&p.artifact)?);
            for (name, r) in &p.inputs {
                ids.inputs.entry(name.clone()).or_default().push(digest(r)?);
            }
        }
        ids.derive()
    }

    /// The request of one arch's step.
    fn step(
        &self,
        kind: RecipeKind,
        arch: TargetArch,
        base: &Reference,
        inputs: BTreeMap<String, Reference>,
        out: &Reference,
        run: &Run<'_>,
    ) -> StepRequest {
        let threads = (self.threads / self.arches.len().max(1)).max(1);
        StepRequest {
            kind,
            arch,
            recipe: match kind {
                RecipeKind::Package => self.package_recipe.clone(),
                RecipeKind::Wrapper => self.wrapper_recipe.clone(),
            },
            vars: self.vars.clone(),
            base: base.clone(),
            inputs,
            out: out.clone(),
            run_id: Some(run.id.to_string()),
            waivers: self.waivers.clone(),
            layer_options: LayerOptions {
                threads,
                ..self.layer_options.clone()
            },
            sources: run.sources.clone(),
        }
    }
}

fn per_arch(template: &str, arch: TargetArch) -> Result<Reference> {
    template.replace("{arch}", arch.oci_name()).parse()
}

/// Runs the whole build: every arch's steps, the index in the layout
/// (gated: a build that cannot be indexed stops before anything is
/// pushed), then publishing.
pub fn build(plan: &BuildPlan, observer: &dyn Observer) -> Result<BuildReport> {
    let plans = plan.arch_plans()?;
    let sources = Arc::new(SharedSources::new(plan.source_registry.clone()));
    let run_id = plan.run_id_with(&plans, &sources)?;
    let run = Run {
        id: &run_id,
        sources: &sources,
    };
    let (packages, wrappers) = build_arches(plan, &plans, &run, observer)?;

    let mut opts = IndexOptions::new(plan.out.clone(), plan.arches.clone(), None)?;
    opts.force = plan.force;
    if plan.publish.is_none() {
        opts.aliases = plan.aliases.clone();
    }
    let mut iplan = plan_index(&opts).map_err(|e| e.during(format!("indexing {}", plan.out)))?;
    iplan.check_gates()?;
    let index = iplan.publish()?;

    let published = match &plan.publish {
        Some(p) => Some(publish::publish(plan, &plans, &p.image, &sources)?),
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
    Ok(BuildReport {
        run_id,
        packages,
        wrappers,
        index,
        published,
        pins,
    })
}

/// What every step of one build shares: its run id and its sources.
struct Run<'a> {
    id: &'a str,
    sources: &'a Arc<SharedSources>,
}

/// Package then wrapper for every arch, the arches in parallel: each is
/// mostly its own compression work, and the layout takes concurrent
/// writers (blobs by digest, a locked index).
fn build_arches(
    plan: &BuildPlan,
    plans: &[ArchPlan],
    run: &Run<'_>,
    observer: &dyn Observer,
) -> Result<(Vec<StepReport>, Vec<StepReport>)> {
    let results: Vec<Result<(StepReport, StepReport)>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|p| s.spawn(move || build_arch(plan, p, run, observer)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::invalid("build", "a build thread panicked")))
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
    Ok((packages, wrappers))
}

fn build_arch(
    plan: &BuildPlan,
    p: &ArchPlan,
    run: &Run<'_>,
    observer: &dyn Observer,
) -> Result<(StepReport, StepReport)> {
    let arch = p.arch;
    let artifact = BTreeMap::from([("artifact".to_string(), p.artifact.clone())]);
    let req = plan.step(
        RecipeKind::Package,
        arch,
        &p.base,
        artifact,
        &p.package,
        run,
    );
    observer.stage(arch, "package", &p.package);
    let pkg = run_step(&req)
        .map_err(|e| e.during(format!("package for {arch}")))
        .inspect_err(|_| observer.failed(arch, "package"))?;
    let req = plan.step(
        RecipeKind::Wrapper,
        arch,
        &p.package,
        p.inputs.clone(),
        &p.wrapper,
        run,
    );
    observer.stage(arch, "wrapper", &p.wrapper);
    let w = run_step(&req)
        .map_err(|e| e.during(format!("wrapper for {arch}")))
        .inspect_err(|_| observer.failed(arch, "wrapper"))?;
    observer.done(arch, &w.digest);
    Ok((pkg, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick start (README) on the fixtures.
    fn quick_start() -> BuildPlan {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let fx = root.join("fixtures");
        BuildPlan {
            arches: TargetArch::ALL.to_vec(),
            base: format!("oci:{}:base", fx.join("base").display()),
            artifact: format!(
                "oci:{}:cross-android-{{arch}}",
                fx.join("artifacts").display()
            ),
            inputs: BTreeMap::from([(
                "venv".to_string(),
                format!(
                    "oci:{}:venv-export-{{arch}}",
                    fx.join("artifacts").display()
                ),
            )]),
            package_recipe: root.join("layouts/fixtures/package.toml"),
            wrapper_recipe: root.join("layouts/fixtures/wrapper.toml"),
            out: "oci:/nonexistent/out:latest-cross".parse().unwrap(),
            publish: None,
            aliases: Vec::new(),
            force: false,
            vars: VarInputs::default(),
            run_id: None,
            waivers: BTreeMap::new(),
            threads: 1,
            layer_options: LayerOptions::default(),
            source_registry: RegistryOptions::default(),
            dest_registry: RegistryOptions::default(),
        }
    }

    fn run_id(plan: &BuildPlan) -> Result<String> {
        plan.run_id(&plan.arch_plans()?)
    }

    #[test]
    fn the_quick_start_run_id_is_pinned() {
        // The id the quick start's images carry (tests/pipeline.rs pins
        // their digests).
        assert_eq!(run_id(&quick_start()).unwrap(), "ocipack-ca7e57bd6105df7b");
        let mut given = quick_start();
        given.run_id = Some("run-7".into());
        assert_eq!(run_id(&given).unwrap(), "run-7");
    }

    #[test]
    fn set_versions_and_arches_change_the_run_id() {
        let id = run_id(&quick_start()).unwrap();
        let mut set = quick_start();
        set.vars.set("GCC_VERSION=16.1.0").unwrap();
        let with_set = run_id(&set).unwrap();
        assert_ne!(with_set, id, "--set");
        set.vars.set("GCC_VERSION=16.2.0").unwrap();
        assert_ne!(run_id(&set).unwrap(), with_set, "another --set value");
        let mut versions = quick_start();
        versions
            .vars
            .versions
            .insert("GCC_VERSION".into(), "16.1.0".into());
        assert_ne!(run_id(&versions).unwrap(), id, "--versions");
        let mut arches = quick_start();
        arches.arches = vec![TargetArch::Riscv64];
        assert_ne!(run_id(&arches).unwrap(), id, "--target-arches");
    }

    #[test]
    fn every_input_changes_the_run_id() {
        let id = run_id(&quick_start()).unwrap();
        let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        // Another image as the wrapper's venv (the artifact itself).
        let mut input = quick_start();
        input.inputs.insert(
            "venv".into(),
            format!(
                "oci:{}:cross-android-{{arch}}",
                fx.join("artifacts").display()
            ),
        );
        assert_ne!(run_id(&input).unwrap(), id, "--input");
        // Another base.
        let mut base = quick_start();
        base.base = base.artifact.clone();
        assert_ne!(run_id(&base).unwrap(), id, "--base");
    }

    #[test]
    fn an_unreadable_recipe_is_an_error() {
        let mut plan = quick_start();
        plan.wrapper_recipe = "/nonexistent/wrapper.toml".into();
        let e = run_id(&plan).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/wrapper.toml"), "{e}");
    }

    #[test]
    fn per_arch_references_and_tags() {
        let mut plan = quick_start();
        plan.publish = Some(Publish {
            image: "docker://registry.example/r/runtime:latest-cross"
                .parse()
                .unwrap(),
            push_all: true,
        });
        let plans = plan.arch_plans().unwrap();
        let arm = &plans[1];
        assert_eq!(arm.arch, TargetArch::Arm64);
        assert!(arm.artifact.to_string().ends_with(":cross-android-arm64"));
        assert!(arm.inputs["venv"]
            .to_string()
            .ends_with(":venv-export-arm64"));
        assert_eq!(
            arm.package.to_string(),
            "oci:/nonexistent/out:latest-cross-package-arm64"
        );
        assert_eq!(
            arm.wrapper.to_string(),
            "oci:/nonexistent/out:latest-cross-arm64"
        );
        let (pkg, wrp) = arm.publish.as_ref().unwrap();
        assert_eq!(
            pkg.to_string(),
            "docker://registry.example/r/runtime:latest-cross-package-arm64"
        );
        assert_eq!(
            wrp.to_string(),
            "docker://registry.example/r/runtime:latest-cross-arm64"
        );
        assert_eq!(
            arm.publish_base.as_ref().unwrap().to_string(),
            "docker://registry.example/r/runtime:latest-cross-base-arm64"
        );
        let mut untagged = quick_start();
        untagged.out = "oci:/nonexistent/out".parse().unwrap();
        assert!(untagged.arch_plans().is_err());
    }
}
