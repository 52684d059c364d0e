//! `[system]` and its siblings: the generated system layer's directories,
//! files, symlinks, `ld.so.conf.d` entries and alternatives.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::context::{line_col, Cx, R};
use super::schema::*;
use super::validate::check_alt_name;
use super::*;

impl Cx<'_> {
    pub(super) fn system(&self, raw: &RawRecipe) -> R<SystemSetup> {
        let mut out = SystemSetup::default();
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
}
