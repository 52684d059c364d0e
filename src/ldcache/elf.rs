//! What ldconfig reads from a library (elf/readlib.c `process_file`,
//! elf/readelflib.c and the per-arch sysdeps readelflib.c of glibc 2.37+):
//! ELF class, type, machine, flags, the first DT_SONAME (through
//! DT_STRTAB mapped by its PT_LOAD), and on x86 the ISA level of the
//! PT_GNU_PROPERTY note. Read from a forward-only stream with bounded
//! memory: the first [`KEEP`] bytes are kept, the program headers and the
//! dynamic segment are picked out wherever they are; a SONAME string
//! beyond the kept prefix and behind the dynamic segment needs a second
//! read ([`Scan::NeedsString`]).

use std::io::Read;

use crate::platform::TargetArch;

use super::format::{
    FLAG_AARCH64_LIB64, FLAG_ARM_LIBHF, FLAG_ARM_LIBSF, FLAG_ELF_LIBC6,
    FLAG_RISCV_FLOAT_ABI_DOUBLE, FLAG_RISCV_FLOAT_ABI_SOFT, FLAG_X8664_LIB64, FLAG_X8664_LIBX32,
};

/// Bytes of each file kept while streaming (the dynamic string table of
/// ordinary libraries is well inside it).
pub const KEEP: usize = 4 << 20;
/// Longest SONAME read.
const MAX_NAME: usize = 4096;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
const ET_DYN: u16 = 3;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;

/// What ldconfig concluded about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Not a library ldconfig lists (not ELF, not ET_DYN, no dynamic
    /// segment or string table, an ABI the target's ldconfig refuses).
    Skip,
    Library {
        flags: i32,
        soname: Option<String>,
        isa_level: u32,
    },
    /// The SONAME is at this file offset, outside what was kept.
    NeedsString {
        flags: i32,
        offset: u64,
        isa_level: u32,
    },
}

/// A forward-only reader that remembers the first [`KEEP`] bytes.
struct Forward<'r> {
    r: &'r mut dyn Read,
    pos: u64,
    kept: Vec<u8>,
    eof: bool,
}

