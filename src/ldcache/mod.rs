//! `/etc/ld.so.cache`, written natively: what `ldconfig` (glibc 2.37+,
//! the rules every later version keeps) would write inside the image,
//! computed from the image's merged view without running anything.
//!
//! - the directories: `/etc/ld.so.conf` (with `include` globs, `#`
//!   comments, `hwcap` lines ignored), each one's `glibc-hwcaps/*`
//!   subdirectories, then the trusted directories compiled into the
//!   target's ldconfig ([`system_dirs`]); one directory reached twice
//!   (`/lib/x` and `/usr/lib/x` on a merged-/usr image) counts once, under
//!   the first name;
//! - in each: names that look like a DSO (`lib*.so*`, `ld-*.so*`,
//!   `ld.so.*`, `ld64.so.*`; package managers' temp names skipped), regular
//!   files and symlinks to them, read as the target's ldconfig reads them
//!   ([`elf`]); one entry per SONAME and directory (a file beats a link, else
//!   the newest name); a link named after its SONAME, or the `.so` link of
//!   ld(1), is listed under its own name;
//! - the soname links ldconfig would create (`libfoo.so.1 -> libfoo.so.1.2`)
//!   where missing or pointing elsewhere;
//! - the file itself ([`format`]), entries sorted as ldconfig sorts them.
//!
//! Not done (documented in the README): ldconfig < 2.37 also listed legacy
//! hwcap subdirectories (`tls`, `haswell`, `x86_64`...) which 2.37 dropped,
//! and it deletes dangling `*.so.*` links (a layer here never deletes).

pub mod elf;
pub mod format;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::platform::TargetArch;
use crate::tree::{FileKind, ImagePath, ImageTree};

pub use format::{parse, Entry, Parsed};

/// Where the cache lives.
pub const CACHE_PATH: &str = "/etc/ld.so.cache";
/// The configuration ldconfig reads.
pub const CONF_PATH: &str = "/etc/ld.so.conf";
/// The generator extension's text (ldconfig writes its own version).
pub const GENERATOR: &str = "ocipack";

/// The multiarch triplet Debian and Ubuntu install glibc under.
fn triplet(arch: TargetArch) -> &'static str {
    match arch {
        TargetArch::Amd64 => "x86_64-linux-gnu",
        TargetArch::Arm64 => "aarch64-linux-gnu",
        TargetArch::Riscv64 => "riscv64-linux-gnu",
    }
}

/// The trusted directories of the target's ldconfig (`SLIBDIR`, `LIBDIR`
/// through the arch's `add_system_dir`). Debian and Ubuntu build glibc with
/// `slibdir=/lib/TRIPLET`, `libdir=/usr/lib/TRIPLET`: that layout is
/// recognised by `libc.so.6` in one of them. Otherwise glibc's own
/// defaults: `/lib64` (x86-64, AArch64), `/lib64/lp64d` (RISC-V), which
/// `add_system_dir` widens to `/lib`, `/lib64` (and x32, ilp32, the RISC-V
/// ABI directories).
pub fn system_dirs(view: &dyn ImageTree, arch: TargetArch) -> Vec<String> {
    let t = triplet(arch);
    let debian = [format!("/lib/{t}"), format!("/usr/lib/{t}")];
    if debian
        .iter()
        .any(|d| is_file(view, &format!("{d}/libc.so.6")))
    {
        // Debian's local-ldconfig-multiarch.diff: ld.so's trusted
        // directories, which its local-ld-multiarch.diff extends with
        // /lib and /usr/lib (`ldconfig -v` prints them as `<builtin>`).
        return vec![
            debian[0].clone(),
            debian[1].clone(),
            "/lib".into(),
            "/usr/lib".into(),
        ];
    }
    let (slib, lib) = match arch {
        TargetArch::Riscv64 => ("/lib64/lp64d", "/usr/lib64/lp64d"),
        _ => ("/lib64", "/usr/lib64"),
    };
    let mut out = Vec::new();
    for d in [slib, lib] {
        out.extend(add_system_dir(arch, d));
    }
    out
}

