//! ELF identification from a header prefix, and the verdict against a
//! target arch.
//!
//! Only the first [`HEADER_LEN`] bytes of a file are needed: class,
//! endianness, `e_machine` and `e_flags` live there. Nothing else of the
//! file is read, so judging a 30 GB payload costs one small read per file.

use goblin::elf::header::{self, machine_to_str};

use crate::platform::TargetArch;

/// Bytes to read from a file to identify it (the ELF64 header size).
pub const HEADER_LEN: usize = 64;

/// `e_flags` float-ABI field of RISC-V and its double-float value.
pub const EF_RISCV_FLOAT_ABI: u32 = 0x0006;
pub const EF_RISCV_FLOAT_ABI_DOUBLE: u32 = 0x0004;

/// What an ELF header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ElfInfo {
    pub machine: u16,
    /// 32 or 64.
    pub class: u8,
    pub little_endian: bool,
    pub flags: u32,
    /// `e_type` (ET_EXEC, ET_DYN, ET_REL...).
    pub kind: u16,
}

/// Whether `prefix` starts like an ELF file.
pub fn is_elf(prefix: &[u8]) -> bool {
    prefix.starts_with(header::ELFMAG)
}

/// Parses the header at the start of `prefix`. `Ok(None)`: not an ELF file;
/// `Err`: ELF magic but an unreadable header (reported, never ignored: a
/// file that claims to be ELF and hides its machine is suspicious).
pub fn parse(prefix: &[u8]) -> Result<Option<ElfInfo>, String> {
    if !is_elf(prefix) {
        return Ok(None);
    }
    let class = match prefix.get(header::EI_CLASS) {
        Some(&header::ELFCLASS32) => 32,
        Some(&header::ELFCLASS64) => 64,
        other => return Err(format!("ELF with invalid class {other:?}")),
    };
    let needed = if class == 64 { 64 } else { 52 };
    if prefix.len() < needed {
        return Err(format!(
            "truncated ELF header ({} of {needed} bytes)",
            prefix.len()
        ));
    }
    let h = goblin::elf::Elf::parse_header(prefix)
        .map_err(|e| format!("unreadable ELF header: {e}"))?;
    let little_endian = match h.e_ident[header::EI_DATA] {
        header::ELFDATA2LSB => true,
        header::ELFDATA2MSB => false,
        other => return Err(format!("ELF with invalid data encoding {other}")),
    };
    Ok(Some(ElfInfo {
        machine: h.e_machine,
        class,
        little_endian,
        flags: h.e_flags,
        kind: h.e_type,
    }))
}

impl ElfInfo {
    /// E.g. `x86-64 (EM_X86_64=62), ELF64 LE` or
    /// `RISC-V (EM_RISCV=243), ELF64 LE, float ABI soft`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} ({}={}), ELF{} {}",
            machine_name(self.machine),
            em_constant(self.machine),
            self.machine,
            self.class,
            if self.little_endian { "LE" } else { "BE" }
        );
        if self.machine == header::EM_RISCV {
            s.push_str(", float ABI ");
            s.push_str(riscv_float_abi(self.flags));
        }
        s
    }

    /// What is wrong with this file for `arch`; empty when it matches.
    pub fn mismatches(&self, arch: TargetArch) -> Vec<String> {
        let mut out = Vec::new();
        if self.machine != arch.elf_machine() {
            out.push(format!(
                "machine {} where {} needs {} ({}={})",
                machine_name(self.machine),
                arch,
                machine_name(arch.elf_machine()),
                em_constant(arch.elf_machine()),
                arch.elf_machine()
            ));
        }
        if self.class != 64 {
            out.push(format!("ELF{} where {arch} needs ELF64", self.class));
        }
        if !self.little_endian {
            out.push(format!("big-endian where {arch} is little-endian"));
        }
        if arch == TargetArch::Riscv64
            && self.machine == header::EM_RISCV
            && self.flags & EF_RISCV_FLOAT_ABI != EF_RISCV_FLOAT_ABI_DOUBLE
        {
            out.push(format!(
                "float ABI {} where riscv64 (lp64d) needs double",
                riscv_float_abi(self.flags)
            ));
        }
        out
    }

    pub fn matches(&self, arch: TargetArch) -> bool {
        self.mismatches(arch).is_empty()
    }
}

