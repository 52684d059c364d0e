//! The compiler guard (the pipeline's "Fix 4", done statically): the
//! runtime `cc` and every other registered alternative must be binaries of
//! the target. `cc -dumpmachine` cannot tell a native compiler from a
//! host-arch cross compiler; the ELF machine of the binary can.
//!
//! Links are resolved inside the image. When the target is a `#!` wrapper
//! script (gcc wrapped in a shell script that execs
//! `"$(readlink -f "$0").real"`), the `.real` sibling of the resolved path
//! is judged instead. GCC's `lib/gcc/<triple>/<version>/` must exist and
//! name the target.

use super::GuardOutcome;
use crate::elf;
use crate::error::Result;
use crate::platform::TargetArch;
use crate::recipe::GuardSettings;
use crate::tree::{format_chain, FileKind, ImagePath, ImageTree, ResolveError};

/// Bytes read to tell a script from a binary.
const PROBE_LEN: usize = 256;

pub fn check(
    tree: &dyn ImageTree,
    arch: TargetArch,
    settings: &GuardSettings,
) -> Result<GuardOutcome> {
    let mut out = GuardOutcome::new("compiler");
    for link in &settings.compiler_links {
        out.checked += 1;
        check_link(tree, arch, link, &mut out)?;
    }
    if let (Some(prefix), Some(version)) = (&settings.gcc_prefix, &settings.gcc_version) {
        out.checked += 1;
        check_gcc_libdir(tree, arch, prefix, version, &mut out);
    }
    Ok(out)
}

fn check_link(
    tree: &dyn ImageTree,
    arch: TargetArch,
    link: &str,
    out: &mut GuardOutcome,
) -> Result<()> {
    let at = ImagePath::from(link);
    let resolved = match tree.resolve(&at) {
        Ok(r) => r,
        Err(ResolveError::Missing { missing, chain }) if missing == at && chain.is_empty() => {
            out.offend(link, "not present in the image");
            return Ok(());
        }
        Err(e) => {
            out.offend(link, format!("does not resolve: {e}"));
            return Ok(());
        }
    };
    let chain = if resolved.chain.is_empty() {
        link.to_string()
    } else {
        format_chain(&resolved.chain)
    };
    if !matches!(resolved.node.kind, FileKind::File | FileKind::HardLink) {
        out.offend(link, format!("{chain}: not a regular file"));
        return Ok(());
    }
    let probe = tree.read_prefix(&resolved.path, PROBE_LEN)?;
    if probe.starts_with(b"#!") {
        // A wrapper script: `readlink -f "$0"` is the resolved path; the
        // real binary is its `.real` sibling.
        let real = format!("{}.real", resolved.path);
        let real_resolved = match tree.resolve(&ImagePath::from(&real)) {
            Ok(r) => r,
            Err(e) => {
                out.offend(
                    link,
                    format!("{chain}: a script wrapper without a readable {real} ({e})"),
                );
                return Ok(());
            }
        };
        let bytes = tree.read_prefix(&real_resolved.path, elf::HEADER_LEN)?;
        judge(
            link,
            &format!("{chain} (script) -> {}", real_resolved.path),
            &bytes,
            arch,
            out,
        );
        return Ok(());
    }
    judge(link, &chain, &probe, arch, out);
    Ok(())
}

fn judge(link: &str, chain: &str, bytes: &[u8], arch: TargetArch, out: &mut GuardOutcome) {
    match elf::parse(bytes) {
        Ok(Some(info)) => {
            let bad = info.mismatches(arch);
            if bad.is_empty() {
                out.notes.push(format!("{chain}: {}", info.describe()));
            } else {
                out.offend(
                    link,
                    format!("{chain}: {}: {}", info.describe(), bad.join("; ")),
                );
            }
        }
        Ok(None) => out.offend(
            link,
            format!("{chain}: neither an ELF binary nor a #! script"),
        ),
        Err(e) => out.offend(link, format!("{chain}: {e}")),
    }
}