/// sysdeps/unix/sysv/linux/{x86_64,aarch64,riscv}/dl-cache.h.
fn add_system_dir(arch: TargetArch, dir: &str) -> Vec<String> {
    match arch {
        TargetArch::Amd64 | TargetArch::Arm64 => {
            let (alt, strip) = match arch {
                TargetArch::Amd64 => ("x32", "/libx32"),
                _ => ("ilp32", "/libilp32"),
            };
            let mut p = dir.to_string();
            if let Some(s) = p.strip_suffix("/lib64") {
                p = format!("{s}/lib");
            } else if let Some(s) = p.strip_suffix(strip) {
                p = format!("{s}/lib");
            }
            let mut out = vec![p.clone()];
            if p.ends_with("/lib") {
                out.push(format!("{p}64"));
                out.push(format!("{p}{alt}"));
            }
            out
        }
        TargetArch::Riscv64 => {
            const ABI: [&str; 4] = [
                "/lib64/lp64d",
                "/lib64/lp64",
                "/lib32/ilp32d",
                "/lib32/ilp32",
            ];
            let mut p = dir.to_string();
            for a in ABI {
                if let Some(s) = p.strip_suffix(a) {
                    p = format!("{s}/lib");
                    break;
                }
            }
            let mut out = vec![p.clone()];
            if let Some(base) = p.strip_suffix("/lib") {
                for a in ABI {
                    out.push(format!("{base}{a}"));
                }
            }
            out
        }
    }
}

fn is_file(view: &dyn ImageTree, path: &str) -> bool {
    view.resolve(&ImagePath::from(path))
        .is_ok_and(|r| matches!(r.node.kind, FileKind::File | FileKind::HardLink))
}

/// Whether the image has glibc's dynamic loader set up: `/etc/ld.so.conf`
/// and `libc.so.6` in one of the trusted directories. This is what turns
/// the `ld_cache` default on.
pub fn has_glibc(view: &dyn ImageTree, arch: TargetArch) -> bool {
    is_file(view, CONF_PATH)
        && system_dirs(view, arch)
            .iter()
            .any(|d| is_file(view, &format!("{d}/libc.so.6")))
}

/// One directory ldconfig scans.
struct DirEntry {
    /// As written (entries name it).
    path: String,
    /// Symlink-free, in the image: its identity (ldconfig's inode).
    canon: ImagePath,
    hwcaps: Option<String>,
}

struct Dirs<'v> {
    view: &'v dyn ImageTree,
    list: Vec<DirEntry>,
    seen: BTreeSet<ImagePath>,
    /// Every glibc-hwcaps subdirectory name met (interned in the strings).
    hwcaps_names: BTreeSet<String>,
}

