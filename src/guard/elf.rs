//! The ELF guard: every ELF file the step added must be built for the
//! target (machine, ELF64, little-endian, riscv64 double-float ABI).

use std::io::Read;
use std::path::Path;

use super::{Allowed, GuardOutcome};
use crate::elf::{self, HEADER_LEN};
use crate::error::{Error, Result};
use crate::layer::glob::Glob;
use crate::platform::TargetArch;
use crate::recipe::ElfAllow;
use crate::tree::{FileKind, ImagePath, ImageTree};

/// Accumulates verdicts file by file, wherever the bytes come from.
pub struct ElfCheck {
    arch: TargetArch,
    allow: Vec<(Glob, ElfAllow)>,
    outcome: GuardOutcome,
}

impl ElfCheck {
    pub fn new(arch: TargetArch, allow: &[ElfAllow]) -> Result<ElfCheck> {
        let mut compiled = Vec::new();
        for a in allow {
            let g = Glob::new(&a.glob).map_err(|e| {
                Error::invalid(format!("ELF allow-list glob {}", a.glob), e.to_string())
            })?;
            compiled.push((g, a.clone()));
        }
        Ok(ElfCheck {
            arch,
            allow: compiled,
            outcome: GuardOutcome::new("elf"),
        })
    }

    /// Judges one file from its first bytes (at least [`HEADER_LEN`] when
    /// the file is that long). Non-ELF files are ignored.
    pub fn observe(&mut self, path: &ImagePath, prefix: &[u8]) {
        let found = match elf::parse(prefix) {
            Ok(None) => return,
            Ok(Some(info)) => {
                self.outcome.checked += 1;
                let bad = info.mismatches(self.arch);
                if bad.is_empty() {
                    return;
                }
                format!("{}: {}", info.describe(), bad.join("; "))
            }
            Err(e) => {
                self.outcome.checked += 1;
                e
            }
        };
        // Globs match either form; the relative one costs no allocation
        // (most files are not ELF or are fine, and never get this far).
        if let Some((_, a)) = self.allow.iter().find(|(m, _)| m.matches(path.rel())) {
            self.outcome.allowed.push(Allowed {
                path: path.to_string(),
                found,
                reason: a.reason.clone(),
            });
        } else {
            self.outcome.offend(path.to_string(), found);
        }
    }

    pub fn finish(mut self) -> GuardOutcome {
        self.outcome.offenders.sort_by(|a, b| a.path.cmp(&b.path));
        self.outcome.allowed.sort_by(|a, b| a.path.cmp(&b.path));
        self.outcome
    }
}

/// Checks `paths` of a tree (regular files and hard links; the rest is
/// skipped).
pub fn check_tree(
    tree: &dyn ImageTree,
    paths: &[ImagePath],
    arch: TargetArch,
    allow: &[ElfAllow],
) -> Result<GuardOutcome> {
    let mut check = ElfCheck::new(arch, allow)?;
    for p in paths {
        let Some(node) = tree.node(p) else { continue };
        if !matches!(node.kind, FileKind::File | FileKind::HardLink) {
            continue;
        }
        if node.kind == FileKind::File && node.size < 4 {
            continue;
        }
        let prefix = tree.read_prefix(p, HEADER_LEN)?;
        check.observe(p, &prefix);
    }
    Ok(check.finish())
}

/// Feeds every regular file of an uncompressed layer tar to `check`, in
/// one sequential pass (hard links share the content of a file already
/// seen; whiteouts add nothing).
pub fn scan_tar(reader: impl Read, what: &str, check: &mut ElfCheck) -> Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| Error::io(what, e))?;
    let mut files = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::from_io(what, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path().map_err(|e| Error::io(what, e))?.into_owned();
        let name = crate::layer::path::entry_name(Path::new(&raw), false).map_err(|reason| {
            Error::UnsafePath {
                layer: what.to_string(),
                entry: raw.display().to_string(),
                reason,
            }
        })?;
        // A whiteout or opaque marker is no file, whatever its tar type.
        let crate::layer::path::EntryName::Regular(rel) = name else {
            continue;
        };
        let path = ImagePath::from_normalized(rel);
        let mut buf = Vec::with_capacity(HEADER_LEN);
        (&mut entry)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io(what, e))?;
        files += 1;
        check.observe(&path, &buf);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::header;
    use crate::tree::MemTree;

    fn allow(glob: &str) -> ElfAllow {
        ElfAllow {
            glob: glob.into(),
            reason: "host SDK".into(),
        }
    }

    fn payload() -> MemTree {
        let mut t = MemTree::new("payload");
        t.add_file("/opt/a/bin/tool", &header(64, true, 243, 5))
            .add_file("/opt/a/lib/libx.so", &header(64, true, 62, 0))
            .add_file("/opt/a/lib/liby.so", &header(64, true, 183, 0))
            .add_file(
                "/opt/vulkan/1.4/x86_64/bin/vulkaninfo",
                &header(64, true, 62, 0),
            )
            .add_file("/opt/a/README", b"hello")
            .add_file("/opt/a/tiny", b"")
            .add_file("/opt/a/broken", b"\x7fELF\x02\x01\x01")
            .add_hardlink("/opt/a/bin/tool2", "/opt/a/lib/libx.so")
            .add_symlink("/opt/a/link", "lib/libx.so");
        t
    }

    #[test]
    fn reports_every_offender_and_honours_the_allow_list() {
        let t = payload();
        let out = check_tree(
            &t,
            &t.paths(),
            TargetArch::Riscv64,
            &[allow("/opt/vulkan/*/x86_64/**")],
        )
        .unwrap();
        let paths: Vec<&str> = out.offenders.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/opt/a/bin/tool2",
                "/opt/a/broken",
                "/opt/a/lib/libx.so",
                "/opt/a/lib/liby.so"
            ]
        );
        assert!(out.offenders[2]
            .found
            .starts_with("x86-64 (EM_X86_64=62), ELF64 LE"));
        assert_eq!(out.allowed.len(), 1);
        assert_eq!(out.allowed[0].reason, "host SDK");
        assert_eq!(out.checked, 6);
    }

    #[test]
    fn only_added_paths_are_judged() {
        let t = payload();
        let out = check_tree(&t, &["/opt/a/bin/tool".into()], TargetArch::Riscv64, &[]).unwrap();
        assert!(out.passed());
        assert_eq!(out.checked, 1);
    }

    #[test]
    fn scans_a_tar_stream() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("opt/x/good", header(64, true, 183, 0)),
            ("./opt/x/bad", header(64, true, 62, 0)),
            ("opt/x/text", b"just text".to_vec()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let mut check = ElfCheck::new(TargetArch::Arm64, &[]).unwrap();
        let n = scan_tar(bytes.as_slice(), "layer", &mut check).unwrap();
        assert_eq!(n, 3);
        let out = check.finish();
        assert_eq!(out.offenders.len(), 1);
        assert_eq!(out.offenders[0].path, "/opt/x/bad");
        assert_eq!(out.checked, 2);
    }
}
