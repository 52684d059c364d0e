//! Compared byte for byte with Debian's own `update-alternatives`, run in a
//! private root (`--root`), so the host's `/usr/bin` is never touched.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::tree::MemTree;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Symlink(String),
}

/// A private root for the real tool.
struct Real {
    dir: tempfile::TempDir,
}

impl Real {
    fn new(files: &[&str]) -> Real {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "etc/alternatives",
            "var/lib/dpkg/alternatives",
            "usr/bin",
            "bin",
            "usr/local/bin",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for f in files {
            let p = dir.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("content of {f}")).unwrap();
        }
        Real { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new("update-alternatives")
            .arg("--root")
            .arg(self.root())
            .args(["--log", "/ua.log"])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("update-alternatives not runnable ({e}): apt-get install dpkg")
            });
        assert!(
            out.status.success(),
            "update-alternatives {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn install(&self, i: &Install) {
        let prio = i.priority.to_string();
        let mut args = vec!["--install", &i.link, &i.name, &i.path, &prio];
        for (l, n, p) in &i.slaves {
            args.extend(["--slave", l.as_str(), n.as_str(), p.as_str()]);
        }
        self.run(&args);
    }

    /// Files and symlinks below the root (dirs and the log left out).
    fn snapshot(&self) -> BTreeMap<String, Entry> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(self.root()).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(self.root()).unwrap();
            let path = format!("/{}", rel.display());
            if path == "/ua.log" {
                continue;
            }
            let ft = e.file_type();
            if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                out.insert(path, Entry::Symlink(t.display().to_string()));
            } else if ft.is_file() {
                out.insert(path, Entry::File(std::fs::read(e.path()).unwrap()));
            }
        }
        out
    }
}

fn to_tree(snap: &BTreeMap<String, Entry>) -> MemTree {
    let mut t = MemTree::new("mirror");
    for d in [
        "/etc/alternatives",
        "/var/lib/dpkg/alternatives",
        "/usr/bin",
        "/bin",
        "/usr/local/bin",
    ] {
        t.add_dir(d);
    }
    for (p, e) in snap {
        match e {
            Entry::File(b) => t.add_file(p, b),
            Entry::Symlink(s) => t.add_symlink(p, s),
        };
    }
    t
}

fn tree_snapshot(t: &MemTree) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    for p in t.paths() {
        let n = t.node(&p).unwrap();
        match n.kind {
            FileKind::File => {
                out.insert(
                    p.to_string(),
                    Entry::File(t.read_prefix(&p, 1 << 20).unwrap()),
                );
            }
            FileKind::Symlink => {
                out.insert(p.to_string(), Entry::Symlink(n.link.unwrap()));
            }
            _ => {}
        }
    }
    out
}

enum Op {
    Install(Install),
    Set(&'static str, &'static str),
}

fn inst(link: &str, name: &str, path: &str, prio: i32, slaves: &[(&str, &str, &str)]) -> Op {
    Op::Install(Install {
        link: link.into(),
        name: name.into(),
        path: path.into(),
        priority: prio,
        slaves: slaves
            .iter()
            .map(|(l, n, p)| (l.to_string(), n.to_string(), p.to_string()))
            .collect(),
    })
}

/// Runs `setup` with the real tool to make the base, then `ops` with both
/// the real tool and ours; the resulting trees must be identical.
fn compare(files: &[&str], setup: &[Op], ops: &[Op]) -> Vec<String> {
    let real = Real::new(files);
    for op in setup {
        match op {
            Op::Install(i) => real.install(i),
            Op::Set(n, p) => real.run(&["--set", n, p]),
        }
    }
    let before = real.snapshot();
    let base = to_tree(&before);
    let mut ours = Alternatives::new(&base);
    for op in ops {
        match op {
            Op::Install(i) => {
                real.install(i);
                ours.install(i).unwrap();
            }
            Op::Set(n, p) => {
                real.run(&["--set", n, p]);
                ours.set(n, p).unwrap();
            }
        }
    }
    let mut mine = base.clone();
    apply(&mut mine, ours.changes());
    let expected = real.snapshot();
    let got = tree_snapshot(&mine);
    if expected != got {
        let show = |m: &BTreeMap<String, Entry>| -> String {
            m.iter()
                .map(|(k, v)| match v {
                    Entry::File(b) => format!("{k}: {:?}\n", String::from_utf8_lossy(b)),
                    Entry::Symlink(s) => format!("{k} -> {s}\n"),
                })
                .collect()
        };
        panic!(
            "differs from update-alternatives\n--- real\n{}--- ours\n{}",
            show(&expected),
            show(&got)
        );
    }
    ours.warnings().to_vec()
}

const GCC: &str = "/opt/gcc-16.1.0/bin/gcc";

#[test]
fn one_alternative_install_then_set() {
    compare(
        &[GCC],
        &[],
        &[inst("/usr/bin/cc", "cc", GCC, 150, &[]), Op::Set("cc", GCC)],
    );
}

