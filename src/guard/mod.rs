//! Architecture guards: the checks that make a wrong-architecture image
//! impossible to publish. Each guard reports *every* offender (path and
//! what was found), not just the first. A guard fails the step unless it
//! is waived by name; a waived guard still runs, and the waiver is recorded
//! in the image (label [`waiver_label`]).
//!
//! Guards work on an [`ImageTree`] (the merged view of the image, resolved
//! inside the image, never on the host); the ELF guard can also consume a
//! layer's tar stream, so a big payload is judged in one sequential pass.

pub mod compiler;
pub mod elf;
pub mod paths;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::platform::TargetArch;
use crate::recipe::GuardSettings;
use crate::tree::{ImagePath, ImageTree};

/// Label recording the waivers an image was built with.
pub use crate::labels::guard_waivers as waiver_label;

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offender {
    pub path: String,
    pub found: String,
}

/// An ELF that did not match but sits under an allow-listed glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowed {
    pub path: String,
    pub found: String,
    pub reason: String,
}

/// The result of one guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardOutcome {
    pub guard: String,
    /// Items looked at (ELF files, links, trees, paths).
    pub checked: u64,
    pub offenders: Vec<Offender>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Allowed>,
    /// Facts worth showing even on success (e.g. a resolved chain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The waiver's reason, when this guard is waived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived: Option<String>,
}

impl GuardOutcome {
    pub fn new(guard: &str) -> GuardOutcome {
        GuardOutcome {
            guard: guard.to_string(),
            checked: 0,
            offenders: Vec::new(),
            allowed: Vec::new(),
            notes: Vec::new(),
            waived: None,
        }
    }

    pub fn offend(&mut self, path: impl Into<String>, found: impl Into<String>) {
        self.offenders.push(Offender {
            path: path.into(),
            found: found.into(),
        });
    }

    pub fn passed(&self) -> bool {
        self.offenders.is_empty()
    }

    /// Passed, or failed under a waiver.
    pub fn acceptable(&self) -> bool {
        self.passed() || self.waived.is_some()
    }
}

/// All guards of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardReport {
    pub arch: TargetArch,
    pub guards: Vec<GuardOutcome>,
}

impl GuardReport {
    pub fn new(arch: TargetArch) -> GuardReport {
        GuardReport {
            arch,
            guards: Vec::new(),
        }
    }

    /// Adds an outcome, marking it waived when `waivers` names it.
    pub fn push(&mut self, mut outcome: GuardOutcome, waivers: &BTreeMap<String, String>) {
        if let Some(reason) = waivers.get(&outcome.guard) {
            outcome.waived = Some(reason.clone());
        }
        self.guards.push(outcome);
    }

    pub fn ok(&self) -> bool {
        self.guards.iter().all(GuardOutcome::acceptable)
    }

    /// The label value recording waivers (`elf: reason; compiler: reason`).
    pub fn waiver_label(&self) -> Option<String> {
        let parts: Vec<String> = self
            .guards
            .iter()
            .filter_map(|g| g.waived.as_ref().map(|r| format!("{}: {r}", g.guard)))
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// A human summary listing every offender of every failed guard.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for g in &self.guards {
            let state = if g.passed() {
                "ok"
            } else if g.waived.is_some() {
                "FAILED (waived)"
            } else {
                "FAILED"
            };
            s.push_str(&format!(
                "{} guard ({}): {state}, {} checked, {} offender(s)\n",
                g.guard,
                self.arch,
                g.checked,
                g.offenders.len()
            ));
            for o in &g.offenders {
                s.push_str(&format!("  {}: {}\n", o.path, o.found));
            }
            if let Some(r) = &g.waived {
                s.push_str(&format!("  waived: {r}\n"));
            }
        }
        s
    }

    /// `Err(Error::Guard)` with the summary unless every guard passed or
    /// is waived.
    pub fn check(self) -> Result<GuardReport> {
        if self.ok() {
            Ok(self)
        } else {
            Err(Error::Guard(format!(
                "image for {} rejected:\n{}",
                self.arch,
                self.summary().trim_end()
            )))
        }
    }
}

/// What to check.
pub struct GuardInput<'a> {
    pub tree: &'a dyn ImageTree,
    pub arch: TargetArch,
    pub settings: &'a GuardSettings,
    /// Paths the step added (the ELF guard's scope); `None` = every path.
    pub added: Option<&'a [ImagePath]>,
    /// The final config, for the platform guard.
    pub config: Option<&'a serde_json::Value>,
    /// Extra waivers (guard -> reason), e.g. from the command line.
    pub extra_waivers: &'a BTreeMap<String, String>,
}

