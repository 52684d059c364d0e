//! Loading a recipe, by phase: parse with spans, expand variables,
//! deserialize strictly ([`load_str`]), then check every section
//! ([`Cx::convert`]; the sections are `copy.rs`, `system.rs`, `config.rs`,
//! `guards.rs`, the value checks `validate.rs`) and evaluate `when` for the
//! target.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::context::{Cx, R};
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

impl Cx<'_> {
    pub(super) fn convert(&self, raw: RawRecipe, vars: Vars) -> R<Recipe> {
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
