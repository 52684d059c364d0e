//! Debian alternatives, written natively: the `/etc/alternatives/<name>`
//! symlinks, the links pointing at them, and the
//! `/var/lib/dpkg/alternatives/<name>` state files, exactly as
//! `update-alternatives --install LINK NAME PATH PRIO [--slave ...]` and
//! `--set NAME PATH` (dpkg 1.21) would leave them, merged with the state
//! the base image already has. `update-alternatives --display` keeps
//! working in the image because the state files are right, not just the
//! links.
//!
//! Everything is looked up in the image view ([`ImageTree`]), never on the
//! host: whether a choice exists, where `/etc/alternatives/<name>` points,
//! the existing state files.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::tree::{FileKind, ImagePath, ImageTree, MemTree, Node};

pub const ALTDIR: &str = "/etc/alternatives";
pub const ADMINDIR: &str = "/var/lib/dpkg/alternatives";

/// State files are small; refuse absurd ones.
const MAX_STATE_FILE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Auto,
    Manual,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Auto => "auto",
            Status::Manual => "manual",
        }
    }
}

/// One choice of a link group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub path: String,
    pub priority: i32,
    /// Slave name -> file ("" when this choice lacks the slave).
    pub slaves: BTreeMap<String, String>,
}

/// A link group, as in its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AltState {
    pub name: String,
    pub status: Status,
    pub link: String,
    /// `(slave name, slave link)`, in file order.
    pub slaves: Vec<(String, String)>,
    pub choices: Vec<Choice>,
}

impl AltState {
    /// Parses a state file. Choices whose file does not exist (per
    /// `exists`) are dropped, as update-alternatives does; the flag says
    /// whether that happened.
    pub fn parse(
        name: &str,
        bytes: &[u8],
        exists: &dyn Fn(&str) -> bool,
    ) -> std::result::Result<(AltState, bool), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let mut lines = Lines { rest: text };
        let status = match lines.next("status")? {
            "auto" => Status::Auto,
            "manual" => Status::Manual,
            _ => return Err("invalid status".into()),
        };
        let link = lines.next("master link")?.to_string();
        let mut slaves: Vec<(String, String)> = Vec::new();
        loop {
            let sname = lines.next("slave name")?;
            if sname.is_empty() {
                break;
            }
            if slaves.iter().any(|(n, _)| n == sname) {
                return Err(format!("duplicate slave name {sname}"));
            }
            let slink = lines.next("slave link")?;
            if slink == link {
                return Err(format!("slave link same as main link {link}"));
            }
            if slaves.iter().any(|(_, l)| l == slink) {
                return Err(format!("duplicate slave link {slink}"));
            }
            slaves.push((sname.to_string(), slink.to_string()));
        }
        let mut choices: Vec<Choice> = Vec::new();
        let mut dropped = false;
        loop {
            let path = lines.next("master file")?;
            if path.is_empty() {
                break;
            }
            if choices.iter().any(|c| c.path == path) {
                return Err(format!("duplicate path {path}"));
            }
            let prio = lines.next("priority")?;
            let mut files = BTreeMap::new();
            for (sname, _) in &slaves {
                files.insert(sname.clone(), lines.next("slave file")?.to_string());
            }
            if !exists(path) {
                dropped = true;
                continue;
            }
            let priority: i32 = prio
                .parse()
                .map_err(|_| format!("priority of {path}: {prio}"))?;
            choices.push(Choice {
                path: path.to_string(),
                priority,
                slaves: files,
            });
        }
        Ok((
            AltState {
                name: name.to_string(),
                status,
                link,
                slaves,
                choices,
            },
            dropped,
        ))
    }

    /// The state file bytes: unused slaves dropped, slaves sorted by name,
    /// choices by path (as `alternative_save` does).
    pub fn render(&self) -> Vec<u8> {
        let mut slaves: Vec<&(String, String)> = self
            .slaves
            .iter()
            .filter(|(n, _)| self.choices.iter().any(|c| has_slave(c, n)))
            .collect();
        slaves.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut choices: Vec<&Choice> = self.choices.iter().collect();
        choices.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line(self.status.as_str());
        line(&self.link);
        for (n, l) in &slaves {
            line(n);
            line(l);
        }
        line("");
        for c in choices {
            line(&c.path);
            line(&c.priority.to_string());
            for (n, _) in &slaves {
                line(c.slaves.get(n).map(String::as_str).unwrap_or(""));
            }
        }
        line("");
        out.into_bytes()
    }

    /// The first choice with the highest priority.
    pub fn best(&self) -> Option<&Choice> {
        let mut best: Option<&Choice> = None;
        for c in &self.choices {
            if best.is_none_or(|b| c.priority > b.priority) {
                best = Some(c);
            }
        }
        best
    }

    fn choice(&self, path: &str) -> Option<&Choice> {
        self.choices.iter().find(|c| c.path == path)
    }
}