#[test]
fn with_slaves() {
    compare(
        &[
            "/usr/local/llvm-target/bin/clang",
            "/usr/local/llvm-target/bin/clang++",
            "/usr/local/llvm-target/bin/clang-cpp",
        ],
        &[],
        &[
            inst(
                "/usr/bin/clang",
                "clang",
                "/usr/local/llvm-target/bin/clang",
                1000,
                // Given out of order: the state file sorts slaves by name.
                &[
                    (
                        "/usr/bin/clang-cpp",
                        "clang-cpp",
                        "/usr/local/llvm-target/bin/clang-cpp",
                    ),
                    (
                        "/usr/bin/clang++",
                        "clang++",
                        "/usr/local/llvm-target/bin/clang++",
                    ),
                ],
            ),
            Op::Set("clang", "/usr/local/llvm-target/bin/clang"),
        ],
    );
}

#[test]
fn two_choices_then_set_to_the_lower() {
    compare(
        &["/opt/b/gcc", "/opt/a/gcc"],
        &[],
        &[
            inst("/usr/bin/cc", "cc", "/opt/b/gcc", 150, &[]),
            inst("/usr/bin/cc", "cc", "/opt/a/gcc", 100, &[]),
            Op::Set("cc", "/opt/a/gcc"),
        ],
    );
}

#[test]
fn merges_into_an_existing_pager_group() {
    // The fixture base: `update-alternatives --install /usr/bin/pager pager
    // /bin/more 50` was run when it was built.
    compare(
        &["/bin/more", "/usr/bin/less"],
        &[inst("/usr/bin/pager", "pager", "/bin/more", 50, &[])],
        &[
            inst(
                "/usr/bin/pager",
                "pager",
                "/usr/bin/less",
                77,
                &[(
                    "/usr/share/man/man1/pager.1.gz",
                    "pager.1.gz",
                    "/usr/share/man/man1/less.1.gz",
                )],
            ),
            Op::Set("pager", "/bin/more"),
        ],
    );
}

#[test]
fn manual_group_stays_manual_on_install() {
    compare(
        &["/opt/a/gcc", "/opt/b/gcc"],
        &[
            inst("/usr/bin/cc", "cc", "/opt/a/gcc", 10, &[]),
            Op::Set("cc", "/opt/a/gcc"),
        ],
        &[inst("/usr/bin/cc", "cc", "/opt/b/gcc", 500, &[])],
    );
}

#[test]
fn missing_slave_file_is_skipped_with_a_warning() {
    let w = compare(
        &["/opt/x/clang"],
        &[],
        &[inst(
            "/usr/bin/clang",
            "clang",
            "/opt/x/clang",
            10,
            &[("/usr/bin/clang++", "clang++", "/opt/x/clang++")],
        )],
    );
    assert!(w[0].contains("skip creation of /usr/bin/clang++"), "{w:?}");
}

#[test]
fn renamed_master_link_and_choices_whose_files_vanished() {
    // Base registers two choices; one file is gone in the image.
    let real = Real::new(&["/opt/a/gcc", "/opt/b/gcc"]);
    real.install(&Install {
        link: "/usr/bin/cc".into(),
        name: "cc".into(),
        path: "/opt/a/gcc".into(),
        priority: 1,
        slaves: vec![],
    });
    let before = real.snapshot();
    let mut base = to_tree(&before);
    // Our view only: a state file listing a choice that does not exist.
    base.add_file(
        "/var/lib/dpkg/alternatives/cc",
        b"auto\n/usr/bin/cc\n\n/opt/a/gcc\n1\n/opt/gone/gcc\n99\n\n",
    );
    let mut ours = Alternatives::new(&base);
    ours.install(&Install {
        link: "/usr/local/bin/cc".into(),
        name: "cc".into(),
        path: "/opt/b/gcc".into(),
        priority: 5,
        slaves: vec![],
    })
    .unwrap();
    let c = ours.changes();
    assert_eq!(
        c[&ImagePath::from("/var/lib/dpkg/alternatives/cc")],
        Change::File {
            content: b"auto\n/usr/local/bin/cc\n\n/opt/a/gcc\n1\n/opt/b/gcc\n5\n\n".to_vec()
        }
    );
    assert_eq!(c[&ImagePath::from("/usr/bin/cc")], Change::Removed);
    assert_eq!(
        c[&ImagePath::from("/usr/local/bin/cc")],
        Change::Symlink {
            target: "/etc/alternatives/cc".into()
        }
    );
    assert_eq!(
        c[&ImagePath::from("/etc/alternatives/cc")],
        Change::Symlink {
            target: "/opt/b/gcc".into()
        }
    );
    // And the real tool agrees on the rename.
    real.install(&Install {
        link: "/usr/local/bin/cc".into(),
        name: "cc".into(),
        path: "/opt/b/gcc".into(),
        priority: 5,
        slaves: vec![],
    });
    let after = real.snapshot();
    assert!(!after.contains_key("/usr/bin/cc"));
    assert_eq!(
        after["/usr/local/bin/cc"],
        Entry::Symlink("/etc/alternatives/cc".into())
    );
}