impl Dirs<'_> {
    /// `add_dir_1`: trailing blanks and slashes dropped, the path must
    /// exist (stat), duplicates by identity dropped.
    fn add(&mut self, line: &str) {
        let p = line.trim_end_matches(is_c_space).trim_end_matches('/');
        if p.is_empty() {
            return;
        }
        let Ok(r) = self.view.resolve(&ImagePath::from(p)) else {
            return;
        };
        if self.add_single(DirEntry {
            path: p.to_string(),
            canon: r.path.clone(),
            hwcaps: None,
        }) && r.node.kind == FileKind::Dir
        {
            self.add_hwcaps_subdirs(p, &r.path);
        }
    }

    fn add_single(&mut self, e: DirEntry) -> bool {
        if !self.seen.insert(e.canon.clone()) {
            return false;
        }
        self.list.push(e);
        true
    }

    fn add_hwcaps_subdirs(&mut self, path: &str, canon: &ImagePath) {
        let g = canon.join("glibc-hwcaps");
        let Ok(r) = self.view.resolve(&g) else {
            return;
        };
        if r.node.kind != FileKind::Dir {
            return;
        }
        let mut names = self.view.children(&r.path);
        names.sort();
        for name in names {
            if name.starts_with('.') || name.contains(':') {
                continue;
            }
            let child = r.path.join(&name);
            if matches!(
                self.view.node(&child).map(|n| n.kind),
                Some(FileKind::File | FileKind::HardLink)
            ) {
                continue;
            }
            let Ok(cr) = self.view.resolve(&child) else {
                continue;
            };
            if cr.node.kind != FileKind::Dir {
                continue;
            }
            self.hwcaps_names.insert(name.clone());
            self.add_single(DirEntry {
                path: format!("{path}/glibc-hwcaps/{name}"),
                canon: cr.path,
                hwcaps: Some(name),
            });
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `dirname(3)` of a conf file's name as written (`/` for top-level).
fn parent_dir(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// C's isspace.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `parse_conf`: reads a configuration file of the image (missing or not
/// a file: nothing), with `include` globs relative to its directory.
fn parse_conf(dirs: &mut Dirs<'_>, file: &str, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(Error::invalid(
            file,
            "ld.so.conf includes nest too deep (a loop?)",
        ));
    }
    let Ok(r) = dirs.view.resolve(&ImagePath::from(file)) else {
        return Ok(());
    };
    if !matches!(r.node.kind, FileKind::File | FileKind::HardLink) {
        return Ok(());
    }
    let bytes = dirs.view.read_prefix(&r.path, 1 << 20)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for raw in text.split('\n') {
        let line = raw.split('#').next().unwrap_or("");
        let cp = line.trim_start_matches(is_c_space);
        if cp.is_empty() {
            continue;
        }
        if let Some(rest) = cp.strip_prefix("include") {
            if rest.starts_with([' ', '\t']) {
                for pat in rest[1..].split([' ', '\t']).filter(|p| !p.is_empty()) {
                    let pat = if pat.starts_with('/') || !file.contains('/') {
                        pat.to_string()
                    } else {
                        format!("{}/{pat}", parent_dir(file))
                    };
                    for f in glob(dirs.view, &pat) {
                        parse_conf(dirs, &f, depth + 1)?;
                    }
                }
                continue;
            }
        }
        if cp.len() > 5 && cp[..5].eq_ignore_ascii_case("hwcap") && cp[5..].starts_with([' ', '\t'])
        {
            continue;
        }
        dirs.add(cp);
    }
    Ok(())
}

/// glob(3) without flags, in the image: every match, sorted (C collation).
fn glob(view: &dyn ImageTree, pattern: &str) -> Vec<String> {
    let mut found = vec!["/".to_string()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            let Ok(r) = view.resolve(&ImagePath::from(base)) else {
                continue;
            };
            if r.node.kind != FileKind::Dir {
                continue;
            }
            if !comp.contains(['*', '?', '[']) {
                let p = join(base, comp);
                if view.resolve(&ImagePath::from(&p)).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let mut names = view.children(&r.path);
            names.sort();
            for n in names {
                if n.starts_with('.') && !comp.starts_with('.') {
                    continue;
                }
                if fnmatch(comp.as_bytes(), n.as_bytes()) {
                    next.push(join(base, &n));
                }
            }
        }
        found = next;
    }
    found.retain(|p| p != "/");
    found.sort();
    found
}

