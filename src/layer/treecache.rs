//! Cached merged trees: loading a tree streams every layer of the image,
//! which a rerun should not do again. The tree depends only on the layer
//! digests, so it is stored under a key made of them, in a compact binary
//! form with a sha256 trailer (a damaged file is a miss, never a wrong
//! tree).
//!
//! A tree is stored only after [`MergedTree::load`] verified every layer's
//! blob and `diff_id`, so a cached tree stands for verified layers: its
//! `diff_id`s were computed from the blobs with these digests. A hit counts
//! only when the image's config lists the same `diff_id`s; a config that
//! lists others is a miss, and the full load then reports the mismatch.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, MediaType};
use sha2::{Digest as _, Sha256};

use super::cache::LayerCache;
use super::entry::{ContentRef, FileKind, Meta};
use super::merged::{LayerInfo, MergedTree, TreeEntry};
use super::path::{sort_key, ImagePath};
use crate::atomic;
use crate::digest::sha256;
use crate::error::Result;
use crate::image::ResolvedImage;
use crate::transport::ImageSource;

const MAGIC: &[u8] = b"ocipack-tree-2\n";

/// Cache loading lives beside the cache, so the merged view stays below it.
impl MergedTree {
    /// [`MergedTree::load`] through a cache: a tree loaded once for these
    /// layer digests is read back instead of streaming the layers again.
    pub fn load_cached(
        src: &dyn ImageSource,
        img: &ResolvedImage,
        cache: Option<&LayerCache>,
    ) -> Result<MergedTree> {
        if let Some(c) = cache {
            if let Some(t) = get(c, img) {
                return Ok(t);
            }
        }
        let t = Self::load(src, img)?;
        if let Some(c) = cache {
            put(c, img, &t);
        }
        Ok(t)
    }
}

/// Key of an image's tree.
pub fn tree_key(img: &ResolvedImage) -> String {
    // tree-2: from when trees were only cached after their diff_ids
    // were verified; older entries are not trusted.
    // tree-3: layers record entries redirected through symlinked parents.
    let mut s = String::from("tree-3");
    for d in img.layers() {
        s.push(' ');
        s.push_str(d.digest().as_ref());
    }
    sha256(s.as_bytes()).digest().to_string()
}

fn path_of(cache: &LayerCache, key: &str) -> PathBuf {
    cache.dir().join("trees").join(format!("{key}.bin"))
}

/// The cached tree, if present and intact.
pub fn get(cache: &LayerCache, img: &ResolvedImage) -> Option<MergedTree> {
    let p = path_of(cache, &tree_key(img));
    let bytes = std::fs::read(&p).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        tracing::warn!(path = %p.display(), "damaged tree cache entry ignored");
        return None;
    }
    match decode(body) {
        Ok(t) => {
            let cached = t.layers().iter().map(|l| l.diff_id.as_str());
            if !cached.eq(img.diff_ids().iter().map(String::as_str)) {
                tracing::debug!(path = %p.display(), "tree cache: the config's diff_ids differ; reloading");
                return None;
            }
            Some(t)
        }
        Err(e) => {
            tracing::warn!(path = %p.display(), "unreadable tree cache entry: {e}");
            None
        }
    }
}

/// Stores a tree; failures only cost a future reload.
pub fn put(cache: &LayerCache, img: &ResolvedImage, tree: &MergedTree) {
    let p = path_of(cache, &tree_key(img));
    let r = (|| -> Result<()> {
        atomic::create_dir_all(atomic::parent_dir(&p))?;
        let mut body = Vec::new();
        encode(tree, &mut body).map_err(|e| crate::Error::io(&p, e))?;
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        atomic::write_file(&p, &body)
    })();
    if let Err(e) = r {
        tracing::warn!("tree cache: {e}");
    }
}

struct W<'a>(BufWriter<&'a mut Vec<u8>>);

impl W<'_> {
    fn u8(&mut self, v: u8) -> io::Result<()> {
        self.0.write_all(&[v])
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.u64(b.len() as u64)?;
        self.0.write_all(b)
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) -> io::Result<()> {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1)?;
                self.bytes(b)
            }
        }
    }
}

