//! Building layers: canonical tar -> diff_id hash -> compression -> blob
//! digest, in one streaming pass into the layout's atomic blob writer.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::canon::{canonicalize, regular_paths, Body, EntryMap, OutEntry, TarWriter};
use super::content::{with_image_contents, Contents, LocalContents};
use super::entry::{FileKind, Meta};
use super::gzip::ParallelGzip;
use super::merged::MergedTree;
pub use super::output::{source_date_epoch_from_env, BuiltLayer, LayerOptions, DEFAULT_ZSTD_LEVEL};
use super::path::{sort_key, ImagePath};
use super::select::Selection;
use crate::digest::HashingWriter;
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::layout::{BlobWriter, Layout};
use crate::manifest::Compression;
use crate::transport::ImageSource;

/// A generated file for [`layer_from_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticEntry {
    pub path: ImagePath,
    pub kind: SyntheticKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntheticKind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

/// The compressor stage.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(w: W, opts: &LayerOptions) -> io::Result<Self> {
        Ok(match opts.compression {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => {
                Encoder::Gzip(ParallelGzip::new(w, opts.gzip_level, opts.threads)?)
            }
            Compression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(w, opts.zstd_level)?;
                // zstd's output differs between single-threaded mode (0
                // workers) and multithreaded mode, but not between worker
                // counts >= 1: always use at least one worker.
                z.multithread(opts.threads.clamp(1, 256) as u32)?;
                Encoder::Zstd(z)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(g) => g.write_all(buf),
            Encoder::Zstd(z) => z.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

type Stack = TarWriter<BufWriter<HashingWriter<Encoder<BlobWriter>>>>;

/// Writes canonical entries as a layer blob into `out`.
pub(crate) fn write_layer(
    entries: &[OutEntry],
    contents: &mut dyn Contents,
    out: &Layout,
    opts: &LayerOptions,
) -> Result<BuiltLayer> {
    let mut blob = out.blob_writer()?;
    let temp = blob.temp_path().to_path_buf();
    let ioe = |e: io::Error| Error::from_io(&temp, e);
    let enc = Encoder::new(blob, opts).map_err(ioe)?;
    let mut tar: Stack = TarWriter::new(BufWriter::with_capacity(
        256 * 1024,
        HashingWriter::new(enc),
    ));
    for e in entries {
        tar.header(e).map_err(ioe)?;
        if e.kind == FileKind::File && e.size > 0 {
            let mut counter = Counting {
                inner: tar.inner(),
                n: 0,
            };
            contents.write_body(e, &mut counter)?;
            if counter.n != e.size {
                return Err(Error::invalid(
                    e.path.to_string(),
                    format!("wrote {} bytes for a {} byte entry", counter.n, e.size),
                ));
            }
            tar.pad(e.size).map_err(ioe)?;
        }
    }
    let buf = tar.finish().map_err(ioe)?;
    let hashing = buf.into_inner().map_err(|e| ioe(e.into_error()))?;
    let (enc, diff_id, _tar_size) = hashing.finish();
    let blob: BlobWriter = enc.finish().map_err(ioe)?;
    let (digest, size) = blob.finish()?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(opts.compression.oci_media_type(), size, digest),
        diff_id,
        entries: entries.len() as u64,
        reused: false,
        paths: regular_paths(entries),
    })
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.n += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Builds a layer from the selected parts of an image's merged tree,
/// streaming contents out of the source layers (see `content`).
pub fn layer_from_image(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    tree: &MergedTree,
    sel: &Selection,
    out: &Layout,
    opts: &LayerOptions,
) -> Result<BuiltLayer> {
    let cache = super::cache::LayerCache::from_options(opts);
    let key = cache
        .as_ref()
        .map(|_| super::cache::image_key(img, sel, opts))
        .transpose()?;
    if let (Some(c), Some(k)) = (&cache, &key) {
        if let Some(hit) = c.get(k, out) {
            return Ok(hit);
        }
    }
    let picks = sel.apply(tree)?;
    let built = match super::reuse::whole_layer(tree, sel, &picks, opts) {
        Some(plan) => super::reuse::copy_layer(src, out, plan, opts)?,
        None => {
            let mut map = EntryMap::new();
            for (k, p) in picks {
                let e = p.entry;
                let (kind, body, inode) = match e.kind {
                    FileKind::File | FileKind::HardLink => (
                        FileKind::File,
                        e.content.map(Body::Image).unwrap_or(Body::None),
                        e.content
                            .map(|c| (p.rule as u64, u64::from(c.layer), c.ordinal)),
                    ),
                    k => (k, Body::None, None),
                };
                let (uid, gid) = p.owner.unwrap_or((e.uid, e.gid));
                map.insert(
                    k,
                    OutEntry {
                        path: p.dest,
                        meta: Meta {
                            kind,
                            mode: e.mode,
                            uid,
                            gid,
                            mtime: e.mtime,
                            size: if kind == FileKind::File { e.size } else { 0 },
                            link: if kind == FileKind::Symlink {
                                e.link.clone()
                            } else {
                                None
                            },
                            xattrs: e.xattrs.clone(),
                            dev: e.dev,
                        },
                        body,
                        inode,
                    },
                );
            }
            let entries = canonicalize(map, opts.source_date_epoch)?;
            with_image_contents(src, tree.layers(), &entries, out.root(), |contents| {
                write_layer(&entries, contents, out, opts)
            })?
        }
    };
    if let (Some(c), Some(k)) = (&cache, &key) {
        c.put(k, &built);
    }
    Ok(built)
}

/// Builds a layer of generated files (alternatives symlinks, ld.so.conf.d
/// snippets, dpkg state). mtimes are the epoch, or 0.
pub fn layer_from_entries(
    entries: Vec<SyntheticEntry>,
    out: &Layout,
    opts: &LayerOptions,
) -> Result<BuiltLayer> {
    let mtime = opts.source_date_epoch.unwrap_or(0);
    let mut map = EntryMap::new();
    for s in entries {
        if s.path.is_root() {
            return Err(Error::invalid(
                format!("generated entry {}", s.path),
                "is the root directory",
            ));
        }
        let (kind, size, link, body) = match s.kind {
            SyntheticKind::Dir => (FileKind::Dir, 0, None, Body::None),
            SyntheticKind::File(b) => (FileKind::File, b.len() as u64, None, Body::Bytes(b)),
            SyntheticKind::Symlink(t) => (FileKind::Symlink, 0, Some(t), Body::None),
        };
        map.insert(
            sort_key(s.path.rel()),
            OutEntry {
                path: s.path,
                meta: Meta {
                    kind,
                    mode: s.mode & 0o7777,
                    uid: s.uid,
                    gid: s.gid,
                    mtime,
                    size,
                    link,
                    xattrs: BTreeMap::new(),
                    dev: None,
                },
                body,
                inode: None,
            },
        );
    }
    let entries = canonicalize(map, opts.source_date_epoch)?;
    write_layer(&entries, &mut LocalContents, out, opts)
}

/// Builds a layer from a directory on disk: its contents land below `dest`
/// (e.g. `/usr/local/bin`). `dest` and its parents are written as `0755
/// root` directories (as `COPY dir/ /dest/` does); `owner` overrides the
/// owner of everything copied.
pub fn layer_from_dir(
    dir: &Path,
    dest: &str,
    owner: Option<(u64, u64)>,
    out: &Layout,
    opts: &LayerOptions,
) -> Result<BuiltLayer> {
    let dest_path = ImagePath::from(dest);
    let walked = super::dir::walk(dir, &dest_path, owner)?;
    let cache = super::cache::LayerCache::from_options(opts);
    let key = super::cache::dir_key(&walked.fingerprint, dest, owner, opts)?;
    if let Some(c) = &cache {
        if let Some(hit) = c.get(&key, out) {
            return Ok(hit);
        }
    }
    let mut map = walked.entries;
    if !dest_path.is_root() {
        map.insert(
            sort_key(dest_path.rel()),
            OutEntry::parent_dir(dest_path, opts.source_date_epoch),
        );
    }
    let entries = canonicalize(map, opts.source_date_epoch)?;
    let built = write_layer(&entries, &mut LocalContents, out, opts)?;
    if let Some(c) = &cache {
        c.put(&key, &built);
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::select::SelectRule;
    use crate::reference::Reference;
    use crate::transport::open_source_with;
    use std::io::Read;

    fn plain(epoch: Option<u64>) -> LayerOptions {
        LayerOptions {
            compression: Compression::None,
            threads: 1,
            source_date_epoch: epoch,
            reuse_layers: false,
            cache: None,
            ..LayerOptions::default()
        }
    }

    /// (path, type, size, link, mode, mtime, body) of every entry.
    type Listed = (
        String,
        tar::EntryType,
        u64,
        Option<String>,
        u32,
        u64,
        Vec<u8>,
    );

    fn list(out: &Layout, b: &BuiltLayer) -> Vec<Listed> {
        let bytes = std::fs::read(out.blob_path(b.descriptor.digest()).unwrap()).unwrap();
        assert_eq!(crate::digest::sha256(&bytes), b.diff_id);
        let mut a = tar::Archive::new(&bytes[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (
                    e.path()
                        .unwrap()
                        .display()
                        .to_string()
                        .trim_end_matches('/')
                        .to_string(),
                    h.entry_type(),
                    h.size().unwrap(),
                    e.link_name().unwrap().map(|l| l.display().to_string()),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    body,
                )
            })
            .collect()
    }

    #[test]
    fn a_tree_selected_twice_is_two_copies_not_links() {
        let t = tempfile::tempdir().unwrap();
        let fx = format!(
            "oci:{}/fixtures/artifacts:cross-android-amd64",
            env!("CARGO_MANIFEST_DIR")
        );
        let src = open_source_with(&fx.parse::<Reference>().unwrap(), &Default::default()).unwrap();
        let img = crate::image::resolve_image(src.as_ref(), None).unwrap();
        let tree = MergedTree::load(src.as_ref(), &img).unwrap();
        let sel = Selection::new(vec![
            SelectRule {
                dest: Some("/b".into()),
                ..SelectRule::path("/opt/ffmpeg")
            },
            SelectRule {
                dest: Some("/a".into()),
                ..SelectRule::path("/opt/ffmpeg")
            },
            SelectRule::path("/opt/gcc-16.1.0/bin"),
        ]);
        let out = Layout::open_or_create(t.path().join("o")).unwrap();
        let b = layer_from_image(src.as_ref(), &img, &tree, &sel, &out, &plain(None)).unwrap();
        let l = list(&out, &b);
        let get = |p: &str| l.iter().find(|e| e.0 == p).unwrap().clone();
        let (a, bb) = (get("a/bin/ffmpeg"), get("b/bin/ffmpeg"));
        assert_eq!(a.1, tar::EntryType::Regular);
        assert_eq!(bb.1, tar::EntryType::Regular);
        assert!(!a.6.is_empty());
        assert_eq!(a.6, bb.6);
        let hl = get("opt/gcc-16.1.0/bin/x86_64-linux-gnu-gcc");
        assert_eq!(hl.1, tar::EntryType::Link);
        assert_eq!(hl.3.as_deref(), Some("opt/gcc-16.1.0/bin/gcc"));
        let names: Vec<_> = l.iter().map(|e| e.0.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|p| crate::layer::path::sort_key(Path::new(p)));
        assert_eq!(names, sorted);
    }

    #[test]
    fn zstd_and_gzip_do_not_depend_on_the_thread_count() {
        // Several zstd jobs (about 8 MiB each at level 3) and gzip blocks.
        let mut x: u64 = 7;
        let data: Vec<u8> = (0..24 << 20)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                if i % 5 == 0 {
                    (x >> 56) as u8
                } else {
                    b"layer "[i % 6]
                }
            })
            .collect();
        for c in [Compression::Zstd, Compression::Gzip] {
            let outs: Vec<Vec<u8>> = [1, 2, 8]
                .iter()
                .map(|&threads| {
                    let o = LayerOptions {
                        compression: c,
                        threads,
                        ..plain(None)
                    };
                    let mut e = Encoder::new(Vec::new(), &o).unwrap();
                    for chunk in data.chunks(100_000) {
                        e.write_all(chunk).unwrap();
                    }
                    e.finish().unwrap()
                })
                .collect();
            assert!(outs.windows(2).all(|w| w[0] == w[1]), "{c:?}");
        }
    }

    #[test]
    fn generated_files_layer() {
        let t = tempfile::tempdir().unwrap();
        let out = Layout::open_or_create(t.path()).unwrap();
        let e = |p: &str, kind: SyntheticKind, mode| SyntheticEntry {
            path: p.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        };
        let b = layer_from_entries(
            vec![
                e(
                    "/usr/bin/cc",
                    SyntheticKind::Symlink("/etc/alternatives/cc".into()),
                    0o777,
                ),
                e(
                    "/etc/alternatives/cc",
                    SyntheticKind::Symlink("/opt/gcc-16.1.0/bin/gcc".into()),
                    0o777,
                ),
                e(
                    "/etc/ld.so.conf.d/gcc-custom.conf",
                    SyntheticKind::File(b"/opt/gcc-16.1.0/lib64\n".to_vec()),
                    0o644,
                ),
                e("/var/lib/dpkg/alternatives", SyntheticKind::Dir, 0o755),
            ],
            &out,
            &plain(Some(1_700_000_000)),
        )
        .unwrap();
        let l = list(&out, &b);
        let names: Vec<_> = l.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/alternatives",
                "etc/alternatives/cc",
                "etc/ld.so.conf.d",
                "etc/ld.so.conf.d/gcc-custom.conf",
                "usr",
                "usr/bin",
                "usr/bin/cc",
                "var",
                "var/lib",
                "var/lib/dpkg",
                "var/lib/dpkg/alternatives",
            ]
        );
        assert!(l.iter().all(|e| e.5 == 1_700_000_000));
        assert_eq!(l[4].6, b"/opt/gcc-16.1.0/lib64\n");
        assert_eq!(l[7].3.as_deref(), Some("/etc/alternatives/cc"));
        assert_eq!(
            b.paths,
            [ImagePath::from("/etc/ld.so.conf.d/gcc-custom.conf")]
        );
        // Same input, same layer.
        let again = layer_from_entries(
            vec![e(
                "usr/bin/cc",
                SyntheticKind::Symlink("/etc/alternatives/cc".into()),
                0o777,
            )],
            &out,
            &plain(Some(1_700_000_000)),
        )
        .unwrap();
        let again2 = layer_from_entries(
            vec![e(
                "/usr/bin/./cc",
                SyntheticKind::Symlink("/etc/alternatives/cc".into()),
                0o777,
            )],
            &out,
            &plain(Some(1_700_000_000)),
        )
        .unwrap();
        assert_eq!(again.descriptor, again2.descriptor);
    }
}
