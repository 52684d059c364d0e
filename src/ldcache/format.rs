//! The `glibc-ld.so.cache1.1` file format, as glibc's `ldconfig` writes it
//! by default since 2.32 (`--format=new`): elf/cache.c `save_cache`,
//! sysdeps/generic/dl-cache.h, elf/stringtable.c. Little-endian only (the
//! three targets are).
//!
//! Layout: a 48-byte header (`glibc-ld.so.cache` `1.1`, nlibs,
//! len_strings, flags = 2 for little-endian, extension_offset), `nlibs`
//! 24-byte entries (flags, key, value, osversion = 0, hwcap), the string
//! table (offsets in entries count from the start of the file), then,
//! 4-aligned, the extension directory: magic, count, sections (the
//! generator string; the glibc-hwcaps subdirectory names when used).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{Error, Result};

pub const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 24;
const EXTENSION_MAGIC: u32 = (-358342284i32) as u32;
const TAG_GENERATOR: u32 = 0;
const TAG_GLIBC_HWCAPS: u32 = 1;
/// `cache_file_new_flags_endian_little`.
const FLAGS_LITTLE: u8 = 2;
/// `DL_CACHE_HWCAP_EXTENSION`: the low 32 bits index the hwcaps section.
pub const HWCAP_EXTENSION: u64 = 1 << 62;
const ISA_LEVEL_MASK: u32 = (1 << 10) - 1;

/// `FLAG_ELF_LIBC6` and the arch bits of sysdeps/generic/ldconfig.h.
pub const FLAG_ELF_LIBC6: i32 = 0x0003;
pub const FLAG_X8664_LIB64: i32 = 0x0300;
pub const FLAG_X8664_LIBX32: i32 = 0x0800;
pub const FLAG_ARM_LIBHF: i32 = 0x0900;
pub const FLAG_AARCH64_LIB64: i32 = 0x0a00;
pub const FLAG_ARM_LIBSF: i32 = 0x0b00;
pub const FLAG_RISCV_FLOAT_ABI_SOFT: i32 = 0x0f00;
pub const FLAG_RISCV_FLOAT_ABI_DOUBLE: i32 = 0x1000;

/// One library of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name looked up (the SONAME, or the link/file name).
    pub soname: String,
    /// Where it is: `DIR/SONAME`, or the file itself in a glibc-hwcaps
    /// subdirectory.
    pub path: String,
    pub flags: i32,
    /// The glibc-hwcaps subdirectory (`x86-64-v3`...), if any.
    pub hwcaps: Option<String>,
    /// x86 ISA level (GNU_PROPERTY_X86_ISA_1_NEEDED), stored for
    /// glibc-hwcaps entries only.
    pub isa_level: u32,
}

/// `_dl_cache_libcmp` (elf/dl-cache.c): digit runs compare as numbers and
/// sort before non-digits.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (p1, p2) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let at = |p: &[u8], k: usize| p.get(k).copied().unwrap_or(0);
    while at(p1, i) != 0 {
        let (c1, c2) = (at(p1, i), at(p2, j));
        if c1.is_ascii_digit() {
            if c2.is_ascii_digit() {
                // glibc accumulates in an int; wrapping matches it for the
                // absurdly long digit runs where that matters.
                let mut v1: i32 = 0;
                while at(p1, i).is_ascii_digit() {
                    v1 = v1
                        .wrapping_mul(10)
                        .wrapping_add(i32::from(at(p1, i) - b'0'));
                    i += 1;
                }
                let mut v2: i32 = 0;
                while at(p2, j).is_ascii_digit() {
                    v2 = v2
                        .wrapping_mul(10)
                        .wrapping_add(i32::from(at(p2, j) - b'0'));
                    j += 1;
                }
                if v1 != v2 {
                    return v1.cmp(&v2);
                }
            } else {
                return Ordering::Greater;
            }
        } else if c2.is_ascii_digit() {
            return Ordering::Less;
        } else if c1 != c2 {
            return c1.cmp(&c2);
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(&at(p2, j))
}

/// cache.c `compare`: descending by name (so ld.so's binary search works
/// on "newest first"), then descending flags, glibc-hwcaps entries first
/// (by subdirectory name).
fn compare(e1: &Entry, e2: &Entry) -> Ordering {
    let res = libcmp(&e2.soname, &e1.soname);
    if res != Ordering::Equal {
        return res;
    }
    match e2.flags.cmp(&e1.flags) {
        Ordering::Equal => {}
        o => return o,
    }
    match (&e1.hwcaps, &e2.hwcaps) {
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
        (None, None) => Ordering::Equal,
    }
}

/// Sorts entries as `add_to_cache` inserts them: a stable sort, so equal
/// entries (one SONAME in two directories) keep the directory order.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(compare);
}

