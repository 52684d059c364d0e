//! The canonical tar form of a layer.
//!
//! Equal trees give equal bytes, whatever produced them (image layers, a
//! directory, generated files) and however the source was split:
//! - entries sorted by path component, parents first, every missing parent
//!   directory written as `0755 root:root` with the epoch (or 0) as mtime;
//! - POSIX ustar headers, no user/group names, no prefix field; a PAX
//!   header (sorted records) only for names or link targets over 100 bytes,
//!   sizes, ids or mtimes beyond the octal fields, and xattrs
//!   (`SCHILY.xattr.*`);
//! - directories end in `/`; hard links name the first path (in this
//!   order) of their inode; mtimes are clamped to `SOURCE_DATE_EPOCH`;
//! - the archive ends with two zero blocks, no record padding.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::entry::{ContentRef, FileKind, Meta};
use super::path::{sort_key, ImagePath};
use crate::error::{Error, Result};

const BLOCK: usize = 512;

/// Where an entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Bytes(Vec<u8>),
    Image(ContentRef),
    File(PathBuf),
}

/// One entry of a layer being written: its metadata (as the merged view
/// keeps it, owner and mode possibly changed by the selection) and where
/// its bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEntry {
    pub path: ImagePath,
    pub meta: Meta,
    pub body: Body,
    /// Entries with the same key are one inode: the first (in canonical
    /// order) is written as a file, the others as hard links to it.
    pub inode: Option<(u64, u64, u64)>,
}

/// Reads as its metadata, as [`super::merged::TreeEntry`] does.
impl std::ops::Deref for OutEntry {
    type Target = Meta;
    fn deref(&self) -> &Meta {
        &self.meta
    }
}

impl std::ops::DerefMut for OutEntry {
    fn deref_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }
}

impl OutEntry {
    /// A directory created because something below it was selected.
    pub fn parent_dir(path: ImagePath, epoch: Option<u64>) -> OutEntry {
        OutEntry {
            path,
            meta: Meta {
                kind: FileKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: epoch.unwrap_or(0),
                size: 0,
                link: None,
                xattrs: BTreeMap::new(),
                dev: None,
            },
            body: Body::None,
            inode: None,
        }
    }
}

/// Entries keyed by [`sort_key`] of their path.
pub type EntryMap = BTreeMap<Vec<u8>, OutEntry>;

/// Whether a file name is a whiteout or opaque marker in a layer
/// (`.wh.<name>`, `.wh..wh..opq`).
pub fn is_whiteout_name(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes()
        .starts_with(super::path::WHITEOUT_PREFIX.as_bytes())
}

/// Adds missing parents, clamps mtimes and turns repeated inodes into hard
/// links; returns the entries in canonical order.
///
/// No entry may be named like a whiteout: ocipack writes no whiteouts, and
/// a file that merely has such a name would delete lower layers' files.
pub fn canonicalize(mut map: EntryMap, epoch: Option<u64>) -> Result<Vec<OutEntry>> {
    for e in map.values() {
        if e.path.components().any(is_whiteout_name) {
            return Err(Error::invalid(
                e.path.to_string(),
                super::path::whiteout_name_reason(),
            ));
        }
    }
    let mut parents: EntryMap = BTreeMap::new();
    let mut last_parent: Option<PathBuf> = None;
    for e in map.values() {
        let Some(parent) = e.path.rel().parent() else {
            continue;
        };
        if last_parent.as_deref() == Some(parent) {
            continue;
        }
        last_parent = Some(parent.to_path_buf());
        let mut cur = PathBuf::new();
        for c in parent.components() {
            cur.push(c);
            let k = sort_key(&cur);
            match map.get(&k) {
                Some(p) if p.kind == FileKind::Dir => {}
                Some(p) => {
                    return Err(Error::invalid(
                        e.path.to_string(),
                        format!(
                            "its parent {} is selected as a {:?}, not a directory",
                            p.path, p.kind
                        ),
                    ))
                }
                None => {
                    parents.entry(k).or_insert_with(|| {
                        OutEntry::parent_dir(ImagePath::from_normalized(cur.clone()), epoch)
                    });
                }
            }
        }
    }
    map.append(&mut parents);
    let mut first_of: HashMap<(u64, u64, u64), PathBuf> = HashMap::new();
    let mut out = Vec::with_capacity(map.len());
    for (_, mut e) in map {
        if let Some(t) = epoch {
            e.mtime = e.mtime.min(t);
        }
        if e.kind == FileKind::File {
            if let Some(ino) = e.inode {
                if let Some(first) = first_of.get(&ino) {
                    e.kind = FileKind::HardLink;
                    e.link = Some(first.clone());
                    e.size = 0;
                    e.body = Body::None;
                } else {
                    first_of.insert(ino, e.path.rel().to_path_buf());
                }
            }
        }
        if e.kind != FileKind::File {
            e.size = 0;
        }
        out.push(e);
    }
    Ok(out)
}

