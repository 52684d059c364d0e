//! The generated system layer: directories, files and symlinks of the
//! recipe, plus the alternatives links and dpkg state, computed against
//! the image as it will be (base + payload) without running anything.

use std::collections::BTreeMap;

use crate::alternatives::{Alternatives, Change, Install};
use crate::error::{Error, Result};
use crate::recipe::SystemSetup;
use crate::tree::{FileKind, ImagePath, ImageTree, MemTree, Node, Stack};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One entry of the system layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: ImagePath,
    pub kind: GenKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// The system layer, planned.
#[derive(Debug)]
pub struct SystemPlan {
    /// Sorted by path.
    pub entries: Vec<Generated>,
    /// The same entries as a tree, to stack on the image for the guards.
    pub tree: MemTree,
    /// What update-alternatives would have warned about.
    pub warnings: Vec<String>,
}

impl SystemPlan {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn node(kind: FileKind, mode: u32, uid: u64, gid: u64, size: u64, link: Option<String>) -> Node {
    Node {
        kind,
        mode,
        uid,
        gid,
        size,
        link,
    }
}

/// Plans the system layer over `view` (the image below it).
pub fn plan(setup: &SystemSetup, view: &dyn ImageTree) -> Result<SystemPlan> {
    let mut out: BTreeMap<ImagePath, Generated> = BTreeMap::new();
    for d in &setup.dirs {
        out.insert(
            ImagePath::from(&d.path),
            Generated {
                path: ImagePath::from(&d.path),
                kind: GenKind::Dir,
                mode: d.mode,
                uid: d.owner.0,
                gid: d.owner.1,
            },
        );
    }
    for f in &setup.files {
        out.insert(
            ImagePath::from(&f.path),
            Generated {
                path: ImagePath::from(&f.path),
                kind: GenKind::File(f.content.clone()),
                mode: f.mode,
                uid: f.owner.0,
                gid: f.owner.1,
            },
        );
    }
    for l in &setup.symlinks {
        out.insert(
            ImagePath::from(&l.path),
            Generated {
                path: ImagePath::from(&l.path),
                kind: GenKind::Symlink(l.target.clone()),
                mode: 0o777,
                uid: l.owner.0,
                gid: l.owner.1,
            },
        );
    }
    let declared = to_tree(&out);
    let stack = Stack {
        layers: vec![view, &declared],
    };
    let mut alts = Alternatives::new(&stack);
    for a in &setup.alternatives {
        alts.install(&Install {
            link: a.link.clone(),
            name: a.name.clone(),
            path: a.path.clone(),
            priority: a.priority,
            slaves: a
                .slaves
                .iter()
                .map(|s| (s.link.clone(), s.name.clone(), s.path.clone()))
                .collect(),
        })?;
        if a.set {
            alts.set(&a.name, &a.path)?;
        }
    }
    for (path, change) in alts.changes() {
        if out.contains_key(path) {
            return Err(Error::invalid(
                format!("system setup {path}"),
                "written both by the recipe and by an alternative",
            ));
        }
        let g = match change {
            Change::Symlink { target } => Generated {
                path: path.clone(),
                kind: GenKind::Symlink(target.clone()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
            Change::File { content } => Generated {
                path: path.clone(),
                kind: GenKind::File(content.clone()),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            Change::Removed => {
                if view.node(path).is_some() {
                    return Err(Error::Unsupported(format!(
                        "alternatives would delete {path} from the image (a link renamed \
                         or a slave dropped); deletions are not written by the system layer"
                    )));
                }
                continue;
            }
        };
        out.insert(path.clone(), g);
    }
    let warnings = alts.warnings().to_vec();
    let tree = to_tree(&out);
    Ok(SystemPlan {
        entries: out.into_values().collect(),
        tree,
        warnings,
    })
}

/// Adds `/etc/ld.so.cache` (and the soname links ldconfig would create)
/// to the system layer, computed from the image as it will be (`below`
/// plus the layer itself), when `[system] ld_cache` says so: `true`, or
/// unset and `base` has glibc. Nothing is added when the image already
/// holds these exact bytes (a wrapper over a package image that added no
/// library). Returns whether the cache was written.
pub fn add_ld_cache(
    setup: &SystemSetup,
    sys: &mut SystemPlan,
    below: &[&dyn ImageTree],
    base: &dyn ImageTree,
    arch: crate::platform::TargetArch,
) -> Result<bool> {
    use crate::ldcache;
    let mut layers = below.to_vec();
    layers.push(&sys.tree);
    let image = Stack { layers };
    let on = match setup.ld_cache {
        Some(false) => false,
        None => ldcache::has_glibc(base, arch),
        Some(true) => {
            if !ldcache::has_glibc(&image, arch) {
                return Err(Error::invalid(
                    "[system] ld_cache = true",
                    format!(
                        "the image has no glibc for {arch} ({} and libc.so.6 in {})",
                        ldcache::CONF_PATH,
                        ldcache::system_dirs(&image, arch).join(", ")
                    ),
                ));
            }
            true
        }
    };
    if !on {
        return Ok(false);
    }
    let plan = ldcache::plan(&image, arch)?;
    let current = match image.resolve(&ImagePath::from(ldcache::CACHE_PATH)) {
        Ok(r) if r.node.kind == FileKind::File && r.node.size == plan.bytes.len() as u64 => {
            Some(image.read_prefix(&r.path, plan.bytes.len())?)
        }
        _ => None,
    };
    if plan.links.is_empty() && current.as_deref() == Some(plan.bytes.as_slice()) {
        return Ok(false);
    }
    let cache_path = ImagePath::from(ldcache::CACHE_PATH);
    let mut all: BTreeMap<ImagePath, Generated> =
        sys.entries.drain(..).map(|g| (g.path.clone(), g)).collect();
    if all.contains_key(&cache_path) {
        return Err(Error::invalid(
            format!("system setup {}", ldcache::CACHE_PATH),
            "written both by the recipe and by [system] ld_cache (set ld_cache = false)",
        ));
    }
    all.insert(
        cache_path.clone(),
        Generated {
            path: cache_path,
            kind: GenKind::File(plan.bytes),
            // ldconfig chmods its cache 0644.
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
    );
    for (path, target) in plan.links {
        // What the recipe writes itself wins.
        all.entry(path.clone()).or_insert(Generated {
            path,
            kind: GenKind::Symlink(target),
            mode: 0o777,
            uid: 0,
            gid: 0,
        });
    }
    sys.tree = to_tree(&all);
    sys.entries = all.into_values().collect();
    Ok(true)
}

fn to_tree(entries: &BTreeMap<ImagePath, Generated>) -> MemTree {
    let mut t = MemTree::new("system layer");
    for g in entries.values() {
        match &g.kind {
            GenKind::Dir => t.insert(
                g.path.clone(),
                node(FileKind::Dir, g.mode, g.uid, g.gid, 0, None),
                Vec::new(),
            ),
            GenKind::File(b) => t.insert(
                g.path.clone(),
                node(FileKind::File, g.mode, g.uid, g.gid, b.len() as u64, None),
                b.clone(),
            ),
            GenKind::Symlink(s) => t.insert(
                g.path.clone(),
                node(FileKind::Symlink, 0o777, g.uid, g.gid, 0, Some(s.clone())),
                Vec::new(),
            ),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{AlternativeSpec, DirSpec, FileSpec, SlaveSpec, SymlinkSpec};

    fn base() -> MemTree {
        let mut t = MemTree::new("base");
        t.add_file("/bin/more", b"more")
            .add_file(
                "/var/lib/dpkg/alternatives/pager",
                b"auto\n/usr/bin/pager\n\n/bin/more\n50\n\n",
            )
            .add_symlink("/etc/alternatives/pager", "/bin/more")
            .add_symlink("/usr/bin/pager", "/etc/alternatives/pager")
            .add_file("/opt/gcc-16.1.0/bin/gcc", b"\x7fELF")
            .add_file("/opt/llvm/bin/clang", b"\x7fELF")
            .add_symlink("/opt/llvm/bin/clang++", "clang");
        t
    }

    fn setup() -> SystemSetup {
        SystemSetup {
            dirs: vec![DirSpec {
                path: "/workspace".into(),
                mode: 0o755,
                owner: (1001, 1001),
            }],
            files: vec![FileSpec {
                path: "/etc/ld.so.conf.d/gcc-custom.conf".into(),
                content: b"/opt/gcc-16.1.0/lib64\n".to_vec(),
                mode: 0o644,
                owner: (0, 0),
            }],
            symlinks: vec![SymlinkSpec {
                path: "/usr/local/bin/py".into(),
                target: "/opt/venv/bin/python".into(),
                owner: (0, 0),
            }],
            alternatives: vec![
                AlternativeSpec {
                    name: "cc".into(),
                    link: "/usr/bin/cc".into(),
                    path: "/opt/gcc-16.1.0/bin/gcc".into(),
                    priority: 150,
                    slaves: vec![],
                    set: true,
                },
                AlternativeSpec {
                    name: "clang".into(),
                    link: "/usr/bin/clang".into(),
                    path: "/opt/llvm/bin/clang".into(),
                    priority: 1000,
                    slaves: vec![SlaveSpec {
                        name: "clang++".into(),
                        link: "/usr/bin/clang++".into(),
                        path: "/opt/llvm/bin/clang++".into(),
                    }],
                    set: true,
                },
            ],
            ld_cache: None,
        }
    }

    #[test]
    fn plans_files_links_and_alternatives() {
        let b = base();
        let p = plan(&setup(), &b).unwrap();
        let paths: Vec<String> = p.entries.iter().map(|g| g.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "/etc/alternatives/cc",
                "/etc/alternatives/clang",
                "/etc/alternatives/clang++",
                "/etc/ld.so.conf.d/gcc-custom.conf",
                "/usr/bin/cc",
                "/usr/bin/clang",
                "/usr/bin/clang++",
                "/usr/local/bin/py",
                "/var/lib/dpkg/alternatives/cc",
                "/var/lib/dpkg/alternatives/clang",
                "/workspace",
            ]
        );
        let cc = p.entries.iter().find(|g| g.path == "/usr/bin/cc").unwrap();
        assert_eq!(cc.kind, GenKind::Symlink("/etc/alternatives/cc".into()));
        let state = p
            .entries
            .iter()
            .find(|g| g.path == "/var/lib/dpkg/alternatives/cc")
            .unwrap();
        assert_eq!(
            state.kind,
            GenKind::File(b"manual\n/usr/bin/cc\n\n/opt/gcc-16.1.0/bin/gcc\n150\n\n".to_vec())
        );
        // The chain resolves in the planned image.
        let stack = Stack {
            layers: vec![&b, &p.tree],
        };
        assert_eq!(
            stack.resolve(&"/usr/bin/cc".into()).unwrap().path,
            "/opt/gcc-16.1.0/bin/gcc"
        );
        assert!(p.warnings.is_empty());
        // The base's pager group is left alone.
        assert!(!paths.iter().any(|p| p.contains("pager")));
    }

    #[test]
    fn missing_alternative_target_is_an_error() {
        let mut s = setup();
        s.alternatives[0].path = "/opt/gcc-15/bin/gcc".into();
        let e = plan(&s, &base()).unwrap_err().to_string();
        assert!(
            e.contains("/opt/gcc-15/bin/gcc not found in the image"),
            "{e}"
        );
        assert!(!e.contains("invalid content"), "{e}");
    }

    #[test]
    fn a_path_written_twice_is_an_error() {
        let mut s = setup();
        s.files[0].path = "/etc/alternatives/cc".into();
        let e = plan(&s, &base()).unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn a_regular_file_at_the_link_is_kept_with_a_warning() {
        // As update-alternatives does; the compiler guard then judges
        // whatever /usr/bin/cc really is.
        let mut s = setup();
        s.files[0].path = "/usr/bin/cc".into();
        let p = plan(&s, &base()).unwrap();
        assert!(p
            .warnings
            .iter()
            .any(|w| w == "not replacing /usr/bin/cc with a link"));
        let cc = p.entries.iter().find(|g| g.path == "/usr/bin/cc").unwrap();
        assert!(matches!(cc.kind, GenKind::File(_)));
    }
}
