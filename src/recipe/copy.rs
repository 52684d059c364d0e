//! `[inputs]`, `[[prune]]` and `[[copy]]`: which trees of which input go
//! into which layer.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::context::{line_col, Cx, R};
use super::schema::*;
use super::*;

impl Cx<'_> {
    pub(super) fn inputs(
        &self,
        raw: &BTreeMap<String, Spanned<RawInput>>,
    ) -> R<BTreeMap<String, Input>> {
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

    pub(super) fn prunes(&self, raw: &[Spanned<RawPrune>]) -> R<Vec<String>> {
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

    pub(super) fn layers(
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
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none; add an [inputs.NAME] table".into()
    } else {
        v.join(", ")
    }
}
