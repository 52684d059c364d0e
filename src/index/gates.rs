//! The publishing gates. Each answers one way a multi-arch tag shipped
//! wrong: an index with arches missing (completeness), one mixing builds
//! (coherence), one whose entries are not what the per-arch tags hold after
//! the push (freshness).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::children::{ChildInfo, MissingChild};
use crate::labels::REVISION;
use crate::platform::TargetArch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    Completeness,
    Coherence,
    Freshness,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gate::Completeness => "completeness",
            Gate::Coherence => "coherence",
            Gate::Freshness => "freshness",
        })
    }
}

/// The outcome of one gate.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: Gate,
    pub passed: bool,
    /// Failed, and `--force` let it through.
    pub forced: bool,
    /// Why it failed, one line per problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What was checked, or why something was not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl GateResult {
    fn new(gate: Gate, problems: Vec<String>, notes: Vec<String>) -> GateResult {
        GateResult {
            gate,
            passed: problems.is_empty(),
            forced: false,
            problems,
            notes,
        }
    }
}

/// The arches in the index must be exactly `targets`: every child found,
/// and each child's config naming the arch it stands for.
pub fn completeness(
    targets: &[TargetArch],
    children: &[ChildInfo],
    missing: &[MissingChild],
) -> GateResult {
    let mut problems = Vec::new();
    for m in missing {
        problems.push(format!(
            "{} missing: {} ({})",
            m.arch, m.reference, m.reason
        ));
    }
    let mut found = Vec::new();
    for c in children {
        match c.config_arch {
            Some(a) if a == c.arch => found.push(a),
            Some(a) => {
                found.push(a);
                problems.push(format!(
                    "{} child {} is a {} image",
                    c.arch, c.reference, c.platform
                ));
            }
            None => problems.push(format!(
                "{} child {} has platform {}, not one of amd64, arm64, riscv64",
                c.arch, c.reference, c.platform
            )),
        }
    }
    let want: BTreeSet<TargetArch> = targets.iter().copied().collect();
    let have: BTreeSet<TargetArch> = found.iter().copied().collect();
    if have.len() != found.len() {
        problems.push(format!("duplicate platforms: {}", list(&found)));
    }
    if have != want {
        problems.push(format!(
            "the index would hold [{}], --target-arches asks for [{}]",
            list(&have.iter().copied().collect::<Vec<_>>()),
            list(targets)
        ));
    }
    let notes = vec![format!("platforms: [{}]", list(&found))];
    GateResult::new(Gate::Completeness, problems, notes)
}

/// What to do about children from different runs, before `--force`: a run
/// id is derived from each step's own inputs, so per-arch `package` and
/// `wrapper` runs differ unless they are given one.
pub const RUN_ID_HINT: &str = "to build the arches as one run, pass the same `--run-id ID` \
to every per-arch `ocipack package` and \
`ocipack wrapper` run, or build them with one `ocipack build`; --force publishes the \
mixed index anyway";