/// fnmatch(3) on one path component: `*`, `?`, `[...]` (with `!`/`^` and
/// ranges), `\` escapes.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else {
                return false;
            };
            let mut i = 1;
            let negate = matches!(p.get(1), Some(b'!' | b'^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
                    if (lo..=p[i + 2]).contains(&c) {
                        matched = true;
                    }
                    i += 3;
                } else {
                    matched |= lo == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return c == b'[' && fnmatch(&p[1..], &s[1..]);
            }
            matched != negate && fnmatch(&p[i + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && fnmatch(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && fnmatch(&p[1..], &s[1..]),
    }
}

/// `_dl_is_dso` (elf/dl-is_dso.h).
fn is_dso(name: &str) -> bool {
    ((name.starts_with("lib") || name.starts_with("ld-")) && name.contains(".so"))
        || name.starts_with("ld.so.")
        || name.starts_with("ld64.so.")
}

/// `skip_dso_based_on_name`: prelink, RPM and dpkg temporary files.
fn skip_name(name: &str) -> bool {
    let prelink_tmp =
        name.len() >= 17 && name.as_bytes()[name.len() - 17..].starts_with(b".#prelink#.");
    name.ends_with(".#prelink#")
        || prelink_tmp
        || name.contains(';')
        || name.ends_with(".dpkg-new")
        || name.ends_with(".dpkg-tmp")
}

/// A candidate file of one directory, before its ELF is read.
struct Candidate {
    dir: usize,
    name: String,
    is_link: bool,
    /// The symlink-free path of its content.
    real: ImagePath,
}

/// What the step adds for the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePlan {
    /// The cache file's bytes.
    pub bytes: Vec<u8>,
    pub entries: Vec<Entry>,
    /// Soname links ldconfig would create: (link path, symlink-free
    /// directory; target as written, a name in the same directory).
    pub links: Vec<(ImagePath, String)>,
}

/// Computes the cache (and the soname links) of the image `view` for
/// `arch`, as the target's `ldconfig` run in it would.
pub fn plan(view: &dyn ImageTree, arch: TargetArch) -> Result<CachePlan> {
    let mut dirs = Dirs {
        view,
        list: Vec::new(),
        seen: BTreeSet::new(),
        hwcaps_names: BTreeSet::new(),
    };
    parse_conf(&mut dirs, CONF_PATH, 0)?;
    for d in system_dirs(view, arch) {
        dirs.add(&d);
    }

    // Candidates, directory by directory (sorted names: readdir order
    // only breaks ties ldconfig leaves to it).
    let mut cands = Vec::new();
    for (i, d) in dirs.list.iter().enumerate() {
        let Ok(r) = view.resolve(&d.canon) else {
            continue;
        };
        if r.node.kind != FileKind::Dir {
            continue;
        }
        let mut names = view.children(&r.path);
        names.sort();
        for name in names {
            let full = r.path.join(&name);
            let Some(node) = view.node(&full) else {
                continue;
            };
            let is_reg = matches!(node.kind, FileKind::File | FileKind::HardLink);
            let is_link = node.kind == FileKind::Symlink;
            if !is_reg && !is_link && node.kind != FileKind::Dir {
                continue;
            }
            if !is_dso(&name) && (is_reg || d.hwcaps.is_none()) {
                continue;
            }
            if skip_name(&name) {
                continue;
            }
            let real = if is_link {
                // A dangling link is skipped (ldconfig also deletes it).
                match view.resolve(&full) {
                    Ok(t) if matches!(t.node.kind, FileKind::File | FileKind::HardLink) => t.path,
                    _ => continue,
                }
            } else if is_reg {
                full
            } else {
                continue;
            };
            cands.push(Candidate {
                dir: i,
                name,
                is_link,
                real,
            });
        }
    }

    // Every distinct file's ELF, one streaming pass per layer.
    let reals: Vec<ImagePath> = cands
        .iter()
        .map(|c| c.real.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut scans: Vec<elf::Scan> = vec![elf::Scan::Skip; reals.len()];
    view.visit_files(&reals, &mut |i, r| {
        if let Some(s) = scans.get_mut(i) {
            *s = elf::scan(arch, r);
        }
        Ok(())
    })?;
    let second: Vec<(usize, u64)> = scans
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            elf::Scan::NeedsString { offset, .. } => Some((i, *offset)),
            _ => None,
        })
        .collect();
    if !second.is_empty() {
        let paths: Vec<ImagePath> = second.iter().map(|(i, _)| reals[*i].clone()).collect();
        let mut names: Vec<Option<String>> = vec![None; second.len()];
        view.visit_files(&paths, &mut |k, r| {
            if let (Some(slot), Some((_, off))) = (names.get_mut(k), second.get(k)) {
                *slot = elf::string_at(r, *off);
            }
            Ok(())
        })?;
        for ((i, _), name) in second.iter().zip(names) {
            if let elf::Scan::NeedsString {
                flags, isa_level, ..
            } = scans[*i]
            {
                scans[*i] = match name {
                    Some(n) => elf::Scan::Library {
                        flags,
                        soname: Some(n),
                        isa_level,
                    },
                    None => elf::Scan::Skip,
                };
            }
        }
    }
    let index: BTreeMap<&ImagePath, usize> =
        reals.iter().enumerate().map(|(i, p)| (p, i)).collect();

    // search_dir: one library per SONAME and directory.
    struct Dlib {
        name: String,
        soname: String,
        flags: i32,
        is_link: bool,
        isa_level: u32,
    }
    let mut per_dir: BTreeMap<usize, Vec<Dlib>> = BTreeMap::new();
    for c in &cands {
        let Some(&si) = index.get(&c.real) else {
            continue;
        };
        let elf::Scan::Library {
            flags,
            soname,
            isa_level,
        } = &scans[si]
        else {
            continue;
        };
        let mut soname = soname.clone().unwrap_or_else(|| c.name.clone());
        let mut is_link = c.is_link;
        if is_link && c.name != soname {
            let n = &c.name;
            if !(n.len() >= 3 && n.ends_with(".so") && soname.starts_with(n.as_str())) {
                is_link = false;
            }
        }
        if is_link {
            soname = c.name.clone();
        }
        let list = per_dir.entry(c.dir).or_default();
        match list.iter_mut().find(|d| d.soname == soname) {
            Some(d) => {
                if (!is_link && d.is_link)
                    || (is_link == d.is_link
                        && format::libcmp(&d.name, &c.name) == std::cmp::Ordering::Less)
                {
                    // The flags stay the first one's (ldconfig only warns).
                    d.name = c.name.clone();
                    d.is_link = is_link;
                    d.isa_level = *isa_level;
                }
            }
            None => list.push(Dlib {
                name: c.name.clone(),
                soname,
                flags: *flags,
                is_link,
                isa_level: *isa_level,
            }),
        }
    }

    let mut entries = Vec::new();
    let mut links = Vec::new();
    for (di, libs) in per_dir {
        let d = &dirs.list[di];
        for l in libs {
            let filename = if d.hwcaps.is_none() {
                if !l.is_link {
                    if let Some(link) = soname_link(view, &d.canon, &l.name, &l.soname) {
                        links.push(link);
                    }
                }
                l.soname.clone()
            } else {
                l.name.clone()
            };
            entries.push(Entry {
                soname: l.soname,
                path: format!("{}/{filename}", d.path),
                flags: l.flags,
                hwcaps: d.hwcaps.clone(),
                isa_level: l.isa_level,
            });
        }
    }
    format::sort(&mut entries);
    let names: Vec<String> = dirs.hwcaps_names.into_iter().collect();
    let bytes = format::write(&entries, &names, GENERATOR)?;
    links.sort();
    links.dedup();
    Ok(CachePlan {
        bytes,
        entries,
        links,
    })
}

