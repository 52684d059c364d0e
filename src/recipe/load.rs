//! Loading a recipe: parse with spans, expand variables, deserialize
//! strictly, then check every value and evaluate `when` for the target.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::schema::*;
use super::vars::{builtins, VarInputs, Vars};
use super::*;
use crate::error::{Error, Result};

/// Reads and loads a recipe file for `arch`.
pub fn load(path: &Path, arch: TargetArch, inputs: &VarInputs) -> Result<Recipe> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(path, &base_dir, &text, arch, inputs)
}

/// Loads recipe text; `file` names it in errors, `base_dir` resolves
/// `dir =` and `source =` paths.
pub fn load_str(
    file: &Path,
    base_dir: &Path,
    text: &str,
    arch: TargetArch,
    inputs: &VarInputs,
) -> Result<Recipe> {
    let cx = Cx {
        file: file.to_path_buf(),
        text,
        base_dir: base_dir.to_path_buf(),
        arch,
        build_arch: TargetArch::Amd64,
        vars: BTreeMap::new(),
    };
    let mut root = DeTable::parse(text).map_err(|e| cx.toml_err(&e))?;
    let build_arch = peek_build_arch(&cx, root.get_ref())?;
    let cx = Cx { build_arch, ..cx };
    let vars = resolve_vars(&cx, root.get_ref(), inputs)?;
    let cx = Cx {
        vars: vars.all().clone(),
        ..cx
    };
    let mut errors = Vec::new();
    for (k, v) in root.get_mut().iter_mut() {
        if k.get_ref() != "variables" {
            substitute(v, &vars, &mut errors);
        }
    }
    if let Some((span, msg)) = errors.into_iter().next() {
        return Err(cx.err(span, msg));
    }
    let de = toml::de::Deserializer::from(root);
    let raw = RawRecipe::deserialize(de).map_err(|e| cx.toml_err(&e))?;
    cx.convert(raw, vars)
}

struct Cx<'a> {
    file: PathBuf,
    text: &'a str,
    base_dir: PathBuf,
    arch: TargetArch,
    build_arch: TargetArch,
    /// Final variable values, for `when.var`.
    vars: BTreeMap<String, String>,
}

type R<T> = Result<T>;

/// Values of a `when = { var = ... }` variable that switch the entry off
/// (compared case-insensitively); anything else switches it on.
pub const FALSE_VALUES: [&str; 5] = ["", "0", "false", "no", "off"];

/// Whether a variable's value switches a `when = { var = ... }` entry on.
pub fn truthy(value: &str) -> bool {
    let v = value.trim();
    !FALSE_VALUES.iter().any(|f| v.eq_ignore_ascii_case(f))
}

impl Cx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Recipe {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn toml_err(&self, e: &toml::de::Error) -> Error {
        let span = e.span().unwrap_or(0..0);
        self.err(span, e.message().trim().to_string())
    }

    fn at<T>(&self, s: &Spanned<T>, r: std::result::Result<(), String>) -> R<()> {
        r.map_err(|m| self.err(s.span(), m))
    }

    fn abs_path(&self, s: &S) -> R<String> {
        self.at(s, check_abs_path(s.get_ref()))?;
        Ok(s.get_ref().clone())
    }

    /// An absolute path that may be a glob.
    fn abs_glob(&self, s: &S) -> R<String> {
        let v = s.get_ref();
        self.at(s, check_abs_path(v))?;
        if is_glob(v) {
            self.at(s, check_glob(v))?;
        }
        Ok(v.clone())
    }

    fn owner(&self, s: &Option<S>) -> R<Option<(u64, u64)>> {
        match s {
            None => Ok(None),
            Some(s) => parse_owner(s.get_ref())
                .map(Some)
                .map_err(|m| self.err(s.span(), m)),
        }
    }

    fn mode(&self, s: &Option<S>, default: u32) -> R<u32> {
        match s {
            None => Ok(default),
            Some(s) => parse_mode(s.get_ref()).map_err(|m| self.err(s.span(), m)),
        }
    }

    fn duration(&self, s: &Option<S>) -> R<Option<u64>> {
        match s {
            None => Ok(None),
            Some(s) => parse_duration(s.get_ref())
                .map(Some)
                .map_err(|m| self.err(s.span(), m)),
        }
    }