/// elf/stringtable.c: strings deduplicated, sorted by their reversed
/// bytes (longer first on a common suffix) so that a string that is the
/// tail of the one before shares its bytes.
struct StringTable {
    offsets: BTreeMap<String, u32>,
    bytes: Vec<u8>,
}

impl StringTable {
    fn new<'a>(strings: impl IntoIterator<Item = &'a str>) -> Result<StringTable> {
        let mut all: Vec<&str> = strings.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        all.sort_by(|l, r| finalize_compare(l.as_bytes(), r.as_bytes()));
        let mut offsets = BTreeMap::new();
        let mut bytes = Vec::new();
        let mut prev: Option<(&str, u32)> = None;
        for s in all {
            let off = match prev {
                Some((p, poff)) if p.len() >= s.len() && p.as_bytes().ends_with(s.as_bytes()) => {
                    poff + (p.len() - s.len()) as u32
                }
                _ => {
                    let off = u32::try_from(bytes.len())
                        .map_err(|_| Error::invalid("ld.so.cache", "string table too large"))?;
                    bytes.extend_from_slice(s.as_bytes());
                    bytes.push(0);
                    off
                }
            };
            offsets.insert(s.to_string(), off);
            prev = Some((s, off));
        }
        Ok(StringTable { offsets, bytes })
    }

    fn offset(&self, s: &str) -> u32 {
        self.offsets.get(s).copied().unwrap_or(0)
    }
}