/// The dynamic linkers of that Debian patch's list as it compiles (two
/// missing commas glue the RISC-V and x32 names into one string, which
/// never matches).
const DYNAMIC_LINKERS: [&str; 13] = [
    "ld-kfreebsd-x86-64.so.1",
    "ld-linux-aarch64.so.1",
    "ld-linux-aarch64_be.so.1",
    "ld-linux-armhf.so.3",
    "ld-linux-ia64.so.2",
    "ld-linux-mipsn8.so.1",
    "ld-linux-riscv64-lp64.so.1ld-linux-riscv64-lp64d.so.1ld-linux-x32.so.2",
    "ld-linux-x86-64.so.2",
    "ld-linux.so.2",
    "ld-linux.so.3",
    "ld.so.1",
    "ld64.so.1",
    "ld64.so.2",
];

/// `create_links`: `DIR/SONAME -> NAME` unless SONAME already leads to
/// the same file or is not a symlink.
fn soname_link(
    view: &dyn ImageTree,
    dir: &ImagePath,
    name: &str,
    soname: &str,
) -> Option<(ImagePath, String)> {
    let so = dir.join(soname);
    let lib = dir.join(name);
    let real = |p: &ImagePath| {
        view.resolve(p)
            .ok()
            .map(|r| match (r.node.kind, r.node.link) {
                (FileKind::HardLink, Some(t)) => ImagePath::from(t),
                _ => r.path,
            })
    };
    match view.node(&so) {
        None => Some((so, name.to_string())),
        // Debian's local-ldconfig-ignore-ld.so.diff: an existing link to
        // the dynamic linker is never re-pointed.
        Some(_) if DYNAMIC_LINKERS.contains(&soname) && real(&so).is_some() => None,
        Some(n) if n.kind == FileKind::Symlink => {
            if real(&so).is_some() && real(&so) == real(&lib) {
                None
            } else {
                Some((so, name.to_string()))
            }
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MemTree;

    #[test]
    fn fnmatch_and_glob_follow_glibc() {
        assert!(fnmatch(b"*.conf", b"x86_64-linux-gnu.conf"));
        assert!(!fnmatch(b"*.conf", b"x.conf.bak"));
        assert!(fnmatch(b"[0-9]*-[!x]?", b"000-ab"));
        assert!(!fnmatch(b"[!0-9]*", b"0a"));
        let mut t = MemTree::new("t");
        t.add_file("/etc/ld.so.conf.d/b.conf", b"")
            .add_file("/etc/ld.so.conf.d/a.conf", b"")
            .add_file("/etc/ld.so.conf.d/.hidden.conf", b"")
            .add_file("/etc/ld.so.conf.d/c.txt", b"");
        assert_eq!(
            glob(&t, "/etc/ld.so.conf.d/*.conf"),
            ["/etc/ld.so.conf.d/a.conf", "/etc/ld.so.conf.d/b.conf"]
        );
    }

    #[test]
    fn system_dirs_per_layout() {
        let mut deb = MemTree::new("debian");
        deb.add_file("/lib/aarch64-linux-gnu/libc.so.6", b"");
        assert_eq!(
            system_dirs(&deb, TargetArch::Arm64),
            [
                "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/lib",
                "/usr/lib"
            ]
        );
        let fedora = MemTree::new("fedora");
        assert_eq!(
            system_dirs(&fedora, TargetArch::Amd64),
            [
                "/lib",
                "/lib64",
                "/libx32",
                "/usr/lib",
                "/usr/lib64",
                "/usr/libx32"
            ]
        );
        assert_eq!(
            system_dirs(&fedora, TargetArch::Riscv64)[..5],
            [
                "/lib",
                "/lib64/lp64d",
                "/lib64/lp64",
                "/lib32/ilp32d",
                "/lib32/ilp32"
            ]
        );
    }

    #[test]
    fn lists_sonames_links_and_conf_dirs() {
        let lib = |so: &str| elf::tests::tiny_lib(62, 0, Some(so));
        let mut t = MemTree::new("img");
        t.add_file("/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n")
            .add_file(
                "/etc/ld.so.conf.d/opt.conf",
                b"# payload\n/opt/x/lib/ \n/opt/missing\nhwcap 0 nosegneg\n/lib/x86_64-linux-gnu\n",
            )
            .add_file("/lib/x86_64-linux-gnu/libc.so.6", &lib("libc.so.6"))
            .add_file("/opt/x/lib/libfoo.so.1.2.3", &lib("libfoo.so.1"))
            .add_symlink("/opt/x/lib/libfoo.so", "libfoo.so.1")
            .add_file("/opt/x/lib/libbar.so.2.0", &lib("libbar.so.2"))
            .add_symlink("/opt/x/lib/libbar.so.2", "libbar.so.2.0")
            .add_file("/opt/x/lib/libplain.so", &elf::tests::tiny_lib(62, 0, None))
            .add_file("/opt/x/lib/notalib.txt", b"x")
            .add_symlink("/opt/x/lib/libdangling.so.1", "nowhere");
        assert!(has_glibc(&t, TargetArch::Amd64));
        let p = plan(&t, TargetArch::Amd64).unwrap();
        let got: Vec<(&str, &str)> = p
            .entries
            .iter()
            .map(|e| (e.soname.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("libplain.so", "/opt/x/lib/libplain.so"),
                ("libfoo.so.1", "/opt/x/lib/libfoo.so.1"),
                ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                ("libbar.so.2", "/opt/x/lib/libbar.so.2"),
            ]
        );
        assert!(p.entries.iter().all(|e| e.flags == 0x303));
        // libfoo.so.1 is missing: ldconfig would create it (and, as in
        // ldconfig, libfoo.so -> libfoo.so.1 dangles during this run).
        assert_eq!(
            p.links,
            [(
                ImagePath::from("/opt/x/lib/libfoo.so.1"),
                "libfoo.so.1.2.3".to_string()
            )]
        );
        // A second run with the link in place lists the ld(1) link too.
        t.add_symlink("/opt/x/lib/libfoo.so.1", "libfoo.so.1.2.3");
        let again = plan(&t, TargetArch::Amd64).unwrap();
        assert!(again.links.is_empty());
        let got: Vec<&str> = again.entries.iter().map(|e| e.soname.as_str()).collect();
        assert_eq!(
            got,
            [
                "libplain.so",
                "libfoo.so.1",
                "libfoo.so",
                "libc.so.6",
                "libbar.so.2"
            ]
        );
    }
}