/// Every child must come from one run: the same run-id label and, where
/// recorded, the same parent stage and source revision. Parent digests are
/// per arch by nature, so they are not compared with each other but with
/// the parent stage's tag when it was found ([`ChildInfo::parent_now`]): a
/// child built on a parent that has since been replaced is stale.
/// With `require_provenance` (`--repair`), children without a run id fail.
pub fn coherence(children: &[ChildInfo], require_provenance: bool) -> GateResult {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let run_ids: Vec<(&ChildInfo, Option<&str>)> = children
        .iter()
        .map(|c| (c, c.provenance.run_id.as_deref()))
        .collect();
    let present: BTreeSet<&str> = run_ids.iter().filter_map(|(_, r)| *r).collect();
    let run_id_label = crate::labels::run_id();
    if present.is_empty() {
        if !children.is_empty() {
            if require_provenance {
                problems.push(format!(
                    "no child carries the {run_id_label} label, so nothing shows they belong together"
                ));
            } else {
                notes.push(format!(
                    "no child carries {run_id_label}; run ids not compared"
                ));
            }
        }
    } else {
        for (c, r) in &run_ids {
            if r.is_none() {
                problems.push(format!(
                    "{} ({}) has no {run_id_label} label",
                    c.arch, c.reference
                ));
            }
        }
        if present.len() > 1 {
            problems.push(format!("run ids differ: {}", per_child(&run_ids)));
        } else if let Some(id) = present.first() {
            notes.push(format!("run id {id}"));
        }
        if !problems.is_empty() {
            problems.push(RUN_ID_HINT.to_string());
        }
    }
    for (label, get) in [
        (
            crate::labels::parent_stage(),
            parent_stage as fn(&ChildInfo) -> Option<&str>,
        ),
        (REVISION.to_string(), revision),
    ] {
        let values: Vec<(&ChildInfo, Option<&str>)> =
            children.iter().map(|c| (c, get(c))).collect();
        let distinct: BTreeSet<&str> = values.iter().filter_map(|(_, v)| *v).collect();
        if distinct.len() > 1 {
            problems.push(format!("{label} differs: {}", per_child(&values)));
        }
    }
    for c in children {
        let (Some(recorded), Some(now)) = (&c.provenance.parent_digest, &c.parent_now) else {
            continue;
        };
        let recorded = recorded
            .rsplit_once('@')
            .map_or(recorded.as_str(), |(_, d)| d);
        if recorded.trim() != now.digest {
            problems.push(format!(
                "{} ({}) is stale: built on {}, {} now holds {}",
                c.arch,
                c.reference,
                recorded.trim(),
                now.reference,
                now.digest
            ));
        } else {
            notes.push(format!("{} parent {} is current", c.arch, now.reference));
        }
    }
    GateResult::new(Gate::Coherence, problems, notes)
}

/// One post-write check: what a fresh read of `reference` returned.
#[derive(Debug, Clone)]
pub struct FreshCheck {
    pub reference: String,
    pub expected: String,
    /// The digest it resolves to now, or why it could not be read.
    pub actual: std::result::Result<String, String>,
}

/// After writing, every tag must resolve to what the index says.
pub fn freshness(checks: &[FreshCheck]) -> GateResult {
    let mut problems = Vec::new();
    for c in checks {
        match &c.actual {
            Ok(d) if *d == c.expected => {}
            Ok(d) => problems.push(format!(
                "{} resolves to {d}, the index has {}",
                c.reference, c.expected
            )),
            Err(e) => problems.push(format!("{}: {e}", c.reference)),
        }
    }
    let notes = vec![format!(
        "{} checks against a fresh read of the destination",
        checks.len()
    )];
    GateResult::new(Gate::Freshness, problems, notes)
}

/// Fails on the first failing gates unless `force`; with `force`, marks
/// them overridden. Returns the gates that were overridden.
pub fn enforce(results: &mut [GateResult], force: bool) -> Result<Vec<Gate>> {
    let failed: Vec<&mut GateResult> = results.iter_mut().filter(|g| !g.passed).collect();
    if failed.is_empty() {
        return Ok(Vec::new());
    }
    if !force {
        // The error names the first failing gate; the others follow in
        // the reason so one run shows everything to fix.
        let mut reason = failed[0].problems.join("; ");
        for g in &failed[1..] {
            reason.push_str(&format!(
                "; {} gate failed too: {}",
                g.gate,
                g.problems.join("; ")
            ));
        }
        return Err(Error::Gate {
            gate: failed[0].gate.to_string(),
            reason,
        });
    }
    let mut forced = Vec::new();
    for g in failed {
        g.forced = true;
        forced.push(g.gate);
    }
    Ok(forced)
}

