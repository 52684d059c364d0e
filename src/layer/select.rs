//! Which parts of an image's merged tree go into a new layer.
//!
//! Rules mirror the package recipe: whole trees (`COPY --from`), single
//! files, "copy if present" extras, globs (`libLiteRt*.so*`), pruned
//! subtrees, relocation (`/opt/llvm-target` -> `/usr/local/llvm-target`)
//! and an owner for a tree (`--chown=1001:1001`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::entry::FileKind;
use super::glob::{is_glob, Glob};
use super::merged::{MergedTree, TreeEntry};
use super::path::{sort_key, ImagePath};
use crate::error::{Error, Result};

/// One selection rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectRule {
    /// Absolute path of a tree or file, or a glob like
    /// `/usr/local/lib/libLiteRt*.so*`. `/` selects everything.
    pub source: String,
    /// Relocation: replaces the source path (for a glob, its literal
    /// directory prefix).
    pub dest: Option<String>,
    /// Skip silently when nothing matches ("copy if present").
    pub optional: bool,
    /// Absolute globs; a matching entry is left out with its subtree.
    pub exclude: Vec<String>,
    /// uid/gid for every entry this rule copies.
    pub owner: Option<(u64, u64)>,
}

impl SelectRule {
    /// A required tree or file at its own path.
    pub fn path(source: impl Into<String>) -> Self {
        SelectRule {
            source: source.into(),
            dest: None,
            optional: false,
            exclude: Vec::new(),
            owner: None,
        }
    }
}

/// An ordered list of rules; on a path two rules produce, the later wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub rules: Vec<SelectRule>,
}

/// One entry the selection takes, at its place in the new layer.
#[derive(Debug, Clone)]
pub struct Picked<'t> {
    /// Where it lands in the new layer.
    pub dest: ImagePath,
    pub entry: &'t TreeEntry,
    /// Index of the rule that picked it.
    pub rule: usize,
    pub owner: Option<(u64, u64)>,
}

/// The result of applying a selection, keyed by destination sort key.
pub type Picks<'t> = BTreeMap<Vec<u8>, Picked<'t>>;

impl Selection {
    pub fn new(rules: Vec<SelectRule>) -> Self {
        Selection { rules }
    }

    /// Applies the rules to a tree. A required rule matching nothing is an
    /// error naming it.
    pub fn apply<'t>(&self, tree: &'t MergedTree) -> Result<Picks<'t>> {
        let missing = self.missing(tree)?;
        if !missing.is_empty() {
            return Err(missing_error(&missing, "the image"));
        }
        let mut out = Picks::new();
        for (i, rule) in self.rules.iter().enumerate() {
            apply_rule(tree, i, rule, &mut out)?;
        }
        Ok(out)
    }

    /// The sources of required rules that match nothing in `tree`, all of
    /// them (a recipe run should name every absent path at once, not one
    /// per run).
    pub fn missing(&self, tree: &MergedTree) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| !r.optional) {
            check_abs("source", &rule.source)?;
            let (roots, whole_tree, _) = find_roots(tree, rule)?;
            if roots.is_empty() && !whole_tree && !out.contains(&rule.source) {
                out.push(rule.source.clone());
            }
        }
        Ok(out)
    }

    /// Whether the selection keeps every path where it is, with its owner
    /// (a prerequisite for reusing a source layer as is).
    pub fn is_plain(&self) -> bool {
        self.rules.iter().all(|r| {
            r.owner.is_none()
                && r.exclude.is_empty()
                && r.dest
                    .as_deref()
                    .is_none_or(|d| ImagePath::from(d).rel() == ImagePath::from(&r.source).rel())
        })
    }
}

/// The error for required sources that matched nothing in `location`.
pub fn missing_error(missing: &[String], location: &str) -> Error {
    let what = match missing {
        [one] => format!("selected path {one}"),
        many => format!("{} selected paths ({})", many.len(), many.join(", ")),
    };
    Error::not_found(
        what,
        format!("{location} (mark a copy optional to skip it when absent)"),
    )
}