/// Writes canonical tar headers and padding around caller-written bodies.
pub struct TarWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
}

const OCTAL7: u64 = 0o7777777;
const OCTAL11: u64 = 0o77777777777;

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        TarWriter {
            w,
            buf: Vec::with_capacity(4 * BLOCK),
        }
    }

    /// The stream, for writing an entry's body (exactly `size` bytes).
    pub fn inner(&mut self) -> &mut W {
        &mut self.w
    }

    /// Writes an entry's header (and PAX header when needed).
    pub fn header(&mut self, e: &OutEntry) -> io::Result<()> {
        self.buf.clear();
        encode_header(e, &mut self.buf);
        self.w.write_all(&self.buf)
    }

    /// Pads a body of `size` bytes to the block size.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes a whole entry whose body is in memory (or empty).
    pub fn entry(&mut self, e: &OutEntry, body: &[u8]) -> io::Result<()> {
        self.header(e)?;
        self.w.write_all(body)?;
        self.pad(body.len() as u64)
    }

    /// Ends the archive (two zero blocks) and returns the stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.w)
    }
}

fn type_flag(k: FileKind) -> u8 {
    match k {
        FileKind::File => b'0',
        FileKind::HardLink => b'1',
        FileKind::Symlink => b'2',
        FileKind::Char => b'3',
        FileKind::Block => b'4',
        FileKind::Dir => b'5',
        FileKind::Fifo => b'6',
    }
}

/// Appends the header block(s) of `e` to `out`.
pub fn encode_header(e: &OutEntry, out: &mut Vec<u8>) {
    let mut name = e.path.rel().as_os_str().as_bytes().to_vec();
    if e.kind == FileKind::Dir {
        name.push(b'/');
    }
    let link = e
        .link
        .as_deref()
        .map(|l| l.as_os_str().as_bytes().to_vec())
        .unwrap_or_default();
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if name.len() > 100 {
        pax.insert("path".into(), name.clone());
    }
    if link.len() > 100 {
        pax.insert("linkpath".into(), link.clone());
    }
    let size = if e.kind == FileKind::File { e.size } else { 0 };
    if size > OCTAL11 {
        pax.insert("size".into(), size.to_string().into_bytes());
    }
    if e.uid > OCTAL7 {
        pax.insert("uid".into(), e.uid.to_string().into_bytes());
    }
    if e.gid > OCTAL7 {
        pax.insert("gid".into(), e.gid.to_string().into_bytes());
    }
    if e.mtime > OCTAL11 {
        pax.insert("mtime".into(), e.mtime.to_string().into_bytes());
    }
    for (k, v) in &e.xattrs {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }
    if !pax.is_empty() {
        let mut records = Vec::new();
        for (k, v) in &pax {
            pax_record(&mut records, k.as_bytes(), v);
        }
        let base = e
            .path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let mut pname = b"PaxHeaders.0/".to_vec();
        pname.extend_from_slice(&base);
        let mut h = [0u8; BLOCK];
        fill(&mut h[0..100], &pname);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], records.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = b'x';
        ustar_magic(&mut h);
        checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&records);
        let rem = records.len() % BLOCK;
        if rem != 0 {
            out.resize(out.len() + BLOCK - rem, 0);
        }
    }
    let mut h = [0u8; BLOCK];
    fill(&mut h[0..100], &name);
    octal(&mut h[100..108], u64::from(e.mode & 0o7777));
    octal(&mut h[108..116], if e.uid > OCTAL7 { 0 } else { e.uid });
    octal(&mut h[116..124], if e.gid > OCTAL7 { 0 } else { e.gid });
    octal(&mut h[124..136], if size > OCTAL11 { 0 } else { size });
    octal(
        &mut h[136..148],
        if e.mtime > OCTAL11 { 0 } else { e.mtime },
    );
    h[156] = type_flag(e.kind);
    fill(&mut h[157..257], &link);
    ustar_magic(&mut h);
    if let (Some((major, minor)), FileKind::Char | FileKind::Block) = (e.dev, e.kind) {
        octal(&mut h[329..337], u64::from(major).min(OCTAL7));
        octal(&mut h[337..345], u64::from(minor).min(OCTAL7));
    }
    checksum(&mut h);
    out.extend_from_slice(&h);
}

/// Copies at most the field's length (longer values travel in PAX).
fn fill(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
}

/// Zero-padded octal with a trailing NUL, filling the field.
fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    fill(field, s.as_bytes());
    field[digits] = 0;
}

fn ustar_magic(h: &mut [u8; BLOCK]) {
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
}