impl Forward<'_> {
    /// Bytes `[off, off+len)`, or fewer at the end of the file; `None` when
    /// they lie behind the stream and outside the kept prefix.
    fn range(&mut self, off: u64, len: usize) -> Option<Vec<u8>> {
        let end = off.checked_add(len as u64)?;
        let kept = self.kept.len() as u64;
        if end <= kept {
            return Some(self.kept[off as usize..end as usize].to_vec());
        }
        let mut out = Vec::new();
        if off < self.pos {
            // Only what was kept can be served from behind the stream.
            if kept < self.pos {
                return None;
            }
            out.extend_from_slice(&self.kept[off as usize..]);
        }
        let mut buf = [0u8; 8192];
        while self.pos < end && !self.eof {
            let want = if self.pos < off {
                (off - self.pos).min(buf.len() as u64) as usize
            } else {
                (end - self.pos).min(buf.len() as u64) as usize
            };
            let n = match self.r.read(&mut buf[..want]) {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if (self.kept.len() as u64) == self.pos && self.kept.len() < KEEP {
                let room = KEEP - self.kept.len();
                self.kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            if self.pos >= off {
                out.extend_from_slice(chunk);
            }
            self.pos += n as u64;
        }
        Some(out)
    }
}

#[derive(Clone, Copy)]
struct Hdr {
    is64: bool,
}

impl Hdr {
    fn word(&self, b: &[u8], off: usize) -> Option<u64> {
        if self.is64 {
            Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
        } else {
            Some(u64::from(u32::from_le_bytes(
                b.get(off..off + 4)?.try_into().ok()?,
            )))
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The flags the target's ldconfig gives a file with this header, or
/// `None` when it refuses it (sysdeps/x86/readelflib.c,
/// sysdeps/unix/sysv/linux/arm/readelflib.c (aarch64 includes it),
/// sysdeps/unix/sysv/linux/riscv/readelflib.c).
fn arch_flags(arch: TargetArch, class: u8, machine: u16, e_flags: u32) -> Option<i32> {
    const EF_ARM_EABI_VER5: u32 = 0x0500_0000;
    const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
    const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
    const EF_RISCV_RVC: u32 = 0x1;
    const EF_RISCV_FLOAT_ABI: u32 = 0x6;
    match arch {
        TargetArch::Amd64 => match (machine, class) {
            (EM_X86_64, 2) => Some(FLAG_X8664_LIB64 | FLAG_ELF_LIBC6),
            (EM_X86_64, _) => Some(FLAG_X8664_LIBX32 | FLAG_ELF_LIBC6),
            (EM_386, 1) => Some(FLAG_ELF_LIBC6),
            _ => None,
        },
        // No machine check: any 64-bit ELF is taken for AArch64.
        TargetArch::Arm64 => match class {
            1 if e_flags & 0xff00_0000 == EF_ARM_EABI_VER5 => {
                if e_flags & EF_ARM_ABI_FLOAT_HARD != 0 {
                    Some(FLAG_ARM_LIBHF | FLAG_ELF_LIBC6)
                } else if e_flags & EF_ARM_ABI_FLOAT_SOFT != 0 {
                    Some(FLAG_ARM_LIBSF | FLAG_ELF_LIBC6)
                } else {
                    Some(FLAG_ELF_LIBC6)
                }
            }
            1 => Some(FLAG_ELF_LIBC6),
            _ => Some(FLAG_AARCH64_LIB64 | FLAG_ELF_LIBC6),
        },
        TargetArch::Riscv64 => {
            let abi = match e_flags & EF_RISCV_FLOAT_ABI {
                0 => FLAG_RISCV_FLOAT_ABI_SOFT,
                4 => FLAG_RISCV_FLOAT_ABI_DOUBLE,
                _ => return None,
            };
            if e_flags & !(EF_RISCV_FLOAT_ABI | EF_RISCV_RVC) != 0 {
                return None;
            }
            Some(FLAG_ELF_LIBC6 | abi)
        }
    }
}

/// Reads one file as the target's ldconfig does.
pub fn scan(arch: TargetArch, r: &mut dyn Read) -> Scan {
    let mut f = Forward {
        r,
        pos: 0,
        kept: Vec::new(),
        eof: false,
    };
    scan_inner(arch, &mut f).unwrap_or(Scan::Skip)
}

fn scan_inner(arch: TargetArch, f: &mut Forward<'_>) -> Option<Scan> {
    let eh = f.range(0, 64)?;
    // readlib.c: shorter than an ELF header (or a.out exec header): skipped.
    if eh.len() < 52 || &eh[..4] != b"\x7fELF" || eh[5] != 1 {
        return None;
    }
    let class = eh[4];
    let hdr = match class {
        1 => Hdr { is64: false },
        2 => Hdr { is64: true },
        _ => return None,
    };
    if hdr.is64 && eh.len() < 64 {
        return None;
    }
    let e_type = u16_at(&eh, 16)?;
    let machine = u16_at(&eh, 18)?;
    if e_type != ET_DYN {
        return None;
    }
    let (phoff, e_flags, phentsize, phnum) = if hdr.is64 {
        (
            hdr.word(&eh, 32)?,
            u32_at(&eh, 48)?,
            u16_at(&eh, 54)?,
            u16_at(&eh, 56)?,
        )
    } else {
        (
            hdr.word(&eh, 28)?,
            u32_at(&eh, 36)?,
            u16_at(&eh, 42)?,
            u16_at(&eh, 44)?,
        )
    };
    let flags = arch_flags(arch, class, machine, e_flags)?;
    let entsize = if hdr.is64 { 56 } else { 32 };
    let _ = phentsize; // readelflib.c steps by sizeof (ElfW(Phdr)).
    let ph = f.range(phoff, entsize * phnum as usize)?;
    if ph.len() < entsize * phnum as usize {
        return None;
    }
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut property = None;
    for i in 0..phnum as usize {
        let p = &ph[i * entsize..(i + 1) * entsize];
        let p_type = u32_at(p, 0)?;
        let (off, vaddr, filesz, align) = if hdr.is64 {
            (
                hdr.word(p, 8)?,
                hdr.word(p, 16)?,
                hdr.word(p, 32)?,
                hdr.word(p, 48)?,
            )
        } else {
            (
                hdr.word(p, 4)?,
                hdr.word(p, 8)?,
                hdr.word(p, 16)?,
                hdr.word(p, 28)?,
            )
        };
        match p_type {
            PT_LOAD => loads.push((vaddr, off, filesz)),
            // The last one wins, as in readelflib.c.
            PT_DYNAMIC => dynamic = Some((off, filesz)),
            PT_GNU_PROPERTY if align == if hdr.is64 { 8 } else { 4 } => {
                property = Some((off, filesz))
            }
            _ => {}
        }
    }
    // Read in file order so one forward pass serves both.
    let mut isa_level = 0;
    let mut dyn_bytes = None;
    let mut wanted: Vec<(u64, bool)> = Vec::new();
    if let Some((off, _)) = property {
        wanted.push((off, true));
    }
    if let Some((off, _)) = dynamic {
        wanted.push((off, false));
    }
    wanted.sort();
    for (off, is_prop) in wanted {
        if is_prop {
            let size = property.map(|p| p.1).unwrap_or(0).min(1 << 16) as usize;
            if let Some(b) = f.range(off, size) {
                if matches!(arch, TargetArch::Amd64) && machine == EM_X86_64 {
                    isa_level = x86_isa_level(&b, hdr.is64);
                }
            }
        } else {
            let size = dynamic.map(|d| d.1).unwrap_or(0);
            if size == 0 {
                return None;
            }
            // Walked to DT_NULL, not to p_filesz; bounded anyway.
            dyn_bytes = Some(f.range(off, (size as usize).clamp(16, 1 << 20))?);
        }
    }
    let dyn_bytes = dyn_bytes?;
    let step = if hdr.is64 { 16 } else { 8 };
    let half = step / 2;
    let mut strtab = None;
    let mut soname_val = None;
    for d in dyn_bytes.chunks_exact(step) {
        let tag = hdr.word(d, 0)?;
        let val = hdr.word(d, half)?;
        if tag == DT_NULL {
            break;
        }
        if tag == DT_STRTAB && strtab.is_none() {
            // The PT_LOAD holding the address maps it to a file offset.
            let loadoff = loads
                .iter()
                .find(|(vaddr, _, filesz)| val >= *vaddr && val - vaddr < *filesz)
                .map(|(vaddr, off, _)| vaddr.wrapping_sub(*off))
                .unwrap_or(0);
            strtab = Some(val.wrapping_sub(loadoff));
        }
        if tag == DT_SONAME && soname_val.is_none() {
            soname_val = Some(val);
        }
    }
    let strtab = strtab?;
    let Some(sv) = soname_val else {
        return Some(Scan::Library {
            flags,
            soname: None,
            isa_level,
        });
    };
    let offset = strtab.checked_add(sv)?;
    match f.range(offset, MAX_NAME) {
        Some(b) => Some(Scan::Library {
            flags,
            soname: Some(cstr(&b)?),
            isa_level,
        }),
        None => Some(Scan::NeedsString {
            flags,
            offset,
            isa_level,
        }),
    }
}

/// The NUL-terminated string at the start of `b`.
pub fn cstr(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&b[..end]).into_owned())
}

/// Reads the NUL-terminated string at `offset` of a stream (the second
/// read of [`Scan::NeedsString`]).
pub fn string_at(r: &mut dyn Read, offset: u64) -> Option<String> {
    let mut skip = r.take(offset);
    let skipped = std::io::copy(&mut skip, &mut std::io::sink()).ok()?;
    if skipped != offset {
        return None;
    }
    let mut buf = Vec::new();
    r.take(MAX_NAME as u64).read_to_end(&mut buf).ok()?;
    cstr(&buf)
}

/// GNU_PROPERTY_X86_ISA_1_NEEDED of the first NT_GNU_PROPERTY_TYPE_0
/// note: the index of its highest bit (elf-read-prop.h).
fn x86_isa_level(b: &[u8], is64: bool) -> u32 {
    let align = if is64 { 8 } else { 4 };
    let mut pos = 0usize;
    while pos + 12 < b.len() {
        let (Some(namesz), Some(descsz), Some(ntype)) =
            (u32_at(b, pos), u32_at(b, pos + 4), u32_at(b, pos + 8))
        else {
            return 0;
        };
        let name_end = pos + 12 + namesz as usize;
        let desc = (pos + 12 + (namesz as usize).next_multiple_of(align)).min(b.len());
        if namesz == 4
            && ntype == NT_GNU_PROPERTY_TYPE_0
            && b.get(pos + 12..name_end) == Some(b"GNU\0")
        {
            if descsz < 8 || !(descsz as usize).is_multiple_of(align) {
                return 0;
            }
            let end = (desc + descsz as usize).min(b.len());
            let mut p = desc;
            let mut last = 0;
            while end.saturating_sub(p) >= 8 {
                let (Some(t), Some(sz)) = (u32_at(b, p), u32_at(b, p + 4)) else {
                    return 0;
                };
                if t < last || t > GNU_PROPERTY_X86_ISA_1_NEEDED {
                    return 0;
                }
                p += 8;
                if p + sz as usize > end {
                    return 0;
                }
                if t == GNU_PROPERTY_X86_ISA_1_NEEDED {
                    return match (sz, u32_at(b, p)) {
                        (4, Some(v)) if v != 0 => 31 - v.leading_zeros(),
                        _ => 0,
                    };
                }
                last = t;
                p += (sz as usize).next_multiple_of(align);
            }
            return 0;
        }
        pos = desc + (descsz as usize).next_multiple_of(align);
    }
    0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal 64-bit ET_DYN: one PT_LOAD at 0, PT_DYNAMIC after the
    /// string table.
    pub fn tiny_lib(machine: u16, e_flags: u32, soname: Option<&str>) -> Vec<u8> {
        padded_lib(machine, e_flags, soname, 0)
    }

    /// The same with `pad` zero bytes before the string table.
    pub fn padded_lib(machine: u16, e_flags: u32, soname: Option<&str>, pad: u64) -> Vec<u8> {
        let mut strtab = b"\0".to_vec();
        let so_off = strtab.len() as u64;
        if let Some(s) = soname {
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        let phoff = 64u64;
        let strtab_off = phoff + 2 * 56 + pad;
        let dyn_off = (strtab_off + strtab.len() as u64).next_multiple_of(8);
        let mut dynamic = Vec::new();
        for (t, v) in [(DT_STRTAB, strtab_off + 0x1000)]
            .into_iter()
            .chain(soname.map(|_| (DT_SONAME, so_off)))
            .chain([(DT_NULL, 0)])
        {
            dynamic.extend_from_slice(&t.to_le_bytes());
            dynamic.extend_from_slice(&v.to_le_bytes());
        }
        let total = dyn_off + dynamic.len() as u64;
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&phoff.to_le_bytes());
        b[48..52].copy_from_slice(&e_flags.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |t: u32, off: u64, vaddr: u64, size: u64, align: u64| {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            p[48..56].copy_from_slice(&align.to_le_bytes());
            p
        };
        b.extend(ph(PT_LOAD, 0, 0x1000, total, 0x1000));
        b.extend(ph(
            PT_DYNAMIC,
            dyn_off,
            0x1000 + dyn_off,
            dynamic.len() as u64,
            8,
        ));
        b.resize(strtab_off as usize, 0);
        b.extend_from_slice(&strtab);
        b.resize(dyn_off as usize, 0);
        b.extend(dynamic);
        b
    }

    #[test]
    fn reads_soname_and_flags_per_target() {
        let lib = tiny_lib(EM_X86_64, 0, Some("libfoo.so.1"));
        assert_eq!(
            scan(TargetArch::Amd64, &mut lib.as_slice()),
            Scan::Library {
                flags: 0x303,
                soname: Some("libfoo.so.1".into()),
                isa_level: 0
            }
        );
        // aarch64's ldconfig takes any 64-bit ELF for AArch64.
        assert!(matches!(
            scan(TargetArch::Arm64, &mut lib.as_slice()),
            Scan::Library { flags: 0xa03, .. }
        ));
        // riscv64: the float ABI of e_flags (0 = soft) decides.
        assert!(matches!(
            scan(TargetArch::Riscv64, &mut lib.as_slice()),
            Scan::Library { flags: 0x0f03, .. }
        ));
        let rv = tiny_lib(243, 0x5, None);
        assert_eq!(
            scan(TargetArch::Riscv64, &mut rv.as_slice()),
            Scan::Library {
                flags: 0x1003,
                soname: None,
                isa_level: 0
            }
        );
        // Single-float ABI, or RVE: refused.
        assert_eq!(
            scan(
                TargetArch::Riscv64,
                &mut tiny_lib(243, 0x3, None).as_slice()
            ),
            Scan::Skip
        );
        // x86-64's ldconfig refuses an AArch64 file.
        assert_eq!(
            scan(TargetArch::Amd64, &mut tiny_lib(183, 0, None).as_slice()),
            Scan::Skip
        );
        assert_eq!(
            scan(TargetArch::Amd64, &mut &b"GROUP ( libc.so.6 )"[..]),
            Scan::Skip
        );
    }

    #[test]
    fn a_soname_behind_the_kept_prefix_asks_for_a_second_read() {
        // The string table starts past what is kept, the dynamic segment
        // after it: the name was streamed past before it was known.
        let pad = KEEP as u64 + 100;
        let lib = padded_lib(EM_X86_64, 0, Some("libbar.so.2"), pad);
        let Scan::NeedsString { flags, offset, .. } = scan(TargetArch::Amd64, &mut lib.as_slice())
        else {
            panic!("expected a second read");
        };
        assert_eq!(flags, 0x303);
        assert_eq!(offset, 64 + 112 + pad + 1);
        assert_eq!(
            string_at(&mut lib.as_slice(), offset).unwrap(),
            "libbar.so.2"
        );
    }
}