fn has_slave(c: &Choice, name: &str) -> bool {
    c.slaves.get(name).is_some_and(|f| !f.is_empty())
}

struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Lines<'a> {
    fn next(&mut self, what: &str) -> std::result::Result<&'a str, String> {
        if self.rest.is_empty() {
            return Err(format!(
                "unexpected end of file while trying to read {what}"
            ));
        }
        match self.rest.find('\n') {
            Some(i) => {
                let l = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                Ok(l)
            }
            None => Err(format!("line not terminated while trying to read {what}")),
        }
    }
}

/// `--install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub link: String,
    pub name: String,
    pub path: String,
    pub priority: i32,
    /// `(link, name, path)`.
    pub slaves: Vec<(String, String, String)>,
}

/// What the alternatives system changed in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Symlink { target: String },
    File { content: Vec<u8> },
    Removed,
}

/// An update-alternatives run over an image view. Operations see the
/// results of the previous ones.
pub struct Alternatives<'a> {
    base: &'a dyn ImageTree,
    pending: BTreeMap<ImagePath, Change>,
    warnings: Vec<String>,
}

impl<'a> Alternatives<'a> {
    pub fn new(base: &'a dyn ImageTree) -> Self {
        Alternatives {
            base,
            pending: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Every changed path, sorted.
    pub fn changes(&self) -> &BTreeMap<ImagePath, Change> {
        &self.pending
    }

    fn change(&mut self, path: impl Into<ImagePath>, c: Change) {
        self.pending.insert(path.into(), c);
    }

    /// What update-alternatives would have printed as warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The image with the changes so far applied.
    pub fn view(&self) -> View<'_> {
        View {
            base: self.base,
            pending: &self.pending,
        }
    }

    fn err(name: &str, reason: impl Into<String>) -> Error {
        Error::invalid(format!("alternative {name}"), reason)
    }

    fn exists(&self, path: &str) -> bool {
        self.view().resolve(&ImagePath::from(path)).is_ok()
    }

    fn classify(&self, path: &str) -> Option<FileKind> {
        self.view().node(&ImagePath::from(path)).map(|n| n.kind)
    }

    fn readlink(&self, path: &str) -> Option<String> {
        self.view()
            .node(&ImagePath::from(path))
            .filter(|n| n.kind == FileKind::Symlink)
            .and_then(|n| n.link)
    }

    fn state_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = ImagePath::from(format!("{ADMINDIR}/{name}"));
        let view = self.view();
        match view.node(&path) {
            None => Ok(None),
            Some(n) if n.size == 0 && n.kind == FileKind::File => Ok(None),
            Some(_) => {
                let r = view
                    .resolve(&path)
                    .map_err(|e| Self::err(name, format!("{path}: {e}")))?;
                let bytes = view.read_prefix(&r.path, MAX_STATE_FILE + 1)?;
                if bytes.len() > MAX_STATE_FILE {
                    return Err(Self::err(name, format!("{path} is too large")));
                }
                Ok(Some(bytes))
            }
        }
    }

    /// Loads a link group (strictly: a corrupt file is an error).
    fn load(&self, name: &str) -> Result<Option<(AltState, bool)>> {
        let Some(bytes) = self.state_bytes(name)? else {
            return Ok(None);
        };
        let exists = |p: &str| self.exists(p);
        AltState::parse(name, &bytes, &exists)
            .map(Some)
            .map_err(|e| Self::err(name, format!("{ADMINDIR}/{name} corrupt: {e}")))
    }

