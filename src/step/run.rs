//! Running a step: resolve, plan, guard, then write. Nothing is written
//! before every guard passed (or is waived); the tag is set last.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::image::Descriptor;

use super::view::{dir_tree, MergedImage, Selected};
use super::{
    annotations, copy_base_layers, created, derive_run_id, final_config, resolve_input, system,
    write_image, AddedLayer, StepReport,
};
use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::guard::{self, GuardInput};
use crate::image::{resolve_image, ResolvedImage};
use crate::imageconfig;
use crate::layer::{
    layer_from_dir, layer_from_entries, layer_from_image, LayerOptions, MergedTree, SyntheticEntry,
    SyntheticKind,
};
use crate::layout::Layout;
use crate::platform::{PlatformSpec, TargetArch};
use crate::provenance::Provenance;
use crate::recipe::{self, LayerSource, Recipe, RecipeKind, VarInputs};
use crate::reference::{Reference, Selector};
use crate::transport::{open_source, ImageSource};
use crate::tree::{ImageTree, MemTree, Stack};

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
}

struct Input {
    /// `input NAME (REF)`, for errors.
    label: String,
    reference: Reference,
    src: Box<dyn ImageSource>,
    img: ResolvedImage,
    tree: MergedTree,
}

/// One recipe layer, planned: the view the guards judge, and what writes it.
enum Planned {
    Image(Selected, crate::layer::Selection),
    Dir(MemTree),
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

/// Runs a step end to end.
pub fn run_step(req: &StepRequest) -> Result<StepReport> {
    let (out_dir, tag) = out_layout(&req.out)?;
    let base_src = open_source(&req.base)?;
    let base = resolve_image(base_src.as_ref(), Some(&PlatformSpec::linux(req.arch)))?;
    let created = created(req.layer_options.source_date_epoch, &base.config_json);
    let tree_cache = crate::layer::cache::LayerCache::from_options(&req.layer_options);
    let mut vars = req.vars.clone();
    vars.run.insert("CREATED".into(), created.clone());
    let recipe = recipe::load(&req.recipe, req.arch, &vars)?;
    if recipe.kind != req.kind {
        return Err(Error::invalid(
            req.recipe.display().to_string(),
            format!("is a {:?} recipe, not {:?}", recipe.kind, req.kind),
        ));
    }

    // Inputs, and their merged trees (metadata only).
    let mut inputs: BTreeMap<String, Input> = BTreeMap::new();
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
        let src = open_source(&reference)?;
        let img = resolve_input(src.as_ref(), decl.platform, req.arch, recipe.build_arch)?;
        let label = format!("input {name} ({reference})");
        let tree = MergedTree::load_cached(src.as_ref(), &img, tree_cache.as_ref())
            .map_err(|e| e.in_input(&label))?;
        inputs.insert(
            name.clone(),
            Input {
                label,
                reference,
                src,
                img,
                tree,
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
    let base_label = format!("base {}", req.base);
    let base_tree = MergedTree::load_cached(base_src.as_ref(), &base, tree_cache.as_ref())
        .map_err(|e| e.in_input(&base_label))?;
    let base_view = MergedImage::new(req.base.to_string(), &base_tree, base_src.as_ref());

    // Every required path absent from its input, all in one error (a
    // recipe adapted to a new artifact should not take one run per path).
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for l in &recipe.layers {
        if let LayerSource::Image { input, selection } = &l.source {
            for m in selection.missing(&inputs[input].tree)? {
                missing.entry(input).or_default().push(m);
            }
        }
    }
    if !missing.is_empty() {
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
        return Err(crate::layer::select::missing_error(&paths, &location));
    }

    // Plan every layer as a view: what lands where.
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
                    &i.tree,
                    i.src.as_ref(),
                )
                .map_err(|e| e.in_input(&i.label))?;
                Planned::Image(view, sel)
            }
            LayerSource::Dir { dir, dest, owner } => Planned::Dir(dir_tree(dir, dest, *owner)?),
        });
    }
    let mut below: Vec<&dyn ImageTree> = vec![&base_view];
    for p in &planned {
        below.push(match p {
            Planned::Image(v, _) => v,
            Planned::Dir(t) => t,
        });
    }
    let sys = system::plan(
        &recipe.system,
        &Stack {
            layers: below.clone(),
        },
    )?;
    let mut all = below.clone();
    all.push(&sys.tree);
    let final_view = Stack { layers: all };

    // Guards, on the image as it will be, before anything is written.
    let mut added: Vec<String> = Vec::new();
    for p in &planned {
        match p {
            Planned::Image(v, _) => added.extend(v.regular_paths()),
            Planned::Dir(t) => added.extend(t.paths()),
        }
    }
    added.extend(sys.entries.iter().map(|g| g.path.clone()));
    let mut preview = base.config_json.clone();
    imageconfig::set_platform(&mut preview, req.arch)?;
    imageconfig::apply_edit(&mut preview, &recipe.config)?;
    let mut report = guard::run_all(&GuardInput {
        tree: &final_view,
        arch: req.arch,
        settings: &recipe.guards,
        added: Some(&added),
        config: Some(&preview),
        extra_waivers: &req.waivers,
    })?;
    // (a) and (c) run the compiler: only once the static guards passed.
    if report.ok() {
        let mut waivers = recipe.guards.waivers.clone();
        waivers.extend(req.waivers.clone());
        let base_layers: Vec<_> = base
            .layers()
            .iter()
            .zip(base.diff_ids())
            .map(|(d, diff_id)| crate::unpack::UnpackLayer {
                src: base_src.as_ref(),
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
            &recipe.guards,
            &waivers,
            &preview,
            &base_layers,
            |staging| {
                let built = write_layers(
                    &recipe,
                    &planned,
                    &inputs,
                    &sys,
                    staging,
                    &staging_opts,
                    &created,
                )?;
                Ok(built
                    .into_iter()
                    .map(|l| (l.descriptor, l.diff_id))
                    .collect())
            },
        )?;
        for o in outcomes {
            report.push(o, &waivers);
        }
    }
    let report = report.check()?;

    // Write: base layers as they are, then the new ones.
    let out = Layout::open_or_create(&out_dir)?;
    copy_base_layers(base_src.as_ref(), &base, &out).map_err(|e| e.in_input(&base_label))?;
    let added_layers = write_layers(
        &recipe,
        &planned,
        &inputs,
        &sys,
        &out,
        &req.layer_options,
        &created,
    )?;

    // Config, manifest, tag.
    let base_digest = base.descriptor.digest().to_string();
    let run_id = match &req.run_id {
        Some(r) => r.clone(),
        None => {
            let recipe_bytes = std::fs::read(&req.recipe).map_err(|e| Error::io(&req.recipe, e))?;
            let recipe_hash = sha256(&recipe_bytes).to_string();
            let mut parts = vec![base_digest.clone(), recipe_hash, req.arch.to_string()];
            parts.extend(
                inputs
                    .values()
                    .map(|i| i.img.descriptor.digest().to_string()),
            );
            parts.extend(added_layers.iter().map(|l| l.diff_id.clone()));
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            derive_run_id(&refs)
        }
    };
    let provenance = Provenance::stamp(
        run_id.clone(),
        base_digest.clone(),
        recipe.parent_stage.clone(),
    );
    let config = final_config(
        &base,
        &recipe,
        &added_layers,
        &provenance,
        report.waiver_label().as_deref(),
        &created,
    )?;
    let mut layers: Vec<Descriptor> = base.layers().to_vec();
    layers.extend(added_layers.iter().map(|l| l.descriptor.clone()));
    let ann = annotations(&recipe, &req.base, &base_digest);
    let (desc, manifest) = write_image(&out, &config, layers, ann, req.arch)?;
    let ev = Context {
        req,
        recipe: &recipe,
        inputs: &inputs,
        base: &base,
        base_tree: &base_tree,
        base_src: base_src.as_ref(),
        added: &added_layers,
        guards: &report,
    };
    attach_evidence(&ev, &out, &out_dir, &desc, &tag, &run_id, &created)?;
    out.set_tags(&[(tag.clone(), desc.clone())])?;

    let pin = format!("oci:{}@{}", out_dir.display(), desc.digest());
    Ok(StepReport {
        step: format!("{:?}", recipe.kind).to_lowercase(),
        arch: req.arch,
        reference: req.out.to_string(),
        digest: desc.digest().to_string(),
        size: desc.size(),
        pin,
        config_digest: manifest.config().digest().to_string(),
        base: req.base.to_string(),
        base_digest,
        run_id,
        base_layers: base.layers().to_vec(),
        added_layers,
        guards: report,
        warnings: sys.warnings,
    })
}