struct R<'a>(BufReader<&'a [u8]>);

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl R<'_> {
    fn u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.0.read_exact(&mut b)?;
        Ok(b[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.0.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.0.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u64()?;
        // Bounded by what is left of the body, so a forged length cannot
        // make the decoder allocate more than the file holds.
        let left = self.0.buffer().len() + self.0.get_ref().len();
        if n > left as u64 {
            return Err(bad("length out of range"));
        }
        let mut v = vec![0u8; n as usize];
        self.0.read_exact(&mut v)?;
        Ok(v)
    }
    fn opt_bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            _ => Err(bad("bad option tag")),
        }
    }
    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| bad("bad utf-8"))
    }
}

fn kind_code(k: FileKind) -> u8 {
    match k {
        FileKind::File => 0,
        FileKind::Dir => 1,
        FileKind::Symlink => 2,
        FileKind::HardLink => 3,
        FileKind::Char => 4,
        FileKind::Block => 5,
        FileKind::Fifo => 6,
    }
}

fn kind_of(c: u8) -> io::Result<FileKind> {
    Ok(match c {
        0 => FileKind::File,
        1 => FileKind::Dir,
        2 => FileKind::Symlink,
        3 => FileKind::HardLink,
        4 => FileKind::Char,
        5 => FileKind::Block,
        6 => FileKind::Fifo,
        _ => return Err(bad("bad entry kind")),
    })
}

fn enc_entry(w: &mut W<'_>, e: &TreeEntry) -> io::Result<()> {
    w.bytes(e.path.rel().as_os_str().as_bytes())?;
    w.u8(kind_code(e.kind))?;
    w.u32(e.mode)?;
    w.u64(e.uid)?;
    w.u64(e.gid)?;
    w.u64(e.mtime)?;
    w.u64(e.size)?;
    w.opt_bytes(e.link.as_deref().map(|l| l.as_os_str().as_bytes()))?;
    w.u64(e.xattrs.len() as u64)?;
    for (k, v) in &e.xattrs {
        w.bytes(k.as_bytes())?;
        w.bytes(v)?;
    }
    match e.dev {
        None => w.u8(0)?,
        Some((a, b)) => {
            w.u8(1)?;
            w.u32(a)?;
            w.u32(b)?;
        }
    }
    w.u32(e.layer)?;
    match e.content {
        None => w.u8(0),
        Some(c) => {
            w.u8(1)?;
            w.u32(c.layer)?;
            w.u64(c.ordinal)
        }
    }
}

fn dec_entry(r: &mut R<'_>) -> io::Result<TreeEntry> {
    let os = |b: Vec<u8>| PathBuf::from(std::ffi::OsStr::from_bytes(&b));
    let path = os(r.bytes()?);
    let kind = kind_of(r.u8()?)?;
    let mode = r.u32()?;
    let uid = r.u64()?;
    let gid = r.u64()?;
    let mtime = r.u64()?;
    let size = r.u64()?;
    let link = r.opt_bytes()?.map(os);
    let n = r.u64()?;
    let mut xattrs = BTreeMap::new();
    for _ in 0..n {
        let k = r.string()?;
        xattrs.insert(k, r.bytes()?);
    }
    let dev = match r.u8()? {
        0 => None,
        _ => Some((r.u32()?, r.u32()?)),
    };
    let layer = r.u32()?;
    let content = match r.u8()? {
        0 => None,
        _ => Some(ContentRef {
            layer: r.u32()?,
            ordinal: r.u64()?,
        }),
    };
    Ok(TreeEntry {
        // Normalised again: a cache file is only as trusted as the disk.
        path: ImagePath::from(path.as_path()),
        meta: Meta {
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            link,
            xattrs,
            dev,
        },
        layer,
        content,
    })
}