fn check_abs(what: &str, s: &str) -> Result<()> {
    if !s.starts_with('/') {
        return Err(Error::invalid(
            format!("selection {what} {s:?}"),
            "must be an absolute path",
        ));
    }
    if Path::new(s)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::invalid(
            format!("selection {what} {s:?}"),
            "must not contain '..'",
        ));
    }
    Ok(())
}

fn compile(what: &str, pattern: &str) -> Result<Glob> {
    Glob::new(pattern)
        .map_err(|e| Error::invalid(format!("selection {what} {pattern:?}"), e.to_string()))
}

fn apply_rule<'t>(
    tree: &'t MergedTree,
    index: usize,
    rule: &SelectRule,
    out: &mut Picks<'t>,
) -> Result<()> {
    check_abs("source", &rule.source)?;
    if let Some(d) = &rule.dest {
        check_abs("destination", d)?;
    }
    for x in &rule.exclude {
        check_abs("exclude", x)?;
    }
    let excludes = rule
        .exclude
        .iter()
        .map(|x| compile("exclude", x))
        .collect::<Result<Vec<Glob>>>()?;
    let (roots, whole_tree, prefix) = find_roots(tree, rule)?;
    if roots.is_empty() && !whole_tree {
        if rule.optional {
            tracing::debug!(source = %rule.source, "optional selection matched nothing");
            return Ok(());
        }
        return Err(missing_error(
            std::slice::from_ref(&rule.source),
            "the image",
        ));
    }
    let relocate = rule.dest.as_deref().map(ImagePath::from);
    let mut take = |e: &'t TreeEntry, src_prefix: &Path, dest_base: &ImagePath| {
        if excludes.iter().any(|x| x.matches_or_below(e.path.rel())) {
            return;
        }
        let rel = e
            .path
            .rel()
            .strip_prefix(src_prefix)
            .unwrap_or(e.path.rel());
        let dest = dest_base.join(rel);
        if dest.is_root() {
            return;
        }
        out.insert(
            sort_key(dest.rel()),
            Picked {
                dest,
                entry: e,
                rule: index,
                owner: rule.owner,
            },
        );
    };
    if whole_tree {
        let base = relocate.unwrap_or_default();
        for e in tree.iter() {
            take(e, Path::new(""), &base);
        }
        return Ok(());
    }
    let glob = is_glob(&rule.source);
    for root in roots {
        // A literal source is relocated as a whole (found through a parent
        // symlink, it lands where it really is); a glob keeps the part
        // below its literal prefix.
        let src_prefix = if glob {
            prefix.as_path()
        } else {
            root.path.rel()
        };
        let dest_base = relocate
            .clone()
            .unwrap_or_else(|| ImagePath::from_normalized(src_prefix.to_path_buf()));
        take(root, src_prefix, &dest_base);
        if root.kind == FileKind::Dir {
            for e in tree.descendants(&root.path) {
                take(e, src_prefix, &dest_base);
            }
        }
    }
    Ok(())
}

/// What a rule's source matches: the roots, whether it is the whole tree
/// (`/`), and the source prefix each root is relocated from.
type Roots<'t> = (Vec<&'t TreeEntry>, bool, PathBuf);