#[test]
fn the_package_steps_alternatives_on_the_fixture_base() {
    let g = |b: &str| format!("/opt/gcc-16.1.0/bin/{b}");
    let files: Vec<String> = ["gcc", "g++", "gcov"]
        .iter()
        .map(|b| g(b))
        .chain(
            ["clang", "clang++", "llvm-ar", "llvm-ranlib"]
                .iter()
                .map(|b| format!("/usr/local/llvm-target/bin/{b}")),
        )
        .chain(["/bin/more".to_string()])
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut ops = Vec::new();
    for (name, bin) in [
        ("gcc", "gcc"),
        ("g++", "g++"),
        ("gcov", "gcov"),
        ("cc", "gcc"),
        ("c++", "g++"),
    ] {
        let path = leak(g(bin));
        ops.push(inst(&format!("/usr/bin/{name}"), name, path, 150, &[]));
        ops.push(Op::Set(leak(name.to_string()), path));
    }
    ops.push(inst(
        "/usr/bin/clang",
        "clang",
        "/usr/local/llvm-target/bin/clang",
        1000,
        &[(
            "/usr/bin/clang++",
            "clang++",
            "/usr/local/llvm-target/bin/clang++",
        )],
    ));
    ops.push(Op::Set("clang", "/usr/local/llvm-target/bin/clang"));
    for name in ["llvm-ar", "llvm-ranlib"] {
        let path = leak(format!("/usr/local/llvm-target/bin/{name}"));
        ops.push(inst(&format!("/usr/bin/{name}"), name, path, 120, &[]));
        ops.push(Op::Set(leak(name.to_string()), path));
    }
    let w = compare(
        &files,
        &[inst("/usr/bin/pager", "pager", "/bin/more", 50, &[])],
        &ops,
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn refuses_conflicts_like_update_alternatives() {
    let mut t = MemTree::new("t");
    t.add_file("/opt/x", b"x").add_file("/opt/y", b"y");
    let mut a = Alternatives::new(&t);
    a.install(&Install {
        link: "/usr/bin/clang".into(),
        name: "clang".into(),
        path: "/opt/x".into(),
        priority: 1,
        slaves: vec![("/usr/bin/clang++".into(), "clang++".into(), "/opt/y".into())],
    })
    .unwrap();
    let changes = a.changes().clone();
    let mut t2 = t.clone();
    apply(&mut t2, &changes);
    let mut b = Alternatives::new(&t2);
    let err = |r: Result<()>| r.unwrap_err().to_string();
    let e = err(b.install(&Install {
        link: "/usr/bin/cpp".into(),
        name: "clang++".into(),
        path: "/opt/y".into(),
        priority: 1,
        slaves: vec![],
    }));
    assert!(e.contains("can't be master: it is a slave of clang"), "{e}");
    let e = err(b.install(&Install {
        link: "/usr/bin/clang".into(),
        name: "other".into(),
        path: "/opt/y".into(),
        priority: 1,
        slaves: vec![],
    }));
    assert!(e.contains("already managed by clang"), "{e}");
    let e = err(b.install(&Install {
        link: "/usr/bin/z".into(),
        name: "z".into(),
        path: "/opt/missing".into(),
        priority: 1,
        slaves: vec![],
    }));
    assert!(
        e.contains("alternative z: its path /opt/missing not found in the image"),
        "{e}"
    );
    assert!(!e.contains("invalid content"), "{e}");
    let e = err(b.set("clang", "/opt/y"));
    assert!(e.contains("not registered"), "{e}");
    let e = err(b.set("nope", "/opt/y"));
    assert!(e.contains("no alternatives"), "{e}");
    let e = err(b.install(&Install {
        link: "/usr/bin/a".into(),
        name: "a/b".into(),
        path: "/opt/y".into(),
        priority: 1,
        slaves: vec![],
    }));
    assert!(e.contains("'/'"), "{e}");
}

#[test]
fn parse_and_render_round_trip() {
    let bytes = b"manual\n/usr/bin/clang\nclang++\n/usr/bin/clang++\n\n/a/clang\n1000\n/a/clang++\n/b/clang\n5\n\n\n";
    let (s, dropped) = AltState::parse("clang", bytes, &|_| true).unwrap();
    assert!(!dropped);
    assert_eq!(s.status, Status::Manual);
    assert_eq!(s.choices.len(), 2);
    assert_eq!(s.best().unwrap().path, "/a/clang");
    assert_eq!(s.render(), bytes.to_vec());
    for bad in [
        &b"weird\n/x\n\n"[..],
        b"auto\n/x\n",
        b"auto\n/x\n\n/a\nnot-a-number\n\n",
        b"auto\n/x\ns\n/x\n\n",
        b"auto",
    ] {
        assert!(AltState::parse("x", bad, &|_| true).is_err(), "{bad:?}");
    }
}