    /// Evaluates a `when` (every condition given must hold); errors for
    /// unknown arch names and undefined variables, whatever the target, so
    /// a typo fails on every arch.
    fn applies(&self, w: &Option<RawWhen>) -> R<bool> {
        let Some(w) = w else { return Ok(true) };
        let var_on = match (&w.var, &w.equals) {
            (None, None) => true,
            (None, Some(e)) => {
                return Err(self.err(
                    e.span(),
                    "`equals` compares a variable: add `var = \"NAME\"`",
                ))
            }
            (Some(v), equals) => {
                let name = v.get_ref();
                self.at(v, super::vars::check_name(name))?;
                let value = self.vars.get(name).ok_or_else(|| {
                    self.err(
                        v.span(),
                        format!(
                            "when.var: undefined variable {name} (give it a default in \
                             [variables], then switch it with --versions or --set {name}=...)"
                        ),
                    )
                })?;
                match equals {
                    Some(e) => value == e.get_ref(),
                    None => truthy(value),
                }
            }
        };
        if let Some(list) = &w.arch {
            let mut hit = false;
            for a in list {
                let parsed: TargetArch = a
                    .get_ref()
                    .parse()
                    .map_err(|e: Error| self.err(a.span(), e.to_string()))?;
                hit |= parsed == self.arch;
            }
            if !hit {
                return Ok(false);
            }
        }
        if let Some(f) = w.foreign {
            if f != (self.arch != self.build_arch) {
                return Ok(false);
            }
        }
        Ok(var_on)
    }

    fn rel_path(&self, s: &S) -> R<PathBuf> {
        let v = s.get_ref();
        let p = Path::new(v);
        let bad = v.is_empty()
            || p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if bad {
            return Err(self.err(
                s.span(),
                format!("{v:?}: expected a path relative to the recipe's directory, without '..'"),
            ));
        }
        Ok(self.base_dir.join(p))
    }

    fn convert(&self, raw: RawRecipe, vars: Vars) -> R<Recipe> {
        let kind = match raw.recipe.kind.get_ref().as_str() {
            "package" => RecipeKind::Package,
            "wrapper" => RecipeKind::Wrapper,
            other => {
                return Err(self.err(
                    raw.recipe.kind.span(),
                    format!("unknown kind {other:?} (expected \"package\" or \"wrapper\")"),
                ))
            }
        };
        let name = raw.recipe.name.get_ref().clone();
        if name.trim().is_empty() {
            return Err(self.err(raw.recipe.name.span(), "empty recipe name"));
        }

        let inputs = self.inputs(&raw.inputs)?;
        let prunes = self.prunes(&raw.prune)?;
        let layers = self.layers(&raw.copy, &inputs, &prunes)?;
        let system = self.system(&raw)?;
        let config = self.config(&raw.config)?;
        let mut annotations = BTreeMap::new();
        for (k, v) in &raw.annotations {
            if k.is_empty() {
                return Err(self.err(v.span(), "empty annotation key"));
            }
            annotations.insert(k.clone(), v.get_ref().clone());
        }
        let guards = self.guards(&raw.guards, &system)?;
        Ok(Recipe {
            file: self.file.clone(),
            name,
            description: raw.recipe.description.map(|s| s.into_inner()),
            kind,
            parent_stage: raw.recipe.parent_stage.map(|s| s.into_inner()),
            arch: self.arch,
            build_arch: self.build_arch,
            variables: vars.all().clone(),
            inputs,
            layers,
            system,
            config,
            annotations,
            guards,
        })
    }