fn find_roots<'t>(tree: &'t MergedTree, rule: &SelectRule) -> Result<Roots<'t>> {
    // Roots the rule matched, and the source prefix each is relocated from.
    let mut roots: Vec<&'t TreeEntry> = Vec::new();
    let mut whole_tree = false;
    let prefix: PathBuf;
    if is_glob(&rule.source) {
        let g = compile("source", &rule.source)?;
        prefix = g.literal_prefix();
        let candidates: Box<dyn Iterator<Item = &TreeEntry>> = if prefix.as_os_str().is_empty() {
            Box::new(tree.iter())
        } else {
            Box::new(tree.descendants(&ImagePath::from(prefix.as_path())))
        };
        // A match's subtree is contiguous right after it; skip over it.
        let mut inside: Option<PathBuf> = None;
        for e in candidates {
            if let Some(r) = &inside {
                if e.path.rel().starts_with(r) {
                    continue;
                }
                inside = None;
            }
            if g.matches(e.path.rel()) {
                roots.push(e);
                inside = Some(e.path.rel().to_path_buf());
            }
        }
    } else {
        let src = ImagePath::from(rule.source.as_str());
        if src.is_root() {
            whole_tree = true;
        } else if let Some(e) = tree.get(&src) {
            roots.push(e);
        } else if let Some(e) = via_parent_symlinks(tree, &src)? {
            roots.push(e);
        }
        prefix = src.into_rel();
    }
    Ok((roots, whole_tree, prefix))
}