fn encode(tree: &MergedTree, out: &mut Vec<u8>) -> io::Result<()> {
    let mut w = W(BufWriter::new(out));
    w.0.write_all(MAGIC)?;
    let (entries, layers, root) = tree.parts();
    w.u64(layers.len() as u64)?;
    for l in layers {
        w.bytes(l.descriptor.media_type().to_string().as_bytes())?;
        w.bytes(l.descriptor.digest().as_ref().as_bytes())?;
        w.u64(l.descriptor.size())?;
        w.bytes(l.diff_id.as_bytes())?;
        w.u64(l.entries)?;
        w.u64(l.whiteouts)?;
        w.u64(l.max_mtime)?;
        w.u64(l.redirected)?;
    }
    match root {
        None => w.u8(0)?,
        Some(r) => {
            w.u8(1)?;
            enc_entry(&mut w, r)?;
        }
    }
    w.u64(entries.len() as u64)?;
    for e in entries.values() {
        enc_entry(&mut w, e)?;
    }
    w.0.flush()
}

fn decode(body: &[u8]) -> io::Result<MergedTree> {
    let mut r = R(BufReader::new(body));
    let mut magic = vec![0u8; MAGIC.len()];
    r.0.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(bad("not a tree cache file"));
    }
    let n = r.u64()?;
    let mut layers = Vec::new();
    for _ in 0..n {
        let mt = MediaType::from(r.string()?.as_str());
        let digest = Digest::from_str(&r.string()?).map_err(|_| bad("bad digest"))?;
        let size = r.u64()?;
        layers.push(LayerInfo {
            descriptor: Descriptor::new(mt, size, digest),
            diff_id: r.string()?,
            entries: r.u64()?,
            whiteouts: r.u64()?,
            max_mtime: r.u64()?,
            redirected: r.u64()?,
        });
    }
    let root = match r.u8()? {
        0 => None,
        _ => Some(dec_entry(&mut r)?),
    };
    let n = r.u64()?;
    let mut entries = BTreeMap::new();
    for _ in 0..n {
        let e = dec_entry(&mut r)?;
        entries.insert(sort_key(e.path.rel()), e);
    }
    Ok(MergedTree::from_parts(entries, layers, root))
}

/// For the fuzz target: decodes an unchecked body and, when it decodes,
/// asserts that encoding is stable (encode, decode, encode gives the same
/// bytes). Any other input must be refused without a panic.
#[doc(hidden)]
pub fn fuzz_round_trip(body: &[u8]) {
    let Ok(tree) = decode(body) else {
        return;
    };
    let mut a = Vec::new();
    encode(&tree, &mut a).expect("a decoded tree encodes");
    let again = decode(&a).expect("an encoded tree decodes");
    let mut b = Vec::new();
    encode(&again, &mut b).expect("a decoded tree encodes");
    assert_eq!(a, b, "tree cache encoding is not stable");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;
    use crate::transport::open_source_with;

    #[test]
    fn round_trip_and_damage() {
        let fx = format!(
            "oci:{}/fixtures/artifacts:cross-android-arm64",
            env!("CARGO_MANIFEST_DIR")
        );
        let src = open_source_with(&fx.parse::<Reference>().unwrap(), &Default::default()).unwrap();
        let img = crate::image::resolve_image(src.as_ref(), None).unwrap();
        let tree = MergedTree::load(src.as_ref(), &img).unwrap();
        let t = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(t.path());
        assert!(get(&cache, &img).is_none());
        put(&cache, &img, &tree);
        let back = get(&cache, &img).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            tree.iter().collect::<Vec<_>>()
        );
        assert_eq!(back.layers().len(), 3);
        assert_eq!(back.layers()[2].whiteouts, tree.layers()[2].whiteouts);
        let p = path_of(&cache, &tree_key(&img));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(get(&cache, &img).is_none());
        let loaded = MergedTree::load_cached(src.as_ref(), &img, Some(&cache)).unwrap();
        assert_eq!(loaded.len(), tree.len());
        assert!(get(&cache, &img).is_some());
        // A config that lies about a diff_id does not get the cached tree.
        let mut liar = img.clone();
        let mut ids = img.diff_ids().to_vec();
        ids[1] = crate::digest::sha256(b"lie").to_string();
        let mut rootfs = img.config.rootfs().clone();
        rootfs.set_diff_ids(ids);
        liar.config.set_rootfs(rootfs);
        assert!(get(&cache, &liar).is_none());
    }
}
