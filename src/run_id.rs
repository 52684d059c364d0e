//! The run id (`org.kataglyphis.run-id`): derived from everything that went
//! into a run, so a rerun with the same inputs stamps the same id (and
//! builds the same digests), and a run with any other input another one.
//! The index's coherence gate compares it across children. `build`,
//! `package` and `wrapper` all derive it here (`--run-id` overrides).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::platform::TargetArch;
use crate::recipe::VarInputs;

/// What a run id covers. Per-arch lists follow `arches`.
#[derive(Debug, Clone, Default)]
pub struct RunIdInputs {
    /// The target arches, in index order.
    pub arches: Vec<TargetArch>,
    /// Per arch: the digest the base reference resolves to.
    pub bases: Vec<String>,
    /// Per arch: the digest the artifact reference resolves to (empty for
    /// a step run alone, whose artifact is one of `inputs`).
    pub artifacts: Vec<String>,
    /// The recipes, in stage order; read in full (an unreadable recipe is
    /// an error, never "nothing").
    pub recipes: Vec<PathBuf>,
    /// Input name -> per-arch digests (`--input`).
    pub inputs: BTreeMap<String, Vec<String>>,
    /// `--set` and `--versions`.
    pub vars: VarInputs,
    /// Layers a step wrote (diff_ids): a step run alone also covers its
    /// recipe's directories this way.
    pub layers: Vec<String>,
}

impl RunIdInputs {
    /// `ocipack-` and 16 hex digits of the SHA-256 of the parts.
    ///
    /// The first parts are those the first derivation had (bases and
    /// artifacts per arch, the recipe texts); every later part is written
    /// only when present and not the default, so a run that has none keeps
    /// the id it had (and its digests: the quick start's are pinned).
    pub fn derive(&self) -> Result<String> {
        let mut parts = Vec::new();
        for (i, base) in self.bases.iter().enumerate() {
            parts.push(base.clone());
            if let Some(a) = self.artifacts.get(i) {
                parts.push(a.clone());
            }
        }
        for r in &self.recipes {
            parts.push(std::fs::read_to_string(r).map_err(|e| Error::io(r, e))?);
        }
        if self.arches.as_slice() != TargetArch::ALL.as_slice() {
            let names: Vec<String> = self.arches.iter().map(|a| a.to_string()).collect();
            parts.push(format!("arches {}", names.join(",")));
        }
        for (k, v) in &self.vars.versions {
            parts.push(format!("version {k}={v}"));
        }
        for (k, v) in &self.vars.sets {
            parts.push(format!("set {k}={v}"));
        }
        for (name, digests) in &self.inputs {
            parts.push(format!("input {name}={}", digests.join(",")));
        }
        for l in &self.layers {
            parts.push(format!("layer {l}"));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(derive_run_id(&refs))
    }
}

/// The hash under every run id: `ocipack-` and 16 hex digits of the
/// SHA-256 of the parts, one per line.
fn derive_run_id(parts: &[&str]) -> String {
    let d = sha256(parts.join("\n").as_bytes());
    let hex = d.digest().to_string();
    format!("ocipack-{}", &hex[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn quick_start(dir: &std::path::Path) -> RunIdInputs {
        RunIdInputs {
            arches: TargetArch::ALL.to_vec(),
            bases: vec!["sha256:b".into(); 3],
            artifacts: vec!["sha256:a1".into(), "sha256:a2".into(), "sha256:a3".into()],
            recipes: vec![
                recipe(dir, "package.toml", "[recipe]\nkind = \"package\"\n"),
                recipe(dir, "wrapper.toml", "[recipe]\nkind = \"wrapper\"\n"),
            ],
            inputs: BTreeMap::new(),
            vars: VarInputs::default(),
            layers: Vec::new(),
        }
    }

    #[test]
    fn run_ids_are_stable_and_input_dependent() {
        let a = derive_run_id(&["sha256:1", "sha256:2"]);
        assert_eq!(a, derive_run_id(&["sha256:1", "sha256:2"]));
        assert_ne!(a, derive_run_id(&["sha256:1", "sha256:3"]));
        assert!(a.starts_with("ocipack-") && a.len() == 24);
    }

    #[test]
    fn absent_parts_keep_the_first_derivation() {
        let t = tempfile::tempdir().unwrap();
        let r = quick_start(t.path());
        let mut parts = vec![];
        for a in ["sha256:a1", "sha256:a2", "sha256:a3"] {
            parts.push("sha256:b".to_string());
            parts.push(a.to_string());
        }
        parts.push("[recipe]\nkind = \"package\"\n".into());
        parts.push("[recipe]\nkind = \"wrapper\"\n".into());
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        assert_eq!(r.derive().unwrap(), derive_run_id(&refs));
    }

    #[test]
    fn every_input_changes_the_run_id() {
        let t = tempfile::tempdir().unwrap();
        let base = quick_start(t.path());
        let id = base.derive().unwrap();
        let mut seen = vec![id.clone()];
        let mut check = |r: RunIdInputs, what: &str| {
            let other = r.derive().unwrap();
            assert!(!seen.contains(&other), "{what} did not change the run id");
            seen.push(other);
        };
        let mut r = base.clone();
        r.vars.set("GCC_VERSION=16.1.0").unwrap();
        check(r.clone(), "--set");
        r.vars.set("GCC_VERSION=16.2.0").unwrap();
        check(r, "another --set value");
        let mut r = base.clone();
        r.vars
            .versions
            .insert("GCC_VERSION".into(), "16.1.0".into());
        check(r, "--versions");
        let mut r = base.clone();
        r.inputs.insert(
            "venv".into(),
            vec!["sha256:v1".into(), "sha256:v2".into(), "sha256:v3".into()],
        );
        check(r.clone(), "--input");
        r.inputs.get_mut("venv").unwrap()[2] = "sha256:v4".into();
        check(r, "another --input image");
        let mut r = base.clone();
        r.arches = vec![TargetArch::Arm64, TargetArch::Amd64, TargetArch::Riscv64];
        check(r, "--target-arches order");
        let mut r = base.clone();
        r.artifacts[1] = "sha256:a9".into();
        check(r, "an artifact");
        let r = base.clone();
        std::fs::write(&r.recipes[1], "[recipe]\nkind = \"wrapper\" # edited\n").unwrap();
        check(r, "a recipe");
    }

    #[test]
    fn an_unreadable_recipe_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let mut r = quick_start(t.path());
        r.recipes[0] = t.path().join("missing.toml");
        let e = r.derive().unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