    fn inputs(&self, raw: &BTreeMap<String, Spanned<RawInput>>) -> R<BTreeMap<String, Input>> {
        let mut out = BTreeMap::new();
        for (name, input) in raw {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(self.err(
                    input.span(),
                    format!("input name {name:?}: use letters, digits, '-' and '_'"),
                ));
            }
            let i = input.get_ref();
            let platform = match i.platform.as_ref().map(|s| (s.get_ref().as_str(), s)) {
                None | Some(("target", _)) => InputPlatform::Target,
                Some(("any", _)) => InputPlatform::Any,
                Some((other, s)) => {
                    return Err(self.err(
                        s.span(),
                        format!("platform {other:?}: expected \"target\" or \"any\""),
                    ))
                }
            };
            out.insert(
                name.clone(),
                Input {
                    description: i.description.as_ref().map(|s| s.get_ref().clone()),
                    reference: i.reference.as_ref().map(|s| s.get_ref().clone()),
                    platform,
                },
            );
        }
        Ok(out)
    }

    fn prunes(&self, raw: &[Spanned<RawPrune>]) -> R<Vec<String>> {
        let mut out = Vec::new();
        for p in raw {
            let p_ref = p.get_ref();
            if p_ref.reason.get_ref().trim().is_empty() {
                return Err(self.err(p_ref.reason.span(), "a prune needs a reason"));
            }
            if p_ref.paths.is_empty() {
                return Err(self.err(p.span(), "prune without paths"));
            }
            let applies = self.applies(&p_ref.when)?;
            for s in &p_ref.paths {
                let g = self.abs_glob(s)?;
                if applies {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }

    fn layers(
        &self,
        raw: &[Spanned<RawCopy>],
        inputs: &BTreeMap<String, Input>,
        prunes: &[String],
    ) -> R<Vec<LayerPlan>> {
        let mut layers: Vec<LayerPlan> = Vec::new();
        let mut dests: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for c in raw {
            let span = c.span();
            let c = c.get_ref();
            let owner = self.owner(&c.owner)?;
            let mut exclude = Vec::new();
            for e in &c.exclude {
                exclude.push(self.abs_glob(e)?);
            }
            let applies = self.applies(&c.when)?;
            let (layer_name, source) = match (&c.from, &c.dir) {
                (Some(_), Some(d)) => {
                    return Err(self.err(
                        d.span(),
                        "a copy takes `from` (an input) or `dir`, not both",
                    ))
                }
                (_, Some(d)) => {
                    if !c.paths.is_empty() || c.optional || !c.exclude.is_empty() {
                        return Err(self.err(
                            span,
                            "a `dir` copy takes the whole directory: no `paths`, `optional` or `exclude`",
                        ));
                    }
                    let dest = c
                        .dest
                        .as_ref()
                        .ok_or_else(|| self.err(span.clone(), "a `dir` copy needs `dest`"))?;
                    let dest_s = self.abs_path(dest)?;
                    let dir = self.rel_path(d)?;
                    if applies && !dir.is_dir() {
                        return Err(
                            self.err(d.span(), format!("{} is not a directory", dir.display()))
                        );
                    }
                    let name = c
                        .layer
                        .as_ref()
                        .map(|l| l.get_ref().clone())
                        .unwrap_or_else(|| d.get_ref().clone());
                    (
                        name,
                        LayerSource::Dir {
                            dir,
                            dest: dest_s,
                            owner,
                        },
                    )
                }
                (from, None) => {
                    let input = match from {
                        Some(f) => {
                            if !inputs.contains_key(f.get_ref()) {
                                return Err(self.err(
                                    f.span(),
                                    format!(
                                        "unknown input {:?} (declared: {})",
                                        f.get_ref(),
                                        names(inputs.keys())
                                    ),
                                ));
                            }
                            f.get_ref().clone()
                        }
                        None if inputs.len() == 1 => {
                            inputs.keys().next().cloned().unwrap_or_default()
                        }
                        None => {
                            return Err(self.err(
                                span,
                                format!(
                                    "say which input to copy from: `from = ...` (declared: {})",
                                    names(inputs.keys())
                                ),
                            ))
                        }
                    };
                    if c.paths.is_empty() {
                        return Err(self.err(span.clone(), "a copy needs `paths`"));
                    }
                    let mut rules = Vec::new();
                    for p in &c.paths {
                        let source = self.abs_glob(p)?;
                        rules.push((p, source));
                    }
                    let dest = match &c.dest {
                        None => None,
                        Some(d) => {
                            if rules.len() != 1 || is_glob(&rules[0].1) {
                                return Err(self.err(
                                    d.span(),
                                    "`dest` relocates a single path: give exactly one non-glob path",
                                ));
                            }
                            Some(self.abs_path(d)?)
                        }
                    };
                    let selection = Selection {
                        rules: rules
                            .into_iter()
                            .map(|(_, source)| {
                                let mut ex = exclude.clone();
                                ex.extend(prunes.iter().cloned());
                                SelectRule {
                                    source,
                                    dest: dest.clone(),
                                    optional: c.optional,
                                    exclude: ex,
                                    owner,
                                }
                            })
                            .collect(),
                    };
                    let name = c
                        .layer
                        .as_ref()
                        .map(|l| l.get_ref().clone())
                        .unwrap_or_else(|| "payload".to_string());
                    (name, LayerSource::Image { input, selection })
                }
            };
            if let Some(l) = &c.layer {
                if l.get_ref().trim().is_empty() || l.get_ref() == "system" {
                    return Err(
                        self.err(l.span(), "layer name must be non-empty and not \"system\"")
                    );
                }
            }
            if !applies {
                continue;
            }
            // Two rules landing on the same path would make the layer's
            // content depend on rule order: refuse.
            if let LayerSource::Image { selection, .. } = &source {
                for r in &selection.rules {
                    if is_glob(&r.source) {
                        continue;
                    }
                    let d = r.dest.clone().unwrap_or_else(|| r.source.clone());
                    if let Some(prev) = dests.insert(d.clone(), span.clone()) {
                        let (line, _) = line_col(self.text, prev.start);
                        return Err(self.err(
                            span.clone(),
                            format!("{d} is already copied by the entry at line {line}"),
                        ));
                    }
                }
            }
            match layers.iter_mut().find(|l| l.name == layer_name) {
                None => layers.push(LayerPlan {
                    name: layer_name,
                    source,
                }),
                Some(existing) => match (&mut existing.source, source) {
                    (
                        LayerSource::Image { input, selection },
                        LayerSource::Image {
                            input: i2,
                            selection: s2,
                        },
                    ) if *input == i2 => selection.rules.extend(s2.rules),
                    _ => {
                        return Err(self.err(
                            span,
                            format!(
                                "layer {layer_name:?} already takes from another source; \
                                 one layer holds copies of one input (and a `dir` is a layer of its own)"
                            ),
                        ))
                    }
                },
            }
        }
        Ok(layers)
    }

    fn system(&self, raw: &RawRecipe) -> R<SystemSetup> {
        let mut out = SystemSetup {
            ld_cache: raw.system.ld_cache,
            ..SystemSetup::default()
        };
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        let mut claim = |cx: &Self, path: &str, span: Range<usize>| -> R<()> {
            if let Some(prev) = seen.insert(path.to_string(), span.clone()) {
                let (line, _) = line_col(cx.text, prev.start);
                return Err(cx.err(
                    span,
                    format!("{path} is already written by the entry at line {line}"),
                ));
            }
            Ok(())
        };
        for d in &raw.dir {
            let d = d.get_ref();
            let path = self.abs_path(&d.path)?;
            let mode = self.mode(&d.mode, 0o755)?;
            let owner = self.owner(&d.owner)?.unwrap_or((0, 0));
            if self.applies(&d.when)? {
                claim(self, &path, d.path.span())?;
                out.dirs.push(DirSpec { path, mode, owner });
            }
        }
        for f in &raw.file {
            let span = f.span();
            let f = f.get_ref();
            let path = self.abs_path(&f.path)?;
            let mode = self.mode(&f.mode, 0o644)?;
            let owner = self.owner(&f.owner)?.unwrap_or((0, 0));
            let applies = self.applies(&f.when)?;
            let content =
                match (&f.content, &f.source) {
                    (Some(c), None) => c.get_ref().as_bytes().to_vec(),
                    (None, Some(s)) => {
                        let p = self.rel_path(s)?;
                        if applies {
                            std::fs::read(&p).map_err(|e| {
                                self.err(s.span(), format!("cannot read {}: {e}", p.display()))
                            })?
                        } else {
                            Vec::new()
                        }
                    }
                    _ => return Err(self.err(
                        span,
                        "a file takes exactly one of `content` (inline) or `source` (a repo file)",
                    )),
                };
            if applies {
                claim(self, &path, f.path.span())?;
                out.files.push(FileSpec {
                    path,
                    content,
                    mode,
                    owner,
                });
            }
        }
        for l in &raw.symlink {
            let l = l.get_ref();
            let path = self.abs_path(&l.path)?;
            let target = l.target.get_ref().clone();
            if target.is_empty() || target.contains('\0') {
                return Err(self.err(l.target.span(), "empty or invalid symlink target"));
            }
            let owner = self.owner(&l.owner)?.unwrap_or((0, 0));
            if self.applies(&l.when)? {
                claim(self, &path, l.path.span())?;
                out.symlinks.push(SymlinkSpec {
                    path,
                    target,
                    owner,
                });
            }
        }
        let mut alt_names = BTreeSet::new();
        for a in &raw.alternative {
            let a = a.get_ref();
            let name = a.name.get_ref().clone();
            self.at(&a.name, check_alt_name(&name))?;
            let link = self.abs_path(&a.link)?;
            let path = self.abs_path(&a.path)?;
            let priority = i32::try_from(*a.priority.get_ref()).map_err(|_| {
                self.err(
                    a.priority.span(),
                    "priority must fit a 32-bit signed integer",
                )
            })?;
            let mut slaves = Vec::new();
            let mut slave_names = BTreeSet::new();
            let mut slave_links = BTreeSet::from([link.clone()]);
            for s in &a.slaves {
                let s = s.get_ref();
                let sname = s.name.get_ref().clone();
                self.at(&s.name, check_alt_name(&sname))?;
                if sname == name || !slave_names.insert(sname.clone()) {
                    return Err(self.err(s.name.span(), format!("duplicate slave name {sname}")));
                }
                let slink = self.abs_path(&s.link)?;
                if !slave_links.insert(slink.clone()) {
                    return Err(self.err(s.link.span(), format!("duplicate link {slink}")));
                }
                slaves.push(SlaveSpec {
                    name: sname,
                    link: slink,
                    path: self.abs_path(&s.path)?,
                });
            }
            if self.applies(&a.when)? {
                // Several choices for one name are fine; the last --set wins.
                alt_names.insert(name.clone());
                out.alternatives.push(AlternativeSpec {
                    name,
                    link,
                    path,
                    priority,
                    slaves,
                    set: a.set.unwrap_or(true),
                });
            }
        }
        Ok(out)
    }

    fn config(&self, c: &RawConfig) -> R<ConfigEdit> {
        let mut out = ConfigEdit::default();
        if let Some(u) = &c.user {
            if u.get_ref().trim().is_empty() || u.get_ref().contains(char::is_whitespace) {
                return Err(self.err(u.span(), "user must be a name or uid[:gid] without spaces"));
            }
            out.user = Some(u.get_ref().clone());
        }
        if let Some(w) = &c.workdir {
            out.workdir = Some(self.abs_path(w)?);
        }
        for v in &c.volumes {
            out.volumes.push(self.abs_path(v)?);
        }
        out.entrypoint = c
            .entrypoint
            .as_ref()
            .map(|v| v.iter().map(|s| s.get_ref().clone()).collect());
        out.cmd = c
            .cmd
            .as_ref()
            .map(|v| v.iter().map(|s| s.get_ref().clone()).collect());
        for p in &c.exposed_ports {
            self.at(p, check_port(p.get_ref()))?;
            let v = p.get_ref();
            out.exposed_ports.push(if v.contains('/') {
                v.clone()
            } else {
                format!("{v}/tcp")
            });
        }
        out.stop_signal = c.stop_signal.as_ref().map(|s| s.get_ref().clone());
        for (k, v) in &c.env.set {
            self.at(v, super::vars::check_name(k))?;
            out.env.set.insert(k.clone(), v.get_ref().clone());
        }
        for (which, map, dst) in [
            ("prepend", &c.env.prepend, &mut out.env.prepend),
            ("append", &c.env.append, &mut out.env.append),
        ] {
            for (k, items) in map {
                let mut list = Vec::new();
                for s in items {
                    self.at(s, super::vars::check_name(k))?;
                    if s.get_ref().is_empty() || s.get_ref().contains(':') {
                        return Err(self.err(
                            s.span(),
                            format!("{which} {k}: one non-empty item per string, without ':'"),
                        ));
                    }
                    list.push(s.get_ref().clone());
                }
                dst.insert(k.clone(), list);
            }
        }
        for (k, v) in &c.labels {
            if k.is_empty() {
                return Err(self.err(v.span(), "empty label key"));
            }
            out.labels.insert(k.clone(), v.get_ref().clone());
        }
        if let Some(h) = &c.healthcheck {
            let span = h.span();
            let h = h.get_ref();
            let test: Vec<String> = h.test.iter().map(|s| s.get_ref().clone()).collect();
            match test.first().map(String::as_str) {
                Some("NONE") if test.len() == 1 => {}
                Some("CMD" | "CMD-SHELL") if test.len() > 1 => {}
                _ => {
                    return Err(self.err(
                        h.test.first().map_or(span, |s| s.span()),
                        "healthcheck.test: [\"CMD\", args...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]",
                    ))
                }
            }
            let retries = match &h.retries {
                None => None,
                Some(r) => Some(
                    u64::try_from(*r.get_ref())
                        .map_err(|_| self.err(r.span(), "retries must not be negative"))?,
                ),
            };
            out.healthcheck = Some(Healthcheck {
                test,
                interval: self.duration(&h.interval)?,
                timeout: self.duration(&h.timeout)?,
                start_period: self.duration(&h.start_period)?,
                start_interval: self.duration(&h.start_interval)?,
                retries,
            });
        }
        Ok(out)
    }

    fn guards(&self, g: &RawGuards, system: &SystemSetup) -> R<GuardSettings> {
        let mut out = GuardSettings::default();
        for (name, reason) in &g.waive {
            if !GUARD_NAMES.contains(&name.as_str()) {
                return Err(self.err(
                    reason.span(),
                    format!(
                        "unknown guard {name:?} (guards: {})",
                        GUARD_NAMES.join(", ")
                    ),
                ));
            }
            if reason.get_ref().trim().is_empty() {
                return Err(self.err(reason.span(), "a waiver needs a reason"));
            }
            out.waivers.insert(name.clone(), reason.get_ref().clone());
        }
        for r in &g.required {
            out.required.push(self.abs_path(r)?);
        }
        for a in &g.elf.allow {
            let a = a.get_ref();
            let glob = self.abs_glob(&a.glob)?;
            if a.reason.get_ref().trim().is_empty() {
                return Err(self.err(a.reason.span(), "an allow-list entry needs a reason"));
            }
            if self.applies(&a.when)? {
                out.elf_allow.push(ElfAllow {
                    glob,
                    reason: a.reason.get_ref().clone(),
                });
            }
        }
        out.compiler_links = match &g.compiler.links {
            Some(list) => {
                let mut v = Vec::new();
                for l in list {
                    v.push(self.abs_path(l)?);
                }
                v
            }
            None => {
                let mut v = vec!["/usr/bin/cc".to_string()];
                for a in &system.alternatives {
                    v.push(a.link.clone());
                    v.extend(a.slaves.iter().map(|s| s.link.clone()));
                }
                let mut seen = BTreeSet::new();
                v.retain(|x| seen.insert(x.clone()));
                v
            }
        };
        out.gcc_prefix = match &g.compiler.gcc_prefix {
            Some(p) => Some(self.abs_path(p)?),
            None => None,
        };
        out.gcc_version = g.compiler.gcc_version.as_ref().map(|s| s.get_ref().clone());
        if out.gcc_prefix.is_some() != out.gcc_version.is_some() {
            let span = g
                .compiler
                .gcc_prefix
                .as_ref()
                .or(g.compiler.gcc_version.as_ref())
                .map(|s| s.span())
                .unwrap_or(0..0);
            return Err(self.err(span, "give both gcc_prefix and gcc_version"));
        }
        out.symlink_trees = match &g.symlinks.trees {
            Some(list) => {
                let mut v = Vec::new();
                for t in list {
                    v.push(self.abs_glob(t)?);
                }
                v
            }
            None => DEFAULT_SYMLINK_TREES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        Ok(out)
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none; add an [inputs.NAME] table".into()
    } else {
        v.join(", ")
    }
}

fn peek_build_arch(cx: &Cx<'_>, root: &DeTable<'_>) -> R<TargetArch> {
    let v = root
        .get("recipe")
        .and_then(|r| r.get_ref().as_table())
        .and_then(|t| t.get("build_arch"));
    match v {
        None => Ok(TargetArch::Amd64),
        Some(v) => match v.get_ref().as_str() {
            Some(s) => s
                .parse()
                .map_err(|e: Error| cx.err(v.span(), e.to_string())),
            None => Err(cx.err(v.span(), "build_arch must be a string")),
        },
    }
}

fn resolve_vars(cx: &Cx<'_>, root: &DeTable<'_>, inputs: &VarInputs) -> R<Vars> {
    let mut defaults = BTreeMap::new();
    let mut spans = BTreeMap::new();
    if let Some(v) = root.get("variables") {
        let table = v
            .get_ref()
            .as_table()
            .ok_or_else(|| cx.err(v.span(), "[variables] must be a table of strings"))?;
        for (k, val) in table.iter() {
            let s = val.get_ref().as_str().ok_or_else(|| {
                cx.err(
                    val.span(),
                    format!("variable {} must be a string", k.get_ref()),
                )
            })?;
            super::vars::check_name(k.get_ref()).map_err(|m| cx.err(k.span(), m))?;
            defaults.insert(k.get_ref().to_string(), s.to_string());
            spans.insert(k.get_ref().to_string(), val.span());
        }
    }
    Vars::resolve(builtins(cx.arch, cx.build_arch), &defaults, inputs).map_err(|(name, msg)| {
        match name.and_then(|n| spans.get(&n).cloned()) {
            Some(span) => cx.err(span, msg),
            None => cx.err(0..0, msg),
        }
    })
}

fn substitute(v: &mut Spanned<DeValue<'_>>, vars: &Vars, errors: &mut Vec<(Range<usize>, String)>) {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) => match vars.expand(s) {
            Ok(new) => {
                if new != **s {
                    *s = Cow::Owned(new);
                }
            }
            Err(m) => errors.push((span, m)),
        },
        DeValue::Array(a) => {
            for item in a.iter_mut() {
                substitute(item, vars, errors);
            }
        }
        DeValue::Table(t) => {
            for (_, item) in t.iter_mut() {
                substitute(item, vars, errors);
            }
        }
        _ => {}
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Whether a path is a glob pattern.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// A normalised absolute path: `/`-rooted, no empty, `.` or `..`
/// components, no trailing slash.
pub fn check_abs_path(s: &str) -> std::result::Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?}: expected an absolute path (starting with '/')"
        ));
    }
    if s.contains(['\0', '\n']) {
        return Err(format!("{s:?}: control characters in a path"));
    }
    if s == "/" {
        return Ok(());
    }
    if s.ends_with('/') {
        return Err(format!("{s:?}: remove the trailing '/'"));
    }
    for part in s[1..].split('/') {
        match part {
            "" => return Err(format!("{s:?}: empty path component ('//')")),
            "." | ".." => return Err(format!("{s:?}: '.' and '..' are not allowed in paths")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a glob (`*` stays within a component, `**` crosses them).
pub fn check_glob(s: &str) -> std::result::Result<(), String> {
    globset::GlobBuilder::new(s)
        .literal_separator(true)
        .build()
        .map(|_| ())
        .map_err(|e| format!("{s:?}: bad glob: {e}"))
}

fn check_alt_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.contains(['/', ' ', '\n', '\t']) {
        Err(format!("alternative name {s:?}: no '/' or whitespace"))
    } else {
        Ok(())
    }
}

fn check_port(s: &str) -> std::result::Result<(), String> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let ok = port.parse::<u16>().is_ok_and(|p| p > 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?}: expected PORT or PORT/tcp|udp|sctp"))
    }
}

/// `UID[:GID]`, numeric (names would need the image's `/etc/passwd`).
pub fn parse_owner(s: &str) -> std::result::Result<(u64, u64), String> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    match (u.parse::<u64>(), g.parse::<u64>()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(format!(
            "owner {s:?}: expected numeric UID or UID:GID, e.g. \"1001:1001\""
        )),
    }
}

/// An octal mode string such as `"0755"` (strings only: a TOML integer
/// 755 would silently mean 0o1363).
pub fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!("mode {s:?}: expected octal like \"0755\"")),
    }
}

/// Go-style durations (`30s`, `1m30s`, `500ms`) to nanoseconds, as Docker's
/// `Healthcheck` stores them.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("duration {s:?}: expected e.g. \"30s\", \"1m30s\", \"500ms\"");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..u_end] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[u_end..];
    }
    Ok(total)
}