/// `finalize_compare`: reverse lexicographic on the reversed strings.
fn finalize_compare(l: &[u8], r: &[u8]) -> Ordering {
    for (lc, rc) in l.iter().rev().zip(r.iter().rev()) {
        if lc != rc {
            return rc.cmp(lc);
        }
    }
    r.len().cmp(&l.len())
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The cache file's bytes. `entries` must be sorted ([`sort`]);
/// `hwcaps_names` are every glibc-hwcaps subdirectory seen (ldconfig
/// interns them all in the string table, used or not); `generator` is the
/// generator extension's text (ldconfig writes `ldconfig (PKGVERSION)
/// release version X.Y`).
pub fn write(entries: &[Entry], hwcaps_names: &[String], generator: &str) -> Result<Vec<u8>> {
    let too_large = || Error::invalid("ld.so.cache", "more than 4 GiB");
    // The hwcaps subdirectories actually used, sorted: their section index.
    let mut used: Vec<&str> = entries.iter().filter_map(|e| e.hwcaps.as_deref()).collect();
    used.sort_unstable();
    used.dedup();
    let strings = StringTable::new(
        entries
            .iter()
            .flat_map(|e| [e.soname.as_str(), e.path.as_str()])
            .chain(hwcaps_names.iter().map(String::as_str))
            .chain(used.iter().copied()),
    )?;
    let str_offset = HEADER_LEN + entries.len() * ENTRY_LEN;
    let str_offset32 = u32::try_from(str_offset).map_err(|_| too_large())?;
    let extension_offset = (str_offset + strings.bytes.len()).next_multiple_of(4);
    let mut out = Vec::with_capacity(extension_offset + 64 + generator.len());
    out.extend_from_slice(MAGIC);
    put_u32(
        &mut out,
        u32::try_from(entries.len()).map_err(|_| too_large())?,
    );
    put_u32(
        &mut out,
        u32::try_from(strings.bytes.len()).map_err(|_| too_large())?,
    );
    out.push(FLAGS_LITTLE);
    out.extend_from_slice(&[0; 3]);
    put_u32(
        &mut out,
        u32::try_from(extension_offset).map_err(|_| too_large())?,
    );
    out.extend_from_slice(&[0; 12]);
    for e in entries {
        out.extend_from_slice(&e.flags.to_le_bytes());
        put_u32(&mut out, str_offset32 + strings.offset(&e.soname));
        put_u32(&mut out, str_offset32 + strings.offset(&e.path));
        put_u32(&mut out, 0);
        let hwcap = match &e.hwcaps {
            None => 0,
            Some(name) => {
                if e.isa_level > ISA_LEVEL_MASK {
                    return Err(Error::invalid(
                        &e.path,
                        format!("ISA level is too high ({} > {ISA_LEVEL_MASK})", e.isa_level),
                    ));
                }
                let index = used.iter().position(|u| u == name).unwrap_or(0) as u64;
                HWCAP_EXTENSION | (u64::from(e.isa_level) << 32) | index
            }
        };
        out.extend_from_slice(&hwcap.to_le_bytes());
    }
    out.extend_from_slice(&strings.bytes);
    out.resize(extension_offset, 0);
    // The extension directory, then the hwcaps array, then the generator.
    let sections = if used.is_empty() { 1 } else { 2 };
    let dir_len = 8 + 16 * sections;
    let hwcaps_offset = extension_offset + dir_len;
    let generator_offset = hwcaps_offset + 4 * used.len();
    let u = |v: usize| u32::try_from(v).map_err(|_| too_large());
    put_u32(&mut out, EXTENSION_MAGIC);
    put_u32(&mut out, sections as u32);
    for v in [TAG_GENERATOR, 0, u(generator_offset)?, u(generator.len())?] {
        put_u32(&mut out, v);
    }
    if !used.is_empty() {
        for v in [TAG_GLIBC_HWCAPS, 0, u(hwcaps_offset)?, u(4 * used.len())?] {
            put_u32(&mut out, v);
        }
        for name in &used {
            put_u32(&mut out, str_offset32 + strings.offset(name));
        }
    }
    out.extend_from_slice(generator.as_bytes());
    Ok(out)
}

/// A cache file read back (tests, and "is the image's cache already
/// this one?").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// In file order: (flags, soname, path, hwcap).
    pub entries: Vec<(i32, String, String, u64)>,
    /// The glibc-hwcaps section's names, by index.
    pub hwcaps: Vec<String>,
    pub generator: Option<String>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn str_at(b: &[u8], off: usize) -> Option<String> {
    let rest = b.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Reads a `glibc-ld.so.cache1.1` file (not the old `ld.so-1.7.0`
/// format nor the compat one that nests the new format in it).
pub fn parse(b: &[u8]) -> Result<Parsed> {
    let bad = |why: &str| Error::invalid("ld.so.cache", why.to_string());
    if !b.starts_with(MAGIC) {
        return Err(bad("not a glibc-ld.so.cache1.1 file"));
    }
    let nlibs = u32_at(b, 20).ok_or_else(|| bad("truncated header"))? as usize;
    let ext = u32_at(b, 32).ok_or_else(|| bad("truncated header"))? as usize;
    let mut entries = Vec::new();
    for i in 0..nlibs {
        let o = HEADER_LEN + i * ENTRY_LEN;
        let e = b
            .get(o..o + ENTRY_LEN)
            .ok_or_else(|| bad("truncated entries"))?;
        let flags = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let key = u32_at(e, 4).unwrap_or(0) as usize;
        let value = u32_at(e, 8).unwrap_or(0) as usize;
        let hwcap = u64::from_le_bytes(e[16..24].try_into().map_err(|_| bad("entry"))?);
        entries.push((
            flags,
            str_at(b, key).ok_or_else(|| bad("key outside the file"))?,
            str_at(b, value).ok_or_else(|| bad("value outside the file"))?,
            hwcap,
        ));
    }
    let mut hwcaps = Vec::new();
    let mut generator = None;
    if ext != 0 && u32_at(b, ext) == Some(EXTENSION_MAGIC) {
        let count = u32_at(b, ext + 4).ok_or_else(|| bad("extension"))? as usize;
        for s in 0..count {
            let d = ext + 8 + 16 * s;
            let (tag, off, size) = (
                u32_at(b, d).ok_or_else(|| bad("extension"))?,
                u32_at(b, d + 8).ok_or_else(|| bad("extension"))? as usize,
                u32_at(b, d + 12).ok_or_else(|| bad("extension"))? as usize,
            );
            let data = b
                .get(off..off + size)
                .ok_or_else(|| bad("extension data"))?;
            match tag {
                TAG_GENERATOR => generator = Some(String::from_utf8_lossy(data).into_owned()),
                TAG_GLIBC_HWCAPS => {
                    for c in data.chunks_exact(4) {
                        let i = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
                        hwcaps.push(str_at(b, i).ok_or_else(|| bad("hwcaps name"))?);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Parsed {
        entries,
        hwcaps,
        generator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(soname: &str, path: &str, flags: i32) -> Entry {
        Entry {
            soname: soname.into(),
            path: path.into(),
            flags,
            hwcaps: None,
            isa_level: 0,
        }
    }

    #[test]
    fn libcmp_compares_digit_runs_as_numbers() {
        assert_eq!(libcmp("libfoo.so.10", "libfoo.so.9"), Ordering::Greater);
        assert_eq!(
            libcmp("libfoo.so.1.2.3", "libfoo.so.1.2"),
            Ordering::Greater
        );
        assert_eq!(libcmp("libfoo.so.01", "libfoo.so.1"), Ordering::Equal);
        // A digit sorts after any other character.
        assert_eq!(libcmp("lib2", "liba"), Ordering::Greater);
        assert_eq!(libcmp("liba", "lib2"), Ordering::Less);
        assert_eq!(libcmp("libc.so.6", "libc.so.6"), Ordering::Equal);
    }

    #[test]
    fn entries_sort_newest_name_first_then_flags_then_hwcaps() {
        let mut v = vec![
            e("libz.so.1", "/a/libz.so.1", 0x303),
            e("libc.so.6", "/lib/libc.so.6", 0x303),
            e("libz.so.1", "/b/libz.so.1", 0x303),
            e("libz.so.1", "/c/libz.so.1", 0x003),
            Entry {
                hwcaps: Some("x86-64-v3".into()),
                ..e("libz.so.1", "/a/glibc-hwcaps/x86-64-v3/libz.so.1.3", 0x303)
            },
            e("libm.so.6", "/lib/libm.so.6", 0x303),
        ];
        sort(&mut v);
        let got: Vec<&str> = v.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            got,
            [
                "/a/glibc-hwcaps/x86-64-v3/libz.so.1.3",
                "/a/libz.so.1",
                "/b/libz.so.1",
                "/c/libz.so.1",
                "/lib/libm.so.6",
                "/lib/libc.so.6",
            ]
        );
    }

    #[test]
    fn string_table_merges_tails_as_glibc_does() {
        let t = StringTable::new(["/lib/libc.so.6", "libc.so.6", "libm.so.6", "/lib/libm.so.6"])
            .unwrap();
        // Sorted by reversed bytes, descending: "...m.so.6" before "...c.so.6";
        // each short name is the tail of its path.
        assert_eq!(t.bytes, b"/lib/libm.so.6\0/lib/libc.so.6\0");
        assert_eq!(t.offset("/lib/libm.so.6"), 0);
        assert_eq!(t.offset("libm.so.6"), 5);
        assert_eq!(t.offset("/lib/libc.so.6"), 15);
        assert_eq!(t.offset("libc.so.6"), 20);
    }

    #[test]
    fn writes_the_layout_ldconfig_writes() {
        let v = vec![e("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x303)];
        let b = write(&v, &[], "ldconfig test").unwrap();
        assert_eq!(&b[..20], MAGIC);
        assert_eq!(u32_at(&b, 20), Some(1)); // nlibs
        let strings = b"/lib/x86_64-linux-gnu/libc.so.6\0";
        assert_eq!(u32_at(&b, 24), Some(strings.len() as u32));
        assert_eq!(b[28], 2); // little-endian
        let ext = (48 + 24 + strings.len()).next_multiple_of(4);
        assert_eq!(u32_at(&b, 32), Some(ext as u32));
        // The entry: flags, key (tail of the path), value, 0, hwcap 0.
        assert_eq!(u32_at(&b, 48), Some(0x303));
        assert_eq!(u32_at(&b, 52), Some(72 + 22));
        assert_eq!(u32_at(&b, 56), Some(72));
        assert_eq!(&b[60..72], &[0; 12]);
        assert_eq!(&b[72..72 + strings.len()], strings);
        // Extension: magic, one section (generator) right after it.
        assert_eq!(u32_at(&b, ext), Some(EXTENSION_MAGIC));
        assert_eq!(u32_at(&b, ext + 4), Some(1));
        assert_eq!(u32_at(&b, ext + 8), Some(TAG_GENERATOR));
        assert_eq!(u32_at(&b, ext + 16), Some((ext + 24) as u32));
        assert_eq!(u32_at(&b, ext + 20), Some(13));
        assert_eq!(&b[ext + 24..], b"ldconfig test");
        assert_eq!(b.len(), ext + 24 + 13);
        let p = parse(&b).unwrap();
        assert_eq!(
            p.entries,
            [(
                0x303,
                "libc.so.6".to_string(),
                "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                0
            )]
        );
        assert_eq!(p.generator.as_deref(), Some("ldconfig test"));
    }

    #[test]
    fn glibc_hwcaps_entries_index_the_extension_section() {
        let mut v = vec![
            e("libz.so.1", "/usr/lib/libz.so.1", 0x303),
            Entry {
                hwcaps: Some("x86-64-v3".into()),
                isa_level: 3,
                ..e(
                    "libz.so.1",
                    "/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1.3",
                    0x303,
                )
            },
        ];
        sort(&mut v);
        let names = vec!["x86-64-v3".to_string(), "x86-64-v4".to_string()];
        let b = write(&v, &names, "g").unwrap();
        let p = parse(&b).unwrap();
        assert_eq!(p.hwcaps, ["x86-64-v3"]);
        assert_eq!(p.entries[0].3, HWCAP_EXTENSION | (3 << 32));
        assert_eq!(p.entries[1].3, 0);
        // An unused subdirectory's name is still in the string table.
        assert!(b.windows(10).any(|w| w == b"x86-64-v4\0"));
    }
}