fn list(arches: &[TargetArch]) -> String {
    arches
        .iter()
        .map(|a| a.oci_name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn per_child(values: &[(&ChildInfo, Option<&str>)]) -> String {
    values
        .iter()
        .map(|(c, v)| format!("{}={}", c.arch, v.unwrap_or("(none)")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parent_stage(c: &ChildInfo) -> Option<&str> {
    c.provenance.parent_stage.as_deref()
}

fn revision(c: &ChildInfo) -> Option<&str> {
    c.provenance.revision.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::Provenance;

    fn child(arch: TargetArch, config: Option<TargetArch>, run: Option<&str>) -> ChildInfo {
        ChildInfo {
            arch,
            reference: format!("oci:l:t-{arch}"),
            digest: String::new(),
            media_type: String::new(),
            size: 0,
            platform: format!("linux/{}", config.map(|a| a.oci_name()).unwrap_or("s390x")),
            config_arch: config,
            provenance: Provenance {
                run_id: run.map(str::to_string),
                ..Provenance::default()
            },
            parent_now: None,
        }
    }

    use TargetArch::*;

    #[test]
    fn completeness_exact_set() {
        let all = [Amd64, Arm64, Riscv64];
        let kids: Vec<ChildInfo> = all.iter().map(|a| child(*a, Some(*a), None)).collect();
        assert!(completeness(&all, &kids, &[]).passed);
        let missing = MissingChild {
            arch: Riscv64,
            reference: "oci:l:t-riscv64".into(),
            reason: "tag not found".into(),
        };
        let g = completeness(&all, &kids[..2], &[missing]);
        assert!(!g.passed);
        assert!(
            g.problems[0].contains("riscv64 missing: oci:l:t-riscv64"),
            "{g:?}"
        );
        // A riscv64 tag holding an amd64 image.
        let wrong = vec![
            child(Amd64, Some(Amd64), None),
            child(Arm64, Some(Arm64), None),
            child(Riscv64, Some(Amd64), None),
        ];
        let g = completeness(&all, &wrong, &[]);
        assert!(!g.passed);
        assert!(g.problems.iter().any(|p| p.contains("duplicate")), "{g:?}");
        let g = completeness(&all, &[child(Amd64, None, None)], &[]);
        assert!(!g.passed);
    }

    #[test]
    fn coherence_run_ids() {
        let same = vec![
            child(Amd64, Some(Amd64), Some("r1")),
            child(Arm64, Some(Arm64), Some("r1")),
        ];
        assert!(coherence(&same, true).passed);
        let mixed = vec![
            child(Amd64, Some(Amd64), Some("r1")),
            child(Arm64, Some(Arm64), Some("r2")),
        ];
        let g = coherence(&mixed, false);
        assert!(!g.passed);
        assert!(g.problems[0].contains("amd64=r1, arm64=r2"), "{g:?}");
        // The way out is one run id, not only --force.
        let hint = g.problems.join("; ");
        assert!(hint.contains("pass the same `--run-id ID`"), "{hint}");
        assert!(
            hint.find("--run-id").unwrap() < hint.find("--force").unwrap(),
            "{hint}"
        );
        let partly = vec![
            child(Amd64, Some(Amd64), Some("r1")),
            child(Arm64, Some(Arm64), None),
        ];
        assert!(!coherence(&partly, false).passed);
        let none = vec![child(Amd64, Some(Amd64), None)];
        assert!(coherence(&none, false).passed);
        assert!(!coherence(&none, true).passed);
        let mut stage = same.clone();
        stage[1].provenance.parent_stage = Some("torch".into());
        stage[0].provenance.parent_stage = Some("package".into());
        assert!(!coherence(&stage, false).passed);
        // A parent replaced after the child was built.
        let mut stale = same.clone();
        stale[0].provenance.parent_digest = Some("sha256:old".into());
        stale[0].parent_now = Some(crate::index::children::ParentNow {
            reference: "oci:l:t-package-amd64".into(),
            digest: "sha256:new".into(),
        });
        let g = coherence(&stale, false);
        assert!(
            g.problems[0].contains("is stale: built on sha256:old"),
            "{g:?}"
        );
        stale[0].parent_now.as_mut().unwrap().digest = "sha256:old".into();
        assert!(coherence(&stale, false).passed);
    }

    #[test]
    fn enforce_and_force() {
        let mut r = vec![
            GateResult::new(Gate::Completeness, vec![], vec![]),
            GateResult::new(Gate::Coherence, vec!["run ids differ".into()], vec![]),
        ];
        let e = enforce(&mut r.clone(), false).unwrap_err();
        assert!(e.to_string().starts_with("coherence gate failed"), "{e}");
        assert_eq!(enforce(&mut r, true).unwrap(), vec![Gate::Coherence]);
        assert!(r[1].forced && !r[0].forced);
    }

    #[test]
    fn freshness_compares() {
        let ok = FreshCheck {
            reference: "a".into(),
            expected: "sha256:1".into(),
            actual: Ok("sha256:1".into()),
        };
        assert!(freshness(std::slice::from_ref(&ok)).passed);
        let stale = FreshCheck {
            actual: Ok("sha256:2".into()),
            ..ok.clone()
        };
        assert!(!freshness(&[ok, stale]).passed);
    }
}