fn checksum(h: &mut [u8; BLOCK]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// `"<len> <key>=<value>\n"` where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The paths of regular files among canonical entries (for guards).
pub fn regular_paths(entries: &[OutEntry]) -> Vec<ImagePath> {
    entries
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| e.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::Path;

    fn e(path: &str, kind: FileKind) -> OutEntry {
        let mut o = OutEntry::parent_dir(ImagePath::from(path), None);
        o.kind = kind;
        o.mode = 0o644;
        o.mtime = 1_700_000_000;
        o
    }

    #[test]
    fn whiteout_names_are_refused() {
        for name in ["etc/.wh.passwd", ".wh..wh..opq", ".wh.x/inner"] {
            let mut map = EntryMap::new();
            let o = e(name, FileKind::File);
            map.insert(sort_key(o.path.rel()), o);
            let err = canonicalize(map, None).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("whiteout"), "{err}");
        }
        // A name that merely contains the marker is fine.
        let mut map = EntryMap::new();
        let o = e("etc/a.wh.b", FileKind::File);
        map.insert(sort_key(o.path.rel()), o);
        canonicalize(map, None).unwrap();
    }

    #[test]
    fn pax_record_lengths() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"x");
        assert_eq!(v, b"9 path=x\n");
        let mut v = Vec::new();
        let long = vec![b'a'; 95];
        pax_record(&mut v, b"path", &long);
        let s = String::from_utf8(v.clone()).unwrap();
        let n: usize = s.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, v.len());
    }

    #[test]
    fn round_trips_through_the_tar_crate() {
        let long = format!("d/{}", "n".repeat(150));
        let mut f = e(&long, FileKind::File);
        f.size = 5;
        f.uid = 5_000_000;
        f.xattrs
            .insert("security.capability".into(), vec![1, 0, 0, 2]);
        let mut l = e("d/l", FileKind::Symlink);
        l.link = Some(PathBuf::from(format!("/{}", "t".repeat(120))));
        let mut h = e("d/h", FileKind::HardLink);
        h.link = Some(PathBuf::from(&long));
        let mut c = e("d/c", FileKind::Char);
        c.dev = Some((1, 3));
        let mut w = TarWriter::new(Vec::new());
        w.entry(&e("d", FileKind::Dir), b"").unwrap();
        w.entry(&f, b"hello").unwrap();
        w.entry(&l, b"").unwrap();
        w.entry(&h, b"").unwrap();
        w.entry(&c, b"").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let mut a = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for ent in a.entries().unwrap() {
            let mut ent = ent.unwrap();
            let p = ent.path().unwrap().into_owned();
            let ty = ent.header().entry_type();
            let uid = ent.header().uid().unwrap();
            let link = ent.link_name().unwrap().map(|l| l.into_owned());
            let mut xa = Vec::new();
            if let Some(x) = ent.pax_extensions().unwrap() {
                for r in x {
                    let r = r.unwrap();
                    xa.push(r.key().unwrap().to_string());
                }
            }
            let mut body = Vec::new();
            ent.read_to_end(&mut body).unwrap();
            seen.push((p, ty, uid, link, xa, body));
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0].0, Path::new("d"));
        assert_eq!(seen[1].0, Path::new(&long));
        assert_eq!(seen[1].2, 5_000_000);
        assert_eq!(seen[1].5, b"hello");
        assert!(seen[1]
            .4
            .contains(&"SCHILY.xattr.security.capability".to_string()));
        assert_eq!(seen[2].3.as_deref(), l.link.as_deref());
        assert_eq!(seen[3].1, tar::EntryType::Link);
        assert_eq!(seen[3].3.as_deref(), Some(Path::new(&long)));
        assert_eq!(seen[4].1, tar::EntryType::Char);
    }

    #[test]
    fn canonicalize_adds_parents_and_links() {
        let mut m = EntryMap::new();
        for (p, ino) in [("a/b/f2", 7), ("a/b/f1", 7), ("z/f3", 8)] {
            let mut f = e(p, FileKind::File);
            f.size = 3;
            f.inode = Some((1, ino, 0));
            f.mtime = 2_000_000_000;
            m.insert(sort_key(Path::new(p)), f);
        }
        let out = canonicalize(m, Some(1_000)).unwrap();
        let names: Vec<_> = out.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(names, ["/a", "/a/b", "/a/b/f1", "/a/b/f2", "/z", "/z/f3"]);
        assert_eq!(out[0].mode, 0o755);
        assert_eq!(out[0].mtime, 1_000);
        assert_eq!(out[2].kind, FileKind::File);
        assert_eq!(out[3].kind, FileKind::HardLink);
        assert_eq!(out[3].link.as_deref(), Some(Path::new("a/b/f1")));
        assert!(out.iter().all(|e| e.mtime <= 1_000));
        let mut bad = EntryMap::new();
        bad.insert(sort_key(Path::new("f")), e("f", FileKind::File));
        bad.insert(sort_key(Path::new("f/x")), e("f/x", FileKind::File));
        assert!(canonicalize(bad, None).is_err());
    }
}