/// Runs every guard over a tree.
pub fn run_all(input: &GuardInput<'_>) -> Result<GuardReport> {
    let mut waivers = input.settings.waivers.clone();
    waivers.extend(input.extra_waivers.clone());
    let mut report = GuardReport::new(input.arch);
    let all;
    let added: &[ImagePath] = match input.added {
        Some(a) => a,
        None => {
            all = input.tree.paths();
            &all
        }
    };
    let elf = elf::check_tree(input.tree, added, input.arch, &input.settings.elf_allow)?;
    report.push(elf, &waivers);
    report.push(
        compiler::check(input.tree, input.arch, input.settings)?,
        &waivers,
    );
    report.push(
        paths::dangling_symlinks(input.tree, &input.settings.symlink_trees)?,
        &waivers,
    );
    report.push(
        paths::required(input.tree, &input.settings.required),
        &waivers,
    );
    if let Some(cfg) = input.config {
        report.push(paths::platform(cfg, input.arch), &waivers);
        report.push(paths::entrypoint(input.tree, cfg), &waivers);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_all_over_a_fake_image() {
        use crate::elf::tests::header;
        use crate::tree::MemTree;
        let mut t = MemTree::new("img");
        t.add_file("/opt/gcc-16.1.0/bin/gcc", &header(64, true, 183, 0))
            .add_dir("/opt/gcc-16.1.0/lib/gcc/aarch64-linux-gnu/16.1.0")
            .add_symlink("/etc/alternatives/cc", "/opt/gcc-16.1.0/bin/gcc")
            .add_symlink("/usr/bin/cc", "/etc/alternatives/cc")
            .add_file("/opt/lib/evil.so", &header(64, true, 62, 0))
            .add_symlink("/usr/lib/python3/lib-dynload/x.so", "/missing");
        let settings = GuardSettings {
            compiler_links: vec!["/usr/bin/cc".into()],
            gcc_prefix: Some("/opt/gcc-16.1.0".into()),
            gcc_version: Some("16.1.0".into()),
            required: vec!["/usr/bin/cc".into()],
            symlink_trees: vec!["/**/lib-dynload".into()],
            ..Default::default()
        };
        let config = serde_json::json!({"os": "linux", "architecture": "arm64"});
        let extra = BTreeMap::new();
        let input = GuardInput {
            tree: &t,
            arch: TargetArch::Arm64,
            settings: &settings,
            added: None,
            config: Some(&config),
            extra_waivers: &extra,
        };
        let r = run_all(&input).unwrap();
        let failed: Vec<&str> = r
            .guards
            .iter()
            .filter(|g| !g.passed())
            .map(|g| g.guard.as_str())
            .collect();
        assert_eq!(failed, ["elf", "symlinks"]);
        assert!(!r.ok());
        let mut extra2 = extra.clone();
        extra2.insert("symlinks".into(), "python is rebuilt later".into());
        extra2.insert("elf".into(), "test".into());
        let input = GuardInput {
            extra_waivers: &extra2,
            ..input
        };
        let r = run_all(&input).unwrap();
        assert!(r.ok());
        assert_eq!(
            r.waiver_label().unwrap(),
            "elf: test; symlinks: python is rebuilt later"
        );
    }

    #[test]
    fn waivers_and_summary() {
        let mut r = GuardReport::new(TargetArch::Riscv64);
        let mut g = GuardOutcome::new("elf");
        g.checked = 3;
        g.offend("/a", "x86-64");
        g.offend("/b", "x86-64");
        let mut w = BTreeMap::new();
        r.push(g.clone(), &w);
        assert!(!r.ok());
        let s = r.summary();
        assert!(s.contains("/a: x86-64") && s.contains("/b: x86-64"), "{s}");
        let e = r.clone().check().unwrap_err().to_string();
        assert!(e.contains("/b"), "{e}");

        w.insert("elf".into(), "vendor blob".into());
        let mut r = GuardReport::new(TargetArch::Riscv64);
        r.push(g, &w);
        assert!(r.ok());
        assert_eq!(r.waiver_label().as_deref(), Some("elf: vendor blob"));
        assert!(r.check().is_ok());
    }
}