    /// Every readable link group of the image (corrupt ones are skipped,
    /// as update-alternatives' lax loader does).
    fn load_all(&self) -> Result<Vec<AltState>> {
        let mut names = self.view().children(&ImagePath::from(ADMINDIR));
        names.retain(|n| !n.ends_with(".dpkg-tmp"));
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let Ok(Some(bytes)) = self.state_bytes(&n) else {
                continue;
            };
            let exists = |p: &str| self.exists(p);
            if let Ok((s, _)) = AltState::parse(&n, &bytes, &exists) {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn check_install(&self, inst: &Install) -> Result<()> {
        let name = &inst.name;
        check_name(&inst.name)?;
        if !inst.link.starts_with('/') {
            return Err(Self::err(
                name,
                format!("link is not absolute: {}", inst.link),
            ));
        }
        if !inst.path.starts_with('/') {
            return Err(Self::err(
                name,
                format!("path is not absolute: {}", inst.path),
            ));
        }
        if inst.link == inst.path {
            return Err(Self::err(name, "<link> and <path> can't be the same"));
        }
        let all = self.load_all()?;
        // name -> owning group; link -> owning group
        let parent_of = |n: &str| {
            all.iter()
                .find(|a| a.name == n || a.slaves.iter().any(|(s, _)| s == n))
        };
        let owner_of_link = |l: &str| {
            all.iter()
                .find(|a| a.link == l || a.slaves.iter().any(|(_, sl)| sl == l))
        };
        if let Some(f) = parent_of(name) {
            if f.name != *name {
                return Err(Self::err(
                    name,
                    format!("{name} can't be master: it is a slave of {}", f.name),
                ));
            }
        }
        if let Some(f) = owner_of_link(&inst.link) {
            if f.name != *name {
                return Err(Self::err(
                    name,
                    format!("link {} is already managed by {}", inst.link, f.name),
                ));
            }
        }
        if !self.exists(&inst.path) {
            // Not a malformed alternative: the image lacks the file (a
            // copy that did not bring it, a version variable off by one).
            return Err(Error::not_found(
                format!("alternative {name}: its path {}", inst.path),
                "the image (neither the base nor any copied layer holds it)",
            ));
        }
        let mut seen_names = vec![name.clone()];
        let mut seen_links = vec![inst.link.clone()];
        for (slink, sname, spath) in &inst.slaves {
            check_name(sname)?;
            if slink == spath {
                return Err(Self::err(name, "<link> and <path> can't be the same"));
            }
            if !slink.starts_with('/') || !spath.starts_with('/') {
                return Err(Self::err(
                    name,
                    format!("slave {sname}: paths must be absolute"),
                ));
            }
            if seen_names.contains(sname) {
                return Err(Self::err(name, format!("duplicate slave name {sname}")));
            }
            if seen_links.contains(slink) {
                return Err(Self::err(name, format!("duplicate slave link {slink}")));
            }
            seen_names.push(sname.clone());
            seen_links.push(slink.clone());
            if let Some(f) = parent_of(sname) {
                if f.name != *name {
                    return Err(Self::err(
                        name,
                        if f.name == *sname {
                            format!("{sname} can't be slave of {name}: it is a master alternative")
                        } else {
                            format!(
                                "{sname} can't be slave of {name}: it is a slave of {}",
                                f.name
                            )
                        },
                    ));
                }
            }
            if let Some(f) = owner_of_link(slink) {
                if f.name != *name {
                    return Err(Self::err(
                        name,
                        format!("link {slink} is already managed by {}", f.name),
                    ));
                }
                if let Some((other, _)) = f.slaves.iter().find(|(_, l)| l == slink) {
                    if other != sname {
                        return Err(Self::err(
                            name,
                            format!(
                                "link {slink} is already managed by {other} (slave of {})",
                                f.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `update-alternatives --install`.
    pub fn install(&mut self, inst: &Install) -> Result<()> {
        self.check_install(inst)?;
        let name = inst.name.clone();
        let loaded = self.load(&name)?;
        let current = self.readlink(&format!("{ALTDIR}/{name}"));
        let choice = Choice {
            path: inst.path.clone(),
            priority: inst.priority,
            slaves: inst
                .slaves
                .iter()
                .map(|(_, n, p)| (n.clone(), p.clone()))
                .collect(),
        };
        let mut a = match loaded {
            Some((mut a, _)) => {
                self.select_mode(&mut a, current.as_deref());
                self.evolve(&mut a, inst, current.as_deref(), &choice);
                a
            }
            None => {
                let a = AltState {
                    name: name.clone(),
                    status: Status::Auto,
                    link: inst.link.clone(),
                    slaves: inst
                        .slaves
                        .iter()
                        .map(|(l, n, _)| (n.clone(), l.clone()))
                        .collect(),
                    choices: Vec::new(),
                };
                a
            }
        };
        match a.choices.iter_mut().find(|c| c.path == choice.path) {
            Some(c) => *c = choice,
            None => a.choices.push(choice),
        }
        // Adding a choice always marks the group modified: it is saved.
        let new_choice = match a.status {
            Status::Auto => a.best().map(|c| c.path.clone()),
            Status::Manual => None,
        };
        self.update(&a, current.as_deref(), new_choice.as_deref(), true)
    }

    /// `update-alternatives --set NAME PATH`.
    pub fn set(&mut self, name: &str, path: &str) -> Result<()> {
        check_name(name)?;
        let Some((mut a, dropped)) = self.load(name)? else {
            return Err(Self::err(name, format!("no alternatives for {name}")));
        };
        let current = self.readlink(&format!("{ALTDIR}/{name}"));
        let mut modified = dropped | self.select_mode(&mut a, current.as_deref());
        if a.choice(path).is_none() {
            return Err(Self::err(
                name,
                format!("alternative {path} for {name} not registered; not setting"),
            ));
        }
        if a.status != Status::Manual {
            a.status = Status::Manual;
            modified = true;
        }
        self.update(&a, current.as_deref(), Some(path), modified)
    }

    /// Returns whether the status changed.
    fn select_mode(&mut self, a: &mut AltState, current: Option<&str>) -> bool {
        let before = a.status;
        match current {
            Some(cur) => {
                if a.choice(cur).is_none() {
                    if !self.exists(cur) {
                        self.warnings.push(format!(
                            "{ALTDIR}/{} is dangling; it will be updated with best choice",
                            a.name
                        ));
                        a.status = Status::Auto;
                    } else if a.status != Status::Manual {
                        self.warnings.push(format!(
                            "{ALTDIR}/{} has been changed (manually or by a script); \
                             switching to manual updates only",
                            a.name
                        ));
                        a.status = Status::Manual;
                    }
                }
            }
            None => a.status = Status::Auto,
        }
        before != a.status
    }

    fn evolve(&mut self, a: &mut AltState, inst: &Install, current: Option<&str>, fs: &Choice) {
        if self.classify(&a.link) == Some(FileKind::Symlink) && a.link != inst.link {
            // checked_mv(old master link, new master link)
            if let Some(t) = self.readlink(&a.link) {
                self.change(a.link.clone(), Change::Removed);
                self.change(inst.link.clone(), Change::Symlink { target: t });
            }
        }
        a.link = inst.link.clone();
        for (slink, sname, _) in &inst.slaves {
            let Some(idx) = a.slaves.iter().position(|(n, _)| n == sname) else {
                a.slaves.push((sname.clone(), slink.clone()));
                continue;
            };
            let old = a.slaves[idx].1.clone();
            let new_file = if current == Some(fs.path.as_str()) {
                fs.slaves.get(sname).cloned()
            } else {
                self.readlink(&format!("{ALTDIR}/{sname}"))
            };
            if old != *slink && self.classify(&old) == Some(FileKind::Symlink) {
                let rename = new_file.as_deref().is_some_and(|f| self.exists(f));
                let target = self.readlink(&old);
                self.change(old.clone(), Change::Removed);
                if rename {
                    if let Some(t) = target {
                        self.change(slink.clone(), Change::Symlink { target: t });
                    }
                }
            }
            a.slaves[idx].1 = slink.clone();
        }
    }

    fn update(
        &mut self,
        a: &AltState,
        current: Option<&str>,
        new_choice: Option<&str>,
        modified: bool,
    ) -> Result<()> {
        if let Some(new) = new_choice.filter(|n| Some(*n) != current) {
            self.prepare_install(a, new)?;
        } else if self.is_broken(a, current) {
            let mut a = a.clone();
            let mut cur = current.map(str::to_string);
            if let Some(c) = &cur {
                if a.choice(c).is_none() {
                    cur = a.best().map(|b| b.path.clone());
                    a.status = Status::Auto;
                }
            }
            if let Some(c) = cur {
                self.prepare_install(&a, &c)?;
            }
            if modified {
                self.save(&a);
            }
            return Ok(());
        }
        if modified {
            self.save(a);
        }
        Ok(())
    }

    fn save(&mut self, a: &AltState) {
        self.change(
            format!("{ADMINDIR}/{}", a.name),
            Change::File {
                content: a.render(),
            },
        );
    }

    fn install_single(&mut self, name: &str, link: &str, file: &str) {
        let alt = format!("{ALTDIR}/{name}");
        self.change(
            alt.clone(),
            Change::Symlink {
                target: file.to_string(),
            },
        );
        let needs_update = match self.classify(link) {
            Some(FileKind::Symlink) => self.readlink(link).as_deref() != Some(alt.as_str()),
            Some(_) => {
                self.warnings
                    .push(format!("not replacing {link} with a link"));
                false
            }
            None => true,
        };
        if needs_update {
            self.change(link.to_string(), Change::Symlink { target: alt });
        }
    }

    fn prepare_install(&mut self, a: &AltState, choice: &str) -> Result<()> {
        let fs = a
            .choice(choice)
            .ok_or_else(|| Self::err(&a.name, format!("can't install unknown choice {choice}")))?
            .clone();
        self.install_single(&a.name, &a.link, choice);
        for (sname, slink) in &a.slaves {
            let file = fs.slaves.get(sname).filter(|f| !f.is_empty());
            if let Some(f) = file.filter(|f| self.exists(f)) {
                let f = f.clone();
                self.install_single(sname, slink, &f);
                continue;
            }
            if let Some(f) = file {
                self.warnings.push(format!(
                    "skip creation of {slink} because associated file {f} (of link group {}) doesn't exist",
                    a.name
                ));
            }
            match self.classify(slink) {
                Some(FileKind::Symlink) => {
                    self.change(slink.clone(), Change::Removed);
                }
                Some(_) => self
                    .warnings
                    .push(format!("not removing {slink} since it's not a symlink")),
                None => {}
            }
            let alt = format!("{ALTDIR}/{sname}");
            if self.classify(&alt).is_some() {
                self.change(alt, Change::Removed);
            }
        }
        Ok(())
    }

    fn is_broken(&self, a: &AltState, current: Option<&str>) -> bool {
        let wanted = format!("{ALTDIR}/{}", a.name);
        if self.readlink(&a.link).as_deref() != Some(wanted.as_str()) {
            return true;
        }
        let Some(current) = current else { return true };
        let Some(fs) = a.choice(current) else {
            return false;
        };
        for (sname, slink) in &a.slaves {
            let alt = format!("{ALTDIR}/{sname}");
            let file = fs.slaves.get(sname).filter(|f| !f.is_empty());
            if file.is_some_and(|f| self.exists(f)) {
                if self.readlink(slink).as_deref() != Some(alt.as_str()) {
                    return true;
                }
                if self.readlink(&alt).as_deref() != file.map(String::as_str) {
                    return true;
                }
            } else if self.classify(slink).is_some() || self.classify(&alt).is_some() {
                return true;
            }
        }
        false
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', ' ', '\t']) {
        return Err(Error::invalid(
            format!("alternative {name:?}"),
            "name must not contain '/' and spaces",
        ));
    }
    Ok(())
}

/// The image with pending alternatives changes on top.
pub struct View<'a> {
    base: &'a dyn ImageTree,
    pending: &'a BTreeMap<ImagePath, Change>,
}

impl ImageTree for View<'_> {
    fn name(&self) -> String {
        format!("{} + alternatives", self.base.name())
    }

    fn node(&self, path: &ImagePath) -> Option<Node> {
        match self.pending.get(path) {
            Some(Change::Removed) => None,
            Some(Change::Symlink { target }) => Some(Node::symlink(target)),
            Some(Change::File { content }) => Some(Node::file(0o644, content.len() as u64)),
            None => self.base.node(path),
        }
    }

    fn paths(&self) -> Vec<ImagePath> {
        let mut all = self.base.paths();
        all.extend(self.pending.keys().cloned());
        all.sort();
        all.dedup();
        all.retain(|p| !matches!(self.pending.get(p), Some(Change::Removed)));
        all
    }

    fn read_prefix(&self, path: &ImagePath, len: usize) -> Result<Vec<u8>> {
        match self.pending.get(path) {
            Some(Change::File { content }) => Ok(content[..len.min(content.len())].to_vec()),
            Some(_) => Err(Error::not_found(
                format!("regular file {path}"),
                self.name(),
            )),
            None => self.base.read_prefix(path, len),
        }
    }
}

/// Applies changes to an in-memory tree (tests, previews).
pub fn apply(tree: &mut MemTree, changes: &BTreeMap<ImagePath, Change>) {
    for (path, c) in changes {
        match c {
            Change::Symlink { target } => {
                tree.add_symlink(path.clone(), target);
            }
            Change::File { content } => {
                tree.add_file(path.clone(), content);
            }
            Change::Removed => tree.remove(path),
        }
    }
}

#[cfg(test)]
mod tests;