fn riscv_float_abi(flags: u32) -> &'static str {
    match flags & EF_RISCV_FLOAT_ABI {
        0x0 => "soft",
        0x2 => "single",
        0x4 => "double",
        _ => "quad",
    }
}

/// A readable machine name.
pub fn machine_name(m: u16) -> &'static str {
    match m {
        header::EM_X86_64 => "x86-64",
        header::EM_AARCH64 => "AArch64",
        header::EM_RISCV => "RISC-V",
        header::EM_386 => "Intel 80386",
        header::EM_ARM => "ARM",
        other => machine_to_str(other),
    }
}

fn em_constant(m: u16) -> String {
    match m {
        header::EM_X86_64 => "EM_X86_64".into(),
        header::EM_AARCH64 => "EM_AARCH64".into(),
        header::EM_RISCV => "EM_RISCV".into(),
        header::EM_386 => "EM_386".into(),
        header::EM_ARM => "EM_ARM".into(),
        other => format!("EM_{}", machine_to_str(other)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF header for tests.
    pub fn header(class: u8, little: bool, machine: u16, flags: u32) -> Vec<u8> {
        let mut h = vec![0u8; if class == 64 { 64 } else { 52 }];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if class == 64 { 2 } else { 1 };
        h[5] = if little { 1 } else { 2 };
        h[6] = 1;
        let put16 = |h: &mut Vec<u8>, off: usize, v: u16| {
            let b = if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            h[off..off + 2].copy_from_slice(&b);
        };
        put16(&mut h, 16, 3); // ET_DYN
        put16(&mut h, 18, machine);
        let flags_off = if class == 64 { 48 } else { 36 };
        let b = if little {
            flags.to_le_bytes()
        } else {
            flags.to_be_bytes()
        };
        h[flags_off..flags_off + 4].copy_from_slice(&b);
        let ehsize: u16 = if class == 64 { 64 } else { 52 };
        put16(&mut h, if class == 64 { 52 } else { 40 }, ehsize);
        h
    }

    #[test]
    fn describes_and_judges() {
        let x86 = parse(&header(64, true, 62, 0)).unwrap().unwrap();
        assert_eq!(x86.describe(), "x86-64 (EM_X86_64=62), ELF64 LE");
        assert!(x86.matches(TargetArch::Amd64));
        let m = x86.mismatches(TargetArch::Riscv64);
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("RISC-V (EM_RISCV=243)"), "{m:?}");

        let rv_soft = parse(&header(64, true, 243, 0x1)).unwrap().unwrap();
        assert!(rv_soft.describe().ends_with("float ABI soft"));
        let m = rv_soft.mismatches(TargetArch::Riscv64);
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("double"), "{m:?}");
        let rv_d = parse(&header(64, true, 243, 0x5)).unwrap().unwrap();
        assert!(rv_d.matches(TargetArch::Riscv64));

        let arm32 = parse(&header(32, true, 40, 0)).unwrap().unwrap();
        assert_eq!(arm32.class, 32);
        assert_eq!(arm32.mismatches(TargetArch::Arm64).len(), 2);
        let be = parse(&header(64, false, 183, 0)).unwrap().unwrap();
        assert!(!be.little_endian);
        let m = be.mismatches(TargetArch::Arm64);
        assert_eq!(m, ["big-endian where arm64 is little-endian"]);
    }

    #[test]
    fn non_elf_and_broken_headers() {
        assert_eq!(parse(b"#!/bin/sh\n").unwrap(), None);
        assert_eq!(parse(b"").unwrap(), None);
        assert!(parse(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
        let mut h = header(64, true, 62, 0);
        h[4] = 9;
        assert!(parse(&h).unwrap_err().contains("class"));
    }

    #[test]
    fn real_binaries_of_the_fixtures_toolchain() {
        // The cross compilers the fixtures were built with leave objects we
        // can judge; fall back to the host's own binary otherwise.
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let info = parse(&exe[..HEADER_LEN]).unwrap().unwrap();
        if let Some(host) = TargetArch::host() {
            assert!(info.matches(host), "{}", info.describe());
        }
    }
}