fn check_gcc_libdir(
    tree: &dyn ImageTree,
    arch: TargetArch,
    prefix: &str,
    version: &str,
    out: &mut GuardOutcome,
) {
    let base = format!("{prefix}/lib/gcc");
    let base_resolved = match tree.resolve(&ImagePath::from(&base)) {
        Ok(r) if r.node.kind == FileKind::Dir => r.path,
        Ok(_) => {
            out.offend(&base, "not a directory");
            return;
        }
        Err(e) => {
            out.offend(&base, format!("missing: {e}"));
            return;
        }
    };
    let triples = tree.children(&base_resolved);
    let wanted_cpu = format!("{}-", arch.gnu_cpu());
    let good: Vec<&String> = triples
        .iter()
        .filter(|t| t.starts_with(&wanted_cpu) && t.contains("linux"))
        .collect();
    let with_version: Vec<&&String> = good
        .iter()
        .filter(|t| {
            tree.resolve(&base_resolved.join(t).join(version))
                .is_ok_and(|r| r.node.kind == FileKind::Dir)
        })
        .collect();
    match with_version.first() {
        Some(t) => out
            .notes
            .push(format!("{base}/{t}/{version}: GCC targets {t}")),
        None => out.offend(
            format!("{base}/{}/{version}", arch.gnu_triple()),
            format!(
                "missing; {base} holds {}",
                if triples.is_empty() {
                    "nothing".to_string()
                } else {
                    triples.join(", ")
                }
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::header;
    use crate::tree::MemTree;

    fn settings(links: &[&str]) -> GuardSettings {
        GuardSettings {
            compiler_links: links.iter().map(|s| s.to_string()).collect(),
            gcc_prefix: Some("/opt/gcc-16.1.0".into()),
            gcc_version: Some("16.1.0".into()),
            ..Default::default()
        }
    }

    /// The fixture's layout: gcc, a g++ script wrapper with g++.real,
    /// alternatives symlinks.
    fn image(machine: u16, triple: &str) -> MemTree {
        let mut t = MemTree::new("img");
        t.add_file("/opt/gcc-16.1.0/bin/gcc", &header(64, true, machine, 5))
            .add_file(
                "/opt/gcc-16.1.0/bin/g++",
                b"#!/bin/sh\nexec \"$(readlink -f \"$0\").real\" \"$@\"\n",
            )
            .add_file(
                "/opt/gcc-16.1.0/bin/g++.real",
                &header(64, true, machine, 5),
            )
            .add_symlink("/opt/gcc-16.1.0/bin/c++", "g++")
            .add_symlink("/etc/alternatives/cc", "/opt/gcc-16.1.0/bin/gcc")
            .add_symlink("/usr/bin/cc", "/etc/alternatives/cc")
            .add_symlink("/etc/alternatives/c++", "/opt/gcc-16.1.0/bin/c++")
            .add_symlink("/usr/bin/c++", "/etc/alternatives/c++")
            .add_dir(format!("/opt/gcc-16.1.0/lib/gcc/{triple}/16.1.0"));
        t
    }

    #[test]
    fn native_compiler_passes_with_notes() {
        let t = image(243, "riscv64-linux-gnu");
        let out = check(
            &t,
            TargetArch::Riscv64,
            &settings(&["/usr/bin/cc", "/usr/bin/c++"]),
        )
        .unwrap();
        assert!(out.passed(), "{:?}", out.offenders);
        assert_eq!(out.checked, 3);
        assert!(out.notes[0]
            .starts_with("/usr/bin/cc -> /etc/alternatives/cc -> /opt/gcc-16.1.0/bin/gcc: RISC-V"));
        assert!(
            out.notes[1].contains("(script) -> /opt/gcc-16.1.0/bin/g++.real"),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn host_arch_cross_compiler_fails_on_every_link() {
        // An x86-64 compiler that targets riscv64: -dumpmachine would lie.
        let t = image(62, "riscv64-linux-gnu");
        let out = check(
            &t,
            TargetArch::Riscv64,
            &settings(&["/usr/bin/cc", "/usr/bin/c++"]),
        )
        .unwrap();
        assert_eq!(out.offenders.len(), 2);
        assert!(
            out.offenders[0].found.contains("x86-64"),
            "{:?}",
            out.offenders
        );
        assert!(out.offenders[1].found.contains("g++.real"));
    }

    #[test]
    fn wrong_gcc_triple_missing_links_and_wrappers() {
        let mut t = image(183, "x86_64-linux-gnu");
        t.add_file("/opt/gcc-16.1.0/bin/gcov", b"#!/bin/sh\n")
            .add_symlink("/usr/bin/gcov", "/opt/gcc-16.1.0/bin/gcov")
            .add_symlink("/usr/bin/broken", "/opt/nowhere")
            .add_file("/usr/bin/text", b"plain text file");
        let out = check(
            &t,
            TargetArch::Arm64,
            &settings(&[
                "/usr/bin/cc",
                "/usr/bin/gcov",
                "/usr/bin/broken",
                "/usr/bin/absent",
                "/usr/bin/text",
            ]),
        )
        .unwrap();
        let found: Vec<String> = out
            .offenders
            .iter()
            .map(|o| format!("{}: {}", o.path, o.found))
            .collect();
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("without a readable /opt/gcc-16.1.0/bin/gcov.real"));
        assert!(found[1].contains("does not resolve"));
        assert!(found[2].contains("not present"));
        assert!(found[3].contains("neither an ELF"));
        assert!(found[4].contains(
            "aarch64-linux-gnu/16.1.0: missing; /opt/gcc-16.1.0/lib/gcc holds x86_64-linux-gnu"
        ));
    }
}