/// A source like `/lib/x` where `/lib` is a symlink to `usr/lib`: resolve
/// the parent, keep the last component as it is.
fn via_parent_symlinks<'t>(tree: &'t MergedTree, src: &ImagePath) -> Result<Option<&'t TreeEntry>> {
    let Some(name) = src.file_name() else {
        return Ok(None);
    };
    let resolved = tree.resolve_symlinks(&src.parent())?.join(name);
    if resolved == *src {
        return Ok(None);
    }
    Ok(tree.get(&resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::merged::tests::tree_of;
    use FileKind::*;

    fn tree() -> MergedTree {
        tree_of(&[
            ("opt", Dir, None),
            ("opt/llvm-target", Dir, None),
            ("opt/llvm-target/bin", Dir, None),
            ("opt/llvm-target/bin/clang", File, None),
            ("opt/llvm-target/bin/clang++", Symlink, Some("clang")),
            ("opt/vulkan", Dir, None),
            ("opt/vulkan/1.4", Dir, None),
            ("opt/vulkan/1.4/x86_64", Dir, None),
            ("opt/vulkan/1.4/x86_64/vulkaninfo", File, None),
            ("opt/vulkan/1.4/aarch64", Dir, None),
            ("opt/vulkan/1.4/aarch64/libvulkan.so.1", File, None),
            ("usr", Dir, None),
            ("usr/lib", Dir, None),
            ("usr/lib/libLiteRt.so", Symlink, Some("libLiteRt.so.1")),
            ("usr/lib/libLiteRt.so.1", File, None),
            ("usr/lib/libother.so", File, None),
            ("lib", Symlink, Some("usr/lib")),
        ])
    }

    fn dests(p: &Picks<'_>) -> Vec<String> {
        p.values()
            .map(|x| x.dest.rel().display().to_string())
            .collect()
    }

    #[test]
    fn relocation_exclusion_and_owner() {
        let t = tree();
        let sel = Selection::new(vec![
            SelectRule {
                dest: Some("/usr/local/llvm-target".into()),
                owner: Some((1001, 1001)),
                ..SelectRule::path("/opt/llvm-target")
            },
            SelectRule {
                exclude: vec!["/opt/vulkan/*/x86_64".into()],
                ..SelectRule::path("/opt/vulkan/")
            },
        ]);
        let p = sel.apply(&t).unwrap();
        assert_eq!(
            dests(&p),
            [
                "opt/vulkan",
                "opt/vulkan/1.4",
                "opt/vulkan/1.4/aarch64",
                "opt/vulkan/1.4/aarch64/libvulkan.so.1",
                "usr/local/llvm-target",
                "usr/local/llvm-target/bin",
                "usr/local/llvm-target/bin/clang",
                "usr/local/llvm-target/bin/clang++",
            ]
        );
        let clang = p
            .values()
            .find(|x| x.dest.file_name() == Some("clang"))
            .unwrap();
        assert_eq!(clang.owner, Some((1001, 1001)));
        assert_eq!(clang.entry.path, "/opt/llvm-target/bin/clang");
        assert!(!sel.is_plain());
    }

    #[test]
    fn globs_optional_and_missing() {
        let t = tree();
        let p = Selection::new(vec![SelectRule::path("/usr/lib/libLiteRt*.so*")])
            .apply(&t)
            .unwrap();
        assert_eq!(
            dests(&p),
            ["usr/lib/libLiteRt.so", "usr/lib/libLiteRt.so.1"]
        );
        let p = Selection::new(vec![SelectRule {
            dest: Some("/x".into()),
            ..SelectRule::path("/usr/lib/libLiteRt*")
        }])
        .apply(&t)
        .unwrap();
        assert_eq!(dests(&p), ["x/libLiteRt.so", "x/libLiteRt.so.1"]);
        let missing = Selection::new(vec![SelectRule::path("/usr/lib/onnxruntime-gpu")]);
        let err = missing.apply(&t).unwrap_err();
        assert!(
            err.to_string().contains("/usr/lib/onnxruntime-gpu"),
            "{err}"
        );
        let optional = Selection::new(vec![SelectRule {
            optional: true,
            ..SelectRule::path("/usr/lib/onnxruntime-gpu")
        }]);
        assert!(optional.apply(&t).unwrap().is_empty());
        let none = Selection::new(vec![SelectRule::path("/usr/lib/*.a")]);
        assert!(none.apply(&t).is_err());
        // Every absent required path in one error, not one per run.
        let several = Selection::new(vec![
            SelectRule::path("/opt/opencv5"),
            SelectRule::path("/opt/llvm-target"),
            SelectRule {
                optional: true,
                ..SelectRule::path("/opt/absent-but-optional")
            },
            SelectRule::path("/usr/lib/*.a"),
        ]);
        assert_eq!(
            several.missing(&t).unwrap(),
            ["/opt/opencv5", "/usr/lib/*.a"]
        );
        let err = several.apply(&t).unwrap_err().to_string();
        assert!(
            err.contains("2 selected paths (/opt/opencv5, /usr/lib/*.a) not found"),
            "{err}"
        );
        assert!(Selection::new(vec![SelectRule::path("relative")])
            .apply(&t)
            .is_err());
        assert!(Selection::new(vec![SelectRule::path("/opt/../etc")])
            .apply(&t)
            .is_err());
    }

    /// `{a,b}` passes recipe validation (globset), so selection honours it.
    #[test]
    fn brace_alternation_selects_both() {
        let t = tree();
        let p = Selection::new(vec![SelectRule::path("/opt/{llvm-target,vulkan}/*")])
            .apply(&t)
            .unwrap();
        assert!(dests(&p).contains(&"opt/llvm-target/bin/clang".to_string()));
        assert!(dests(&p).contains(&"opt/vulkan/1.4/aarch64".to_string()));
        let p = Selection::new(vec![SelectRule::path(
            "/usr/lib/{libLiteRt.so,libother.so}",
        )])
        .apply(&t)
        .unwrap();
        assert_eq!(dests(&p), ["usr/lib/libLiteRt.so", "usr/lib/libother.so"]);
    }

    #[test]
    fn parent_symlinks_are_followed_for_literal_sources() {
        let t = tree();
        let p = Selection::new(vec![SelectRule::path("/lib/libother.so")])
            .apply(&t)
            .unwrap();
        // It lands where it really is, not under the `lib` symlink.
        assert_eq!(dests(&p), ["usr/lib/libother.so"]);
    }

    #[test]
    fn everything_and_later_rules_win() {
        let t = tree();
        let p = Selection::new(vec![
            SelectRule::path("/"),
            SelectRule {
                owner: Some((7, 7)),
                ..SelectRule::path("/usr")
            },
        ])
        .apply(&t)
        .unwrap();
        assert_eq!(p.len(), t.len());
        let lib = p.values().find(|x| x.dest == "/usr/lib").unwrap();
        assert_eq!((lib.rule, lib.owner), (1, Some((7, 7))));
        let root = p.values().find(|x| x.dest == "/opt").unwrap();
        assert_eq!(root.owner, None);
    }
}
