//! Running a step in three phases: plan (open and resolve the base and
//! the inputs, check the recipe against them, plan every layer as a view),
//! guard (the static guards on the image as it will be, then the compiler
//! guards), write (layers, config, manifest, the tag last). Nothing is
//! written before every guard passed (or is waived).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::Descriptor;

use super::view::{dir_tree, MergedImage, Selected};
use super::{
    annotations, copy_base_layers, created, final_config, resolve_input, system, write_image,
    AddedLayer, StepReport,
};
use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::guard::{self, GuardInput, GuardReport};
use crate::image::{resolve_image, ResolvedImage};
use crate::imageconfig;
use crate::layer::cache::LayerCache;
use crate::layer::{
    layer_from_dir, layer_from_entries, layer_from_image, LayerOptions, MergedTree, SyntheticEntry,
    SyntheticKind,
};
use crate::layout::Layout;
use crate::platform::{PlatformSpec, TargetArch};
use crate::provenance::Provenance;
use crate::recipe::{self, LayerSource, Recipe, RecipeKind, VarInputs};
use crate::reference::{Reference, Selector};
use crate::run_id::RunIdInputs;
use crate::spool::SharedSources;
use crate::transport::ImageSource;
use crate::tree::{ImagePath, ImageTree, MemTree, Stack};

/// Everything a `package` or `wrapper` run needs.
pub struct StepRequest {
    pub kind: RecipeKind,
    pub arch: TargetArch,
    pub recipe: PathBuf,
    pub vars: VarInputs,
    pub base: Reference,
    /// Input name -> reference (`--artifact` is `artifact`).
    pub inputs: BTreeMap<String, Reference>,
    /// An OCI layout with a tag.
    pub out: Reference,
    pub run_id: Option<String>,
    /// Guard -> reason, from the command line.
    pub waivers: BTreeMap<String, String>,
    pub layer_options: LayerOptions,
    /// Where base and inputs are opened: registry images once per run
    /// (a build shares one set across its arches and steps), with the
    /// run's registry options (credentials, TLS, retries).
    pub sources: Arc<SharedSources>,
}

/// An image the step reads: the base or an input.
struct Opened {
    /// `base REF` or `input NAME (REF)`, for errors.
    label: String,
    reference: Reference,
    src: Arc<dyn ImageSource>,
    img: ResolvedImage,
    tree: Arc<MergedTree>,
}

/// One recipe layer, planned: the view the guards judge, and what writes it.
enum Planned {
    Image(Selected, crate::layer::Selection),
    Dir(MemTree),
}

/// The plan phase's result: everything guards and writer need.
struct StepPlan {
    out_dir: PathBuf,
    tag: String,
    created: String,
    recipe: Recipe,
    base: Opened,
    inputs: BTreeMap<String, Opened>,
    planned: Vec<Planned>,
    sys: system::SystemPlan,
}

/// The output layout and tag of `--out`.
pub fn out_layout(out: &Reference) -> Result<(PathBuf, String)> {
    match out {
        Reference::Layout {
            path,
            selector: Some(Selector::Tag(t)),
        } => Ok((path.clone(), t.clone())),
        other => Err(Error::invalid(
            format!("--out {other}"),
            "expected an OCI layout with a tag, e.g. oci:out/runtime:package-arm64",
        )),
    }
}

/// Runs a step end to end: plan, guard, write.
pub fn run_step(req: &StepRequest) -> Result<StepReport> {
    let plan = plan(req)?;
    let guards = guard_plan(req, &plan)?;
    write(req, &plan, guards)
}

// --- plan -------------------------------------------------------------

