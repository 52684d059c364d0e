//! `[guards]`: guard settings, waivers and allow-lists.

use std::collections::BTreeSet;

use super::context::{Cx, R};
use super::schema::*;
use super::*;

impl Cx<'_> {
    pub(super) fn guards(&self, g: &RawGuards, system: &SystemSetup) -> R<GuardSettings> {
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