/// What [`attach_evidence`] reads of a finished step.
struct Context<'a> {
    req: &'a StepRequest,
    recipe: &'a Recipe,
    inputs: &'a BTreeMap<String, Input>,
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
                        .map(|p| {
                            (
                                format!("/{}", p.dest.display()),
                                format!("/{}", p.entry.path.display()),
                            )
                        })
                        .collect(),
                }
            }
            LayerSource::Dir { dir, dest, .. } => Origin::Dir {
                dir: dir
                    .strip_prefix(recipe_dir)
                    .unwrap_or(dir)
                    .display()
                    .to_string(),
                dest: dest.clone(),
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
fn write_layers(
    recipe: &Recipe,
    planned: &[Planned],
    inputs: &BTreeMap<String, Input>,
    sys: &system::SystemPlan,
    out: &Layout,
    opts: &LayerOptions,
    created: &str,
) -> Result<Vec<AddedLayer>> {
    let mut added_layers = Vec::new();
    for (l, p) in recipe.layers.iter().zip(planned) {
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
                path: PathBuf::from(&g.path),
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

/// Runs the guards on any image: every ELF file of the image is judged
/// (there is no "added by this step" here), plus the recipe's settings
/// when one is given.
pub fn verify(
    reference: &Reference,
    arch: TargetArch,
    recipe: Option<&Recipe>,
    waivers: &BTreeMap<String, String>,
) -> Result<guard::GuardReport> {
    let src = open_source(reference)?;
    // A single image is judged whatever its config says (the platform guard
    // reports a mismatch); from an index, the target's entry.
    let img = resolve_input(src.as_ref(), crate::recipe::InputPlatform::Any, arch, arch)?;
    let tree =
        MergedTree::load(src.as_ref(), &img).map_err(|e| e.in_input(reference.to_string()))?;
    let view = MergedImage::new(reference.to_string(), &tree, src.as_ref());
    let paths = view.all_paths();
    view.prefetch(&paths)
        .map_err(|e| e.in_input(reference.to_string()))?;
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