fn plan(req: &StepRequest) -> Result<StepPlan> {
    let (out_dir, tag) = out_layout(&req.out)?;
    // A step reads its inputs' layers several times (merged view, guard
    // heads, the ld.so.cache, the new layers, reused blobs): a registry
    // image is spooled so each blob is downloaded once.
    let base_src = req.sources.open(&req.base)?;
    let base_img = resolve_image(base_src.as_ref(), Some(&PlatformSpec::linux(req.arch)))?;
    let created = created(req.layer_options.source_date_epoch, &base_img.config_json);
    let cache = LayerCache::from_options(&req.layer_options);
    let recipe = load_recipe(req, &created)?;
    let inputs = open_inputs(req, &recipe, cache.as_ref())?;
    let base_label = format!("base {}", req.base);
    let base_tree = MergedTree::load_cached(base_src.as_ref(), &base_img, cache.as_ref())
        .map_err(|e| e.in_input(&base_label))?;
    let base = Opened {
        label: base_label,
        reference: req.base.clone(),
        src: base_src,
        img: base_img,
        tree: Arc::new(base_tree),
    };
    check_required_paths(&recipe, &inputs)?;
    let planned = plan_layers(&recipe, &inputs)?;
    let sys = {
        let base_view = base_view(&base);
        let below = views(&base_view, &planned);
        let mut sys = system::plan(
            &recipe.system,
            &Stack {
                layers: below.clone(),
            },
        )?;
        system::add_ld_cache(&recipe.system, &mut sys, &below, &base_view, req.arch)?;
        sys
    };
    Ok(StepPlan {
        out_dir,
        tag,
        created,
        recipe,
        base,
        inputs,
        planned,
        sys,
    })
}

/// Loads the recipe with the run's facts (`CREATED`) and checks its kind.
fn load_recipe(req: &StepRequest, created: &str) -> Result<Recipe> {
    let mut vars = req.vars.clone();
    vars.run.insert("CREATED".into(), created.to_string());
    let recipe = recipe::load(&req.recipe, req.arch, &vars)?;
    if recipe.kind != req.kind {
        return Err(Error::invalid(
            req.recipe.display().to_string(),
            format!("is a {:?} recipe, not {:?}", recipe.kind, req.kind),
        ));
    }
    Ok(recipe)
}

/// Opens every input the recipe declares (the command line's reference,
/// else the recipe's) with its merged tree (metadata only); an input the
/// recipe does not declare is an error.
fn open_inputs(
    req: &StepRequest,
    recipe: &Recipe,
    cache: Option<&LayerCache>,
) -> Result<BTreeMap<String, Opened>> {
    let mut inputs = BTreeMap::new();
    for (name, decl) in &recipe.inputs {
        let reference = match (req.inputs.get(name), &decl.reference) {
            (Some(r), _) => r.clone(),
            (None, Some(r)) => r.parse()?,
            (None, None) => {
                return Err(Error::invalid(
                    format!("input {name}"),
                    format!("no reference: give --input {name}=REF"),
                ))
            }
        };
        let src = req.sources.open(&reference)?;
        let img = resolve_input(src.as_ref(), decl.platform, req.arch, recipe.build_arch)?;
        let label = format!("input {name} ({reference})");
        let tree =
            MergedTree::load_cached(src.as_ref(), &img, cache).map_err(|e| e.in_input(&label))?;
        inputs.insert(
            name.clone(),
            Opened {
                label,
                reference,
                src,
                img,
                tree: Arc::new(tree),
            },
        );
    }
    for name in req.inputs.keys() {
        if !recipe.inputs.contains_key(name) {
            return Err(Error::invalid(
                format!("input {name}"),
                format!("the recipe {} declares no such input", req.recipe.display()),
            ));
        }
    }
    Ok(inputs)
}

/// Every required path absent from its input, all in one error (a recipe
/// adapted to a new artifact should not take one run per path).
fn check_required_paths(recipe: &Recipe, inputs: &BTreeMap<String, Opened>) -> Result<()> {
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for l in &recipe.layers {
        if let LayerSource::Image { input, selection } = &l.source {
            for m in selection.missing(&inputs[input].tree)? {
                missing.entry(input).or_default().push(m);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let (all, wheres): (Vec<String>, Vec<String>) = missing
        .iter()
        .map(|(name, paths)| {
            (
                paths.join(", "),
                format!("input {name} ({})", inputs[*name].reference),
            )
        })
        .unzip();
    let paths: Vec<String> = missing.into_values().flatten().collect();
    let location = if wheres.len() == 1 {
        wheres.join("")
    } else {
        // Several inputs: say which paths each lacks.
        all.iter()
            .zip(&wheres)
            .map(|(p, w)| format!("{w}: {p}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(crate::layer::select::missing_error(&paths, &location))
}

/// Plans every recipe layer as a view: what lands where.
fn plan_layers(recipe: &Recipe, inputs: &BTreeMap<String, Opened>) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    for l in &recipe.layers {
        planned.push(match &l.source {
            LayerSource::Image { input, selection } => {
                let i = &inputs[input];
                let sel = selection.clone();
                let picks = sel.apply(&i.tree)?;
                let view = Selected::new(
                    format!("{} layer from {}", l.name, i.reference),
                    &picks,
                    Arc::clone(&i.tree),
                    Arc::clone(&i.src),
                )
                .map_err(|e| e.in_input(&i.label))?;
                Planned::Image(view, sel)
            }
            LayerSource::Dir { dir, dest, owner } => {
                Planned::Dir(dir_tree(dir, &ImagePath::from(dest), *owner)?)
            }
        });
    }
    Ok(planned)
}

fn base_view(base: &Opened) -> MergedImage<'_> {
    MergedImage::new(base.reference.to_string(), &base.tree, base.src.as_ref())
}

/// The base, then the planned recipe layers, bottom up.
fn views<'a>(base: &'a MergedImage<'a>, planned: &'a [Planned]) -> Vec<&'a dyn ImageTree> {
    let mut below: Vec<&dyn ImageTree> = vec![base];
    for p in planned {
        below.push(match p {
            Planned::Image(v, _) => v,
            Planned::Dir(t) => t,
        });
    }
    below
}

// --- guard ------------------------------------------------------------

/// The guards, on the image as it will be, before anything is written;
/// the compiler guards (dumpmachine, smoke) only once the static ones
/// passed.
fn guard_plan(req: &StepRequest, plan: &StepPlan) -> Result<GuardReport> {
    let base_view = base_view(&plan.base);
    let mut layers = views(&base_view, &plan.planned);
    layers.push(&plan.sys.tree);
    let final_view = Stack { layers };
    let mut added: Vec<ImagePath> = Vec::new();
    for p in &plan.planned {
        match p {
            Planned::Image(v, _) => added.extend(v.regular_paths()),
            Planned::Dir(t) => added.extend(t.paths()),
        }
    }
    added.extend(plan.sys.entries.iter().map(|g| g.path.clone()));
    let mut preview = plan.base.img.config_json.clone();
    imageconfig::set_platform(&mut preview, req.arch)?;
    imageconfig::apply_edit(&mut preview, &plan.recipe.config)?;
    let mut report = guard::run_all(&GuardInput {
        tree: &final_view,
        arch: req.arch,
        settings: &plan.recipe.guards,
        added: Some(&added),
        config: Some(&preview),
        extra_waivers: &req.waivers,
    })?;
    if report.ok() {
        exec_guards(req, plan, &preview, &mut report)?;
    }
    report.check()
}

/// (a) and (c): the image's compiler under qemu-user, in a rootfs of the
/// base's layers and the new ones built uncompressed into a staging layout.
fn exec_guards(
    req: &StepRequest,
    plan: &StepPlan,
    preview: &serde_json::Value,
    report: &mut GuardReport,
) -> Result<()> {
    let mut waivers = plan.recipe.guards.waivers.clone();
    waivers.extend(req.waivers.clone());
    let base = &plan.base;
    let base_layers: Vec<_> = base
        .img
        .layers()
        .iter()
        .zip(base.img.diff_ids())
        .map(|(d, diff_id)| crate::unpack::UnpackLayer {
            src: base.src.as_ref(),
            descriptor: d,
            diff_id,
        })
        .collect();
    let staging_opts = LayerOptions {
        compression: crate::manifest::Compression::None,
        cache: None,
        ..req.layer_options.clone()
    };
    let outcomes = super::exec::exec_guards(
        req.arch,
        &plan.recipe.guards,
        &waivers,
        preview,
        &base_layers,
        |staging| {
            let built = write_layers(plan, staging, &staging_opts)?;
            Ok(built
                .into_iter()
                .map(|l| (l.descriptor, l.diff_id))
                .collect())
        },
    )?;
    for o in outcomes {
        report.push(o, &waivers);
    }
    Ok(())
}

// --- write ------------------------------------------------------------

/// Base layers as they are, then the new ones; config, manifest, the tag.
fn write(req: &StepRequest, plan: &StepPlan, guards: GuardReport) -> Result<StepReport> {
    let base = &plan.base;
    let out = Layout::open_or_create(&plan.out_dir)?;
    copy_base_layers(base.src.as_ref(), &base.img, &out).map_err(|e| e.in_input(&base.label))?;
    let added_layers = write_layers(plan, &out, &req.layer_options)?;

    let base_digest = base.img.descriptor.digest().to_string();
    let run_id = match &req.run_id {
        Some(r) => r.clone(),
        None => step_run_id(req, plan, &added_layers)?,
    };
    let provenance = Provenance::stamp(
        run_id.clone(),
        base_digest.clone(),
        plan.recipe.parent_stage.clone(),
    );
    let config = final_config(
        &base.img,
        &plan.recipe,
        &added_layers,
        &provenance,
        guards.waiver_label().as_deref(),
        &plan.created,
    )?;
    let mut layers: Vec<Descriptor> = base.img.layers().to_vec();
    layers.extend(added_layers.iter().map(|l| l.descriptor.clone()));
    let ann = annotations(&plan.recipe, &req.base, &base_digest);
    let (desc, manifest) = write_image(&out, &config, layers, ann, req.arch)?;
    let ev = Context {
        req,
        recipe: &plan.recipe,
        inputs: &plan.inputs,
        base: &base.img,
        base_tree: &base.tree,
        base_src: base.src.as_ref(),
        added: &added_layers,
        guards: &guards,
    };
    attach_evidence(
        &ev,
        &out,
        &plan.out_dir,
        &desc,
        &plan.tag,
        &run_id,
        &plan.created,
    )?;
    out.set_tags(&[(plan.tag.clone(), desc.clone())])?;

    let pin = format!("oci:{}@{}", plan.out_dir.display(), desc.digest());
    Ok(StepReport {
        step: format!("{:?}", plan.recipe.kind).to_lowercase(),
        arch: req.arch,
        reference: req.out.to_string(),
        digest: desc.digest().to_string(),
        size: desc.size(),
        pin,
        config_digest: manifest.config().digest().to_string(),
        base: req.base.to_string(),
        base_digest,
        run_id,
        base_layers: base.img.layers().to_vec(),
        added_layers,
        guards,
        warnings: plan.sys.warnings.clone(),
    })
}

/// The run id of a step run alone: its base, recipe, inputs, variables
/// and arch, plus the layers it wrote (a recipe's directories are read
/// nowhere else).
fn step_run_id(req: &StepRequest, plan: &StepPlan, added: &[AddedLayer]) -> Result<String> {
    RunIdInputs {
        arches: vec![req.arch],
        bases: vec![plan.base.img.descriptor.digest().to_string()],
        artifacts: Vec::new(),
        recipes: vec![req.recipe.clone()],
        inputs: plan
            .inputs
            .iter()
            .map(|(n, i)| (n.clone(), vec![i.img.descriptor.digest().to_string()]))
            .collect(),
        vars: req.vars.clone(),
        layers: added.iter().map(|l| l.diff_id.clone()).collect(),
    }
    .derive()
}

/// What [`attach_evidence`] reads of a finished step.
struct Context<'a> {
    req: &'a StepRequest,
    recipe: &'a Recipe,
    inputs: &'a BTreeMap<String, Opened>,
    base: &'a ResolvedImage,
    base_tree: &'a MergedTree,
    base_src: &'a dyn ImageSource,
    added: &'a [AddedLayer],
    guards: &'a guard::GuardReport,
}

/// Writes the image's SBOM and provenance as referrers of `desc` (untagged
/// `index.json` entries), before the image's tag.
#[allow(clippy::too_many_arguments)]
fn attach_evidence(
    c: &Context<'_>,
    out: &Layout,
    out_dir: &std::path::Path,
    desc: &Descriptor,
    tag: &str,
    run_id: &str,
    created: &str,
) -> Result<()> {
    use crate::attest::{self, InputImage, Origin, SourceFile};
    let recipe_dir = c.recipe.file.parent().unwrap_or(std::path::Path::new(""));
    let mut layers = Vec::new();
    for (l, built) in c.recipe.layers.iter().zip(c.added) {
        let origin = match &l.source {
            LayerSource::Image { input, selection } => {
                let picks = selection.apply(&c.inputs[input].tree)?;
                Origin::Input {
                    name: input.clone(),
                    paths: picks
                        .values()
                        .map(|p| (p.dest.clone(), p.entry.path.clone()))
                        .collect(),
                }
            }
            LayerSource::Dir { dir, dest, .. } => Origin::Dir {
                dir: dir
                    .strip_prefix(recipe_dir)
                    .unwrap_or(dir)
                    .display()
                    .to_string(),
                dest: ImagePath::from(dest),
            },
        };
        layers.push(attest::AddedLayer {
            name: built.name.clone(),
            descriptor: built.descriptor.clone(),
            origin,
        });
    }
    for extra in c.added.iter().skip(c.recipe.layers.len()) {
        layers.push(attest::AddedLayer {
            name: extra.name.clone(),
            descriptor: extra.descriptor.clone(),
            origin: Origin::System,
        });
    }
    let recipe_bytes = std::fs::read(&c.req.recipe).map_err(|e| Error::io(&c.req.recipe, e))?;
    let out_src = crate::transport::LayoutSource {
        layout: Layout::open(out_dir)?,
        selector: None,
    };
    // An input read from the output layout itself (`build`'s package stage
    // under its wrapper) is named relative to it (`oci:.:TAG`): the
    // documents must not depend on where the layout is staged.
    let same = |p: &std::path::Path| {
        matches!(
            (std::fs::canonicalize(p), std::fs::canonicalize(out_dir)),
            (Ok(a), Ok(b)) if a == b
        )
    };
    let shown = |r: &Reference| match r {
        Reference::Layout { path, selector } if same(path) => Reference::Layout {
            path: ".".into(),
            selector: selector.clone(),
        }
        .to_string(),
        other => other.to_string(),
    };
    let ev = attest::Evidence {
        step: format!("{:?}", c.recipe.kind).to_lowercase(),
        arch: c.req.arch,
        build_arch: c.recipe.build_arch,
        image: desc.clone(),
        image_name: tag.to_string(),
        created: created.to_string(),
        run_id: run_id.to_string(),
        base: InputImage {
            name: "base".into(),
            reference: shown(&c.req.base),
            digest: c.base.descriptor.digest().to_string(),
            platform: c.base.platform_string(),
        },
        inputs: c
            .inputs
            .iter()
            .map(|(name, i)| InputImage {
                name: name.clone(),
                reference: shown(&i.reference),
                digest: i.img.descriptor.digest().to_string(),
                platform: i.img.platform_string(),
            })
            .collect(),
        layers,
        sources: vec![SourceFile {
            name: "recipe".into(),
            path: c.req.recipe.display().to_string(),
            sha256: sha256(&recipe_bytes).digest().to_string(),
        }],
        recipe_name: c.recipe.name.clone(),
        variables: c.recipe.variables.clone(),
        sets: c.req.vars.sets.clone(),
        versions: c.req.vars.versions.clone(),
        waivers: c.req.waivers.clone(),
        guards: c.guards,
        base_tree: c.base_tree,
        base_src: c.base_src,
        out: &out_src,
    };
    let docs = attest::documents(&ev)?;
    crate::referrers::attach(out, desc, &docs, created)?;
    Ok(())
}

/// Writes the recipe's layers, then the system layer, into `out`.
fn write_layers(plan: &StepPlan, out: &Layout, opts: &LayerOptions) -> Result<Vec<AddedLayer>> {
    let (recipe, inputs, sys, created) = (&plan.recipe, &plan.inputs, &plan.sys, &plan.created);
    let mut added_layers = Vec::new();
    for (l, p) in recipe.layers.iter().zip(&plan.planned) {
        let built = match (&l.source, p) {
            (LayerSource::Image { input, .. }, Planned::Image(_, sel)) => {
                let i = &inputs[input];
                layer_from_image(i.src.as_ref(), &i.img, &i.tree, sel, out, opts)
                    .map_err(|e| e.in_input(&i.label))?
            }
            (LayerSource::Dir { dir, dest, owner }, _) => {
                // Files from the recipe's repository carry checkout-time
                // mtimes; clamp them to the step's `created` so two clones
                // build the same digests even without SOURCE_DATE_EPOCH.
                let dir_opts = LayerOptions {
                    source_date_epoch: opts
                        .source_date_epoch
                        .or_else(|| imageconfig::parse_rfc3339(created).or(Some(0))),
                    ..opts.clone()
                };
                layer_from_dir(dir, dest, *owner, out, &dir_opts)?
            }
            _ => return Err(Error::invalid("layer plan", "source mismatch")),
        };
        added_layers.push(AddedLayer {
            name: l.name.clone(),
            descriptor: built.descriptor,
            diff_id: built.diff_id.to_string(),
            entries: built.entries,
            reused: built.reused,
        });
    }
    if !sys.is_empty() {
        let entries = sys
            .entries
            .iter()
            .map(|g| SyntheticEntry {
                path: g.path.clone(),
                kind: match &g.kind {
                    system::GenKind::Dir => SyntheticKind::Dir,
                    system::GenKind::File(b) => SyntheticKind::File(b.clone()),
                    system::GenKind::Symlink(t) => SyntheticKind::Symlink(PathBuf::from(t)),
                },
                mode: g.mode,
                uid: g.uid,
                gid: g.gid,
            })
            .collect();
        let built = layer_from_entries(entries, out, opts)?;
        added_layers.push(AddedLayer {
            name: "system".into(),
            descriptor: built.descriptor,
            diff_id: built.diff_id.to_string(),
            entries: built.entries,
            reused: built.reused,
        });
    }
    Ok(added_layers)
}

/// Resolves the image `verify` judges: a single image whatever its config
/// says (the platform guard reports a mismatch); from an index, the
/// target's entry.
pub fn resolve_for_verify(src: &dyn ImageSource, arch: TargetArch) -> Result<ResolvedImage> {
    resolve_input(src, crate::recipe::InputPlatform::Any, arch, arch)
}

/// Runs the guards on any image: every ELF file of the image is judged
/// (there is no "added by this step" here), plus the recipe's settings
/// when one is given. `src` and `img` are opened and resolved once by the
/// caller, who may also run the exec smoke on them.
pub fn verify(
    name: &str,
    src: &dyn ImageSource,
    img: &ResolvedImage,
    arch: TargetArch,
    recipe: Option<&Recipe>,
    waivers: &BTreeMap<String, String>,
) -> Result<guard::GuardReport> {
    let tree = MergedTree::load(src, img).map_err(|e| e.in_input(name))?;
    let view = MergedImage::new(name.to_string(), &tree, src);
    let paths = view.all_paths();
    view.prefetch(&paths).map_err(|e| e.in_input(name))?;
    let default_settings;
    let settings = match recipe {
        Some(r) => &r.guards,
        None => {
            default_settings = crate::recipe::GuardSettings {
                compiler_links: vec!["/usr/bin/cc".into()],
                symlink_trees: crate::recipe::DEFAULT_SYMLINK_TREES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..Default::default()
            };
            &default_settings
        }
    };
    guard::run_all(&GuardInput {
        tree: &view,
        arch,
        settings,
        added: None,
        config: Some(&img.config_json),
        extra_waivers: waivers,
    })
}
