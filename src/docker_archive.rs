//! `docker-archive:` files: the tar `docker save` (before Docker 25),
//! `skopeo copy … docker-archive:` and older `nerdctl save` write. A
//! `manifest.json` lists, per image, its config file, its `RepoTags` and its
//! layer tars (`<hex>.tar`, or legacy `<id>/layer.tar`, possibly symlinks).
//! Docker 25+ writes an OCI layout into the same tar with a `manifest.json`
//! pointing into `blobs/`; both are read through `manifest.json`, as
//! containers/image does. A gzip or zstd compressed archive (`docker save |
//! gzip`) is decompressed once into an unnamed temp file first.
//!
//! Reading indexes the tar once (headers only) and serves members by offset,
//! as [`crate::archive`] does: nothing is extracted or held in memory but the
//! config. The format has no manifest, so a Docker schema2 one is
//! synthesized that describes the members as they are: an uncompressed
//! layer's digest is its diff_id (verified while it streams); a gzip or zstd
//! member (detected by magic) is hashed and decompressed once at open to
//! check its diff_id. The config keeps its digest. When the tar also holds
//! an OCI manifest for the same config and layers (Docker 25+), that
//! manifest is served instead, so its digest is preserved too.
//!
//! Writing follows skopeo: `<config hex>.json`, uncompressed layers as
//! `<diff_id hex>.tar` (compressed sources are decompressed and their
//! diff_ids checked against the config), then `manifest.json`, in a temp
//! file beside the destination renamed into place when complete. The images
//! of an existing archive there are carried over (equal content is stored
//! once), so a file can hold several images, as `docker save a b` writes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};

use crate::archive::SectionReader;
use crate::atomic::{self, TEMP_PREFIX};
use crate::digest::{
    check_sha256, parse_sha256, read_verified, sha256, HashingReader, HashingWriter,
    VerifyingReader,
};
use crate::endpoint::{ImageSink, ImageSource};
use crate::error::{Error, Result};
use crate::manifest::{
    Compression, RawManifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_MANIFEST,
    MAX_METADATA_SIZE,
};
use crate::reference::{ArchiveImage, Reference};

/// Media type of an uncompressed Docker layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

const MANIFEST_JSON: &str = "manifest.json";

/// One entry of `manifest.json`. Field order is Go's (`docker save`,
/// skopeo), so what we write reads the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestItem {
    #[serde(rename = "Config")]
    pub config: String,
    /// `null` for an untagged image saved by ID.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// A byte range of the archive file.
#[derive(Debug, Clone, Copy)]
struct Section {
    offset: u64,
    size: u64,
}

#[derive(Debug, Clone)]
enum Member {
    File(Section),
    /// A symlink (relative to the member's directory) or a hard link
    /// (an archive path); `docker save` links duplicate layers.
    Link {
        target: String,
        hard: bool,
    },
}

/// Normalises a member name: no `./`, no empty or `.` components, `..`
/// resolved (`None` when it climbs above the archive root).
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// The 64-hex digest a member is named by (`<hex>.json`, `<hex>.tar`,
/// `blobs/sha256/<hex>`), if it is.
fn digest_of_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let hex = base
        .strip_suffix(".json")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    if hex.len() != 64 {
        return None;
    }
    parse_sha256(&format!("sha256:{hex}")).ok()
}

/// A Docker archive indexed once: its members and `manifest.json`.
#[derive(Debug, Clone)]
pub struct DockerArchive {
    path: PathBuf,
    file: Arc<File>,
    members: Arc<BTreeMap<String, Member>>,
    items: Vec<ManifestItem>,
}

impl DockerArchive {
    pub fn open(path: impl Into<PathBuf>) -> Result<DockerArchive> {
        let path = path.into();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut magic = [0u8; 4];
        let n = file
            .read_at(&mut magic, 0)
            .map_err(|e| Error::io(&path, e))?;
        // `docker save | gzip` is common and `docker load` takes it: as
        // containers/image does, decompress once into an unnamed temp file
        // (removed when closed) and index that.
        let compression = Compression::sniff(&magic[..n]);
        let file = match compression {
            None => file,
            Some(c) => decompress_to_temp(&path, file, c)?,
        };
        let mut members = BTreeMap::new();
        let mut archive = tar::Archive::new(&file);
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::io(&path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&path, e))?;
            let raw = entry.path().map_err(|e| Error::io(&path, e))?;
            let Some(name) = clean(&raw.to_string_lossy()) else {
                continue;
            };
            let kind = entry.header().entry_type();
            let member = if kind.is_file() {
                Member::File(Section {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                })
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::io(&path, e))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Member::Link {
                    target,
                    hard: kind.is_hard_link(),
                }
            } else {
                continue;
            };
            // As tar readers do, a later entry of the same name wins.
            members.insert(name, member);
        }
        let mut a = DockerArchive {
            path,
            file: Arc::new(file),
            members: Arc::new(members),
            items: Vec::new(),
        };
        if !a.members.contains_key(MANIFEST_JSON) {
            let hint = if a.members.contains_key("oci-layout") {
                " (it is an OCI archive: use oci-archive:)"
            } else if a.members.contains_key("repositories") {
                " (a pre-1.10 Docker archive without manifest.json is not supported)"
            } else {
                ""
            };
            return Err(Error::not_found(
                MANIFEST_JSON,
                format!("{}{hint}", a.path.display()),
            ));
        }
        let what = a.what(MANIFEST_JSON);
        let bytes = a.read_small(MANIFEST_JSON)?;
        a.items = serde_json::from_slice(&bytes).map_err(|e| Error::json(&what, e))?;
        if a.items.is_empty() {
            return Err(Error::invalid(what, "lists no image"));
        }
        Ok(a)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images of `manifest.json`, in order.
    pub fn items(&self) -> &[ManifestItem] {
        &self.items
    }

    fn what(&self, member: &str) -> String {
        format!("{}: {member}", self.path.display())
    }

    /// Finds a regular file member, following links (a few hops).
    fn section(&self, name: &str) -> Result<Section> {
        let missing =
            || Error::not_found(format!("member {name:?}"), self.path.display().to_string());
        let mut cur = clean(name).ok_or_else(missing)?;
        for _ in 0..8 {
            match self.members.get(&cur) {
                Some(Member::File(s)) => return Ok(*s),
                Some(Member::Link { target, hard }) => {
                    let joined = if *hard || target.starts_with('/') {
                        target.clone()
                    } else {
                        match cur.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{target}"),
                            None => target.clone(),
                        }
                    };
                    cur = clean(&joined).ok_or_else(missing)?;
                }
                None => return Err(missing()),
            }
        }
        Err(Error::invalid(self.what(name), "too many levels of links"))
    }

    fn reader(&self, s: Section) -> SectionReader {
        SectionReader::new(self.file.clone(), s.offset, s.size)
    }

    /// Reads a small member (JSON) whole, bounded.
    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let s = self.section(name)?;
        if s.size > MAX_METADATA_SIZE {
            return Err(Error::invalid(
                self.what(name),
                format!("{} bytes is over the metadata limit", s.size),
            ));
        }
        let mut buf = vec![0u8; s.size as usize];
        self.file
            .read_exact_at(&mut buf, s.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Picks the image `which` names (the only one when `None`).
    pub fn choose(&self, which: Option<&ArchiveImage>) -> Result<usize> {
        let listing = || {
            self.items
                .iter()
                .enumerate()
                .map(|(i, it)| {
                    let tags = it.repo_tags.clone().unwrap_or_default();
                    if tags.is_empty() {
                        format!("@{i} (untagged)")
                    } else {
                        format!("@{i} {}", tags.join(" "))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match which {
            None if self.items.len() == 1 => Ok(0),
            None => Err(Error::invalid(
                self.path.display().to_string(),
                format!(
                    "holds {} images ({}); choose one with docker-archive:FILE:NAME:TAG or :@N",
                    self.items.len(),
                    listing()
                ),
            )),
            Some(ArchiveImage::Index(i)) if *i < self.items.len() => Ok(*i),
            Some(ArchiveImage::Index(i)) => Err(Error::not_found(
                format!("image @{i}"),
                format!("{} (images: {})", self.path.display(), listing()),
            )),
            Some(ArchiveImage::Named { name, tag }) => {
                let want = format!("{name}:{tag}");
                for (i, it) in self.items.iter().enumerate() {
                    for t in it.repo_tags.iter().flatten() {
                        // RepoTags are familiar (`base:latest`) or qualified.
                        let norm = ArchiveImage::parse(t).map_err(|r| {
                            Error::invalid(self.what(MANIFEST_JSON), format!("RepoTag {t:?}: {r}"))
                        })?;
                        if norm.to_string() == want {
                            return Ok(i);
                        }
                    }
                }
                Err(Error::not_found(
                    format!("image {want}"),
                    format!("{} (images: {})", self.path.display(), listing()),
                ))
            }
        }
    }
}

/// A decompressed copy of a compressed archive, in an unnamed temp file.
fn decompress_to_temp(path: &Path, file: File, c: Compression) -> Result<File> {
    let mut tmp = tempfile::tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let r = BufReader::with_capacity(1 << 20, file);
    let copied = match c {
        Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(r), &mut tmp),
        _ => {
            zstd::stream::read::Decoder::with_buffer(r).and_then(|mut d| io::copy(&mut d, &mut tmp))
        }
    };
    copied.map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("cannot decompress the archive: {e}"),
        )
    })?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    Ok(tmp)
}

/// Compression of a member, by its first bytes.
fn sniff(a: &DockerArchive, name: &str, s: Section) -> Result<Compression> {
    let mut magic = [0u8; 6];
    let n = a
        .file
        .read_at(&mut magic[..s.size.min(6) as usize], s.offset)
        .map_err(|e| Error::io(&a.path, e))?;
    let m = &magic[..n];
    if let Some(c) = Compression::sniff(m) {
        Ok(c)
    } else if m.starts_with(b"BZh") || m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(Error::Unsupported(format!(
            "{}: layer is bzip2 or xz compressed (only plain, gzip and zstd layers are read)",
            a.what(name)
        )))
    } else {
        Ok(Compression::None)
    }
}

/// One image of a Docker archive, as an [`ImageSource`].
pub struct DockerArchiveSource {
    archive: DockerArchive,
    image: Option<ArchiveImage>,
    manifest: RawManifest,
    config: Descriptor,
    config_bytes: Vec<u8>,
    /// Layer digest (as in the manifest) -> member.
    layers: HashMap<String, Section>,
}

/// The synthesized manifest: Docker schema2, fields in the usual order.
#[derive(Serialize)]
struct SynthManifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: SynthDescriptor,
    layers: Vec<SynthDescriptor>,
}

#[derive(Serialize)]
struct SynthDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    size: u64,
    digest: String,
}

impl DockerArchiveSource {
    /// Opens the archive and prepares the image `image` names: reads and
    /// checks its config, finds every layer member, checks compressed
    /// members' diff_ids, and builds the manifest.
    pub fn open(path: impl Into<PathBuf>, image: Option<ArchiveImage>) -> Result<Self> {
        let archive = DockerArchive::open(path)?;
        let item = archive.items[archive.choose(image.as_ref())?].clone();
        let config_bytes = archive.read_small(&item.config)?;
        let config_digest = sha256(&config_bytes);
        if let Some(named) = digest_of_name(&item.config) {
            if named != config_digest {
                return Err(Error::DigestMismatch {
                    expected: named.to_string(),
                    actual: config_digest.to_string(),
                    location: Some(PathBuf::from(archive.what(&item.config))),
                });
            }
        }
        let what = archive.what(&item.config);
        let diff_ids = config_diff_ids(&config_bytes, &what)?;
        if diff_ids.len() != item.layers.len() {
            return Err(Error::invalid(
                archive.what(MANIFEST_JSON),
                format!(
                    "{} lists {} layers, its config {} diff_ids",
                    item.config,
                    item.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = HashMap::new();
        let mut descs = Vec::new();
        for (name, diff_id) in item.layers.iter().zip(&diff_ids) {
            let s = archive.section(name)?;
            let (media_type, digest) = match sniff(&archive, name, s)? {
                Compression::None => (DOCKER_LAYER_TAR, diff_id.clone()),
                c => {
                    let digest = check_compressed(&archive, name, s, c, diff_id)?;
                    let mt = if c == Compression::Gzip {
                        DOCKER_LAYER_GZIP
                    } else {
                        DOCKER_LAYER_ZSTD
                    };
                    (mt, digest)
                }
            };
            layers.entry(digest.to_string()).or_insert(s);
            descs.push(SynthDescriptor {
                media_type: media_type.into(),
                size: s.size,
                digest: digest.to_string(),
            });
        }
        let config = Descriptor::new(
            MediaType::Other(DOCKER_CONFIG.into()),
            config_bytes.len() as u64,
            config_digest.clone(),
        );
        let layer_digests: Vec<&str> = descs.iter().map(|d| d.digest.as_str()).collect();
        let manifest = match oci_manifest_for(&archive, &config_digest, &layer_digests) {
            Some(m) => m,
            None => {
                let m = SynthManifest {
                    schema_version: 2,
                    media_type: DOCKER_MANIFEST,
                    config: SynthDescriptor {
                        media_type: DOCKER_CONFIG.into(),
                        size: config.size(),
                        digest: config_digest.to_string(),
                    },
                    layers: descs,
                };
                let bytes = serde_json::to_vec(&m).map_err(|e| Error::json("manifest", e))?;
                RawManifest::from_bytes(bytes, Some(DOCKER_MANIFEST))?
            }
        };
        Ok(DockerArchiveSource {
            archive,
            image,
            manifest,
            config,
            config_bytes,
            layers,
        })
    }

    /// The archive this image was read from.
    pub fn archive(&self) -> &DockerArchive {
        &self.archive
    }
}

/// `rootfs.diff_ids` of a config, as sha256 digests.
fn config_diff_ids(bytes: &[u8], what: &str) -> Result<Vec<Digest>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
    let ids = v
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or_else(|| Error::invalid(what, "config has no rootfs.diff_ids"))?;
    ids.iter()
        .map(|d| {
            d.as_str()
                .ok_or_else(|| Error::invalid(what, "a diff_id is not a string"))
                .and_then(parse_sha256)
        })
        .collect()
}

/// Hashes a compressed member and its decompressed content in one pass;
/// returns the member's digest after checking the diff_id.
fn check_compressed(
    a: &DockerArchive,
    name: &str,
    s: Section,
    c: Compression,
    diff_id: &Digest,
) -> Result<Digest> {
    let mut raw = HashingReader::new(BufReader::with_capacity(1 << 20, a.reader(s)));
    let mut plain = HashingWriter::new(io::sink());
    let res = match c {
        Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(&mut raw), &mut plain),
        _ => zstd::stream::read::Decoder::new(&mut raw)
            .and_then(|mut d| io::copy(&mut d, &mut plain)),
    };
    res.and_then(|_| io::copy(&mut raw, &mut io::sink()))
        .map_err(|e| Error::invalid(a.what(name), format!("cannot decompress layer: {e}")))?;
    let (_, plain_digest, _) = plain.finish();
    if &plain_digest != diff_id {
        return Err(Error::invalid(
            a.what(name),
            format!("uncompressed content has digest {plain_digest}, the config lists diff_id {diff_id}"),
        ));
    }
    Ok(raw.finish().0)
}

/// The OCI manifest of a Docker 25+ archive's `index.json` that has this
/// config and these layers, so its digest is preserved. Anything unreadable
/// there falls back to the synthesized manifest (`manifest.json` is what
/// the format guarantees).
fn oci_manifest_for(a: &DockerArchive, config: &Digest, layers: &[&str]) -> Option<RawManifest> {
    if !a.members.contains_key("oci-layout") {
        return None;
    }
    let read = |d: &Descriptor| -> Option<RawManifest> {
        check_sha256(d.digest()).ok()?;
        let bytes = a
            .read_small(&format!("blobs/sha256/{}", d.digest().digest()))
            .ok()?;
        if &sha256(&bytes) != d.digest() {
            tracing::warn!(
                "{}: index.json entry {} is corrupt; ignored",
                a.path.display(),
                d.digest()
            );
            return None;
        }
        RawManifest::from_bytes(bytes, Some(d.media_type().as_ref())).ok()
    };
    let index_bytes = a.read_small("index.json").ok()?;
    let root = RawManifest::from_bytes(index_bytes, None).ok()?;
    let mut todo: Vec<Descriptor> = root.index().ok()?.manifests().clone();
    let mut depth = 0;
    while !todo.is_empty() && depth < 2 {
        let mut next = Vec::new();
        for d in &todo {
            let Some(raw) = read(d) else { continue };
            if raw.kind().is_index() {
                if let Ok(i) = raw.index() {
                    next.extend(i.manifests().iter().cloned());
                }
                continue;
            }
            let Ok(m) = raw.manifest() else { continue };
            let same = m.config().digest() == config
                && m.layers().len() == layers.len()
                && m.layers()
                    .iter()
                    .zip(layers)
                    .all(|(l, d)| l.digest().as_ref() == *d);
            if same {
                return Some(raw);
            }
        }
        todo = next;
        depth += 1;
    }
    None
}

impl ImageSource for DockerArchiveSource {
    fn name(&self) -> String {
        Reference::DockerArchive {
            path: self.archive.path.clone(),
            image: self.image.clone(),
        }
        .to_string()
    }

    fn resolve(&self) -> Result<Descriptor> {
        Ok(self.manifest.descriptor())
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        if desc.digest() == self.manifest.digest() {
            return Ok(self.manifest.clone());
        }
        Err(Error::not_found(
            format!("manifest {}", desc.digest()),
            self.name(),
        ))
    }

    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let r = self.open_blob(desc)?;
        read_verified(r, desc, MAX_METADATA_SIZE).map_err(|e| Error::from_io(&self.archive.path, e))
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        if desc.digest() == self.config.digest() {
            return Ok(Box::new(VerifyingReader::new(&self.config_bytes[..], desc)));
        }
        let s = self
            .layers
            .get(desc.digest().as_ref())
            .ok_or_else(|| Error::not_found(format!("blob {}", desc.digest()), self.name()))?;
        Ok(Box::new(VerifyingReader::new(
            self.archive.reader(*s),
            desc,
        )))
    }
}

/// What was stored for a source blob.
#[derive(Debug, Clone)]
enum Stored {
    Config { file: String, diff_ids: Vec<Digest> },
    Layer { file: String, diff_id: Digest },
}

/// Writes a Docker archive as skopeo does. Nothing is visible at `path`
/// until [`ImageSink::commit`].
pub struct DockerArchiveWriter {
    path: PathBuf,
    /// `NAME:TAG` for `RepoTags`, from the reference.
    repo_tag: Option<String>,
    state: Mutex<WriterState>,
}

struct WriterState {
    tmp: tempfile::NamedTempFile,
    /// End of the last complete member.
    pos: u64,
    /// Source blob digest -> what was written for it.
    stored: HashMap<String, Stored>,
    /// Digest of a member's content -> its name (configs, and layers by
    /// diff_id), so equal content is stored once.
    by_content: HashMap<String, String>,
    /// Every member name written.
    names: HashSet<String>,
    items: Vec<ManifestItem>,
    /// Manifest digest -> its item.
    by_manifest: HashMap<String, usize>,
}

fn member_header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o444);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

impl WriterState {
    /// Streams `data` as the content of a member starting at `self.pos`,
    /// leaving room for its header (written by [`Self::finish_member`] once
    /// the name is known). Returns the content's digest and size.
    fn write_content(&mut self, data: &mut dyn Read) -> io::Result<(Digest, u64)> {
        let start = self.pos;
        let f = self.tmp.as_file();
        let mut fr = f;
        fr.seek(SeekFrom::Start(start + 512))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, fr));
        io::copy(data, &mut w)?;
        let (bw, digest, size) = w.finish();
        let mut fr = bw.into_inner().map_err(|e| e.into_error())?;
        let pad = (512 - size % 512) % 512;
        fr.write_all(&vec![0u8; pad as usize])?;
        Ok((digest, size))
    }

    /// Writes the header of the member whose content was just written and
    /// moves past it.
    fn finish_member(&mut self, name: &str, size: u64) -> io::Result<()> {
        let h = member_header(name, size)?;
        self.tmp.as_file().write_all_at(h.as_bytes(), self.pos)?;
        self.pos += 512 + size.div_ceil(512) * 512;
        Ok(())
    }

    fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let (_, size) = self.write_content(&mut &bytes[..])?;
        self.finish_member(name, size)
    }
}

impl DockerArchiveWriter {
    /// Prepares to write `path` (replaced when committed) with the image
    /// named `image` in `RepoTags`.
    pub fn create(path: impl Into<PathBuf>, image: Option<&ArchiveImage>) -> Result<Self> {
        let path = path.into();
        let repo_tag = match image {
            None => None,
            Some(n @ ArchiveImage::Named { .. }) => Some(n.to_string()),
            Some(ArchiveImage::Index(i)) => {
                return Err(Error::Reference {
                    input: format!("docker-archive:{}:@{i}", path.display()),
                    reason: "@N selects an image to read; name the image to write (FILE:NAME:TAG)"
                        .into(),
                })
            }
        };
        let dir = atomic::parent_dir(&path).to_path_buf();
        // Locked like every temp file (see crate::atomic): unlocked, another
        // writer's cleanup in this directory would take it for a dead
        // writer's and remove it mid-write.
        atomic::remove_stale_temp(&dir, TEMP_PREFIX)?;
        let tmp = atomic::temp_file(&dir)?;
        let w = DockerArchiveWriter {
            path,
            repo_tag,
            state: Mutex::new(WriterState {
                tmp,
                pos: 0,
                stored: HashMap::new(),
                by_content: HashMap::new(),
                names: HashSet::new(),
                items: Vec::new(),
                by_manifest: HashMap::new(),
            }),
        };
        w.carry_over()?;
        Ok(w)
    }

    /// Copies the images of an existing archive at `path` (members as they
    /// are, hashed on the way), so writing an image there adds to it as
    /// `docker save` of several images would, and nothing is lost. A file
    /// that is not a Docker archive is not replaced.
    fn carry_over(&self) -> Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            _ => return Ok(()),
        }
        let old = DockerArchive::open(&self.path).map_err(|e| {
            Error::invalid(
                self.path.display().to_string(),
                format!(
                    "exists and is not a readable Docker archive ({e}); refusing to replace it"
                ),
            )
        })?;
        let mut st = self.lock()?;
        for item in old.items() {
            let mut renamed = item.clone();
            let names = std::iter::once(&item.config).chain(&item.layers);
            let new_names = std::iter::once(&mut renamed.config).chain(&mut renamed.layers);
            for (name, new_name) in names.zip(new_names) {
                let clean_name = clean(name).unwrap_or_default();
                *new_name = clean_name.clone();
                if st.names.contains(&clean_name) {
                    continue;
                }
                let sec = old.section(name)?;
                let (digest, size) = st
                    .write_content(&mut old.reader(sec))
                    .map_err(|e| Error::io(&self.path, e))?;
                st.finish_member(&clean_name, size)
                    .map_err(|e| Error::io(&self.path, e))?;
                st.by_content
                    .entry(digest.to_string())
                    .or_insert_with(|| clean_name.clone());
                st.names.insert(clean_name);
            }
            st.items.push(renamed);
        }
        Ok(())
    }

    /// The name to store content under: the existing member with this
    /// content, else `want` (refused if taken by other content).
    fn member_name(
        &self,
        st: &WriterState,
        digest: &Digest,
        want: String,
    ) -> Result<(String, bool)> {
        if let Some(existing) = st.by_content.get(digest.as_ref()) {
            return Ok((existing.clone(), false));
        }
        if st.names.contains(&want) {
            return Err(Error::invalid(
                self.path.display().to_string(),
                format!("member {want} exists with other content than {digest}"),
            ));
        }
        Ok((want, true))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
        self.state.lock().map_err(|_| {
            Error::invalid(
                self.path.display().to_string(),
                "writer poisoned by an earlier failure",
            )
        })
    }

    fn put_config(
        &self,
        st: &mut WriterState,
        desc: &Descriptor,
        src: &mut dyn Read,
    ) -> Result<()> {
        let bytes = read_verified(src, desc, MAX_METADATA_SIZE)
            .map_err(|e| Error::from_io(&self.path, e))?;
        let diff_ids = config_diff_ids(&bytes, &format!("config {}", desc.digest()))?;
        let (file, new) = self.member_name(
            st,
            desc.digest(),
            format!("{}.json", desc.digest().digest()),
        )?;
        if new {
            st.append_bytes(&file, &bytes)
                .map_err(|e| Error::io(&self.path, e))?;
            st.by_content
                .insert(desc.digest().to_string(), file.clone());
            st.names.insert(file.clone());
        }
        st.stored
            .insert(desc.digest().to_string(), Stored::Config { file, diff_ids });
        Ok(())
    }

    fn put_layer(
        &self,
        st: &mut WriterState,
        desc: &Descriptor,
        c: Compression,
        src: &mut dyn Read,
    ) -> Result<()> {
        let start = st.pos;
        let mut vr = VerifyingReader::new(src, desc);
        let written = {
            let mut plain: Box<dyn Read + '_> = match c {
                Compression::None => Box::new(&mut vr),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                    BufReader::with_capacity(1 << 20, &mut vr),
                )),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::new(&mut vr)
                        .map_err(|e| Error::io(&self.path, e))?,
                ),
            };
            st.write_content(&mut plain)
        };
        // A decoder may stop before the compressed stream's end: read the
        // rest so the blob's digest is checked.
        let (diff_id, size) = written
            .and_then(|w| io::copy(&mut vr, &mut io::sink()).map(|_| w))
            .map_err(|e| Error::from_io(&self.path, e))?;
        let (file, new) = self.member_name(st, &diff_id, format!("{}.tar", diff_id.digest()))?;
        if new {
            st.finish_member(&file, size)
                .map_err(|e| Error::io(&self.path, e))?;
            st.by_content.insert(diff_id.to_string(), file.clone());
            st.names.insert(file.clone());
        } else {
            // Already stored (another compressed form, or carried over).
            st.pos = start;
        }
        st.stored
            .insert(desc.digest().to_string(), Stored::Layer { file, diff_id });
        Ok(())
    }
}

impl ImageSink for DockerArchiveWriter {
    fn name(&self) -> String {
        match &self.repo_tag {
            Some(t) => format!("docker-archive:{}:{t}", self.path.display()),
            None => format!("docker-archive:{}", self.path.display()),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.lock()?.stored.contains_key(desc.digest().as_ref()))
    }

    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        check_sha256(desc.digest())?;
        let mut st = self.lock()?;
        if st.stored.contains_key(desc.digest().as_ref()) {
            return Ok(false);
        }
        let mt = desc.media_type();
        let is_config = *mt == MediaType::ImageConfig || mt.as_ref() == DOCKER_CONFIG;
        if is_config {
            self.put_config(&mut st, desc, src)?;
        } else {
            let c = Compression::of_media_type(mt).map_err(|_| {
                Error::Unsupported(format!(
                    "{}: blob {} has media type {}; a Docker archive holds image configs and layers only",
                    self.name(),
                    desc.digest(),
                    mt.as_ref()
                ))
            })?;
            self.put_layer(&mut st, desc, c, src)?;
        }
        Ok(true)
    }

    fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        if raw.kind().is_index() {
            return Err(Error::Unsupported(format!(
                "{}: a Docker archive holds single-platform images, not index {}; copy one platform (--arch)",
                self.name(),
                raw.digest()
            )));
        }
        let m = raw.manifest()?;
        let mut st = self.lock()?;
        let missing = |d: &Descriptor| {
            Error::invalid(
                self.name(),
                format!(
                    "manifest {} refers to blob {} not written",
                    raw.digest(),
                    d.digest()
                ),
            )
        };
        let (config, diff_ids) = match st.stored.get(m.config().digest().as_ref()) {
            Some(Stored::Config { file, diff_ids }) => (file.clone(), diff_ids.clone()),
            _ => return Err(missing(m.config())),
        };
        if diff_ids.len() != m.layers().len() {
            return Err(Error::invalid(
                format!("manifest {}", raw.digest()),
                format!(
                    "{} layers, its config {} diff_ids",
                    m.layers().len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (l, want) in m.layers().iter().zip(&diff_ids) {
            let Some(Stored::Layer { file, diff_id }) = st.stored.get(l.digest().as_ref()) else {
                return Err(missing(l));
            };
            if diff_id != want {
                return Err(Error::invalid(
                    format!("layer {} of manifest {}", l.digest(), raw.digest()),
                    format!("uncompressed content has digest {diff_id}, the config lists diff_id {want}"),
                ));
            }
            layers.push(file.clone());
        }
        let item = ManifestItem {
            config,
            repo_tags: Some(Vec::new()),
            layers,
        };
        let i = match st
            .items
            .iter()
            .position(|it| it.config == item.config && it.layers == item.layers)
        {
            Some(i) => i,
            None => {
                st.items.push(item);
                st.items.len() - 1
            }
        };
        st.by_manifest.insert(raw.digest().to_string(), i);
        Ok(())
    }

    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        // The tag strings are the other stores' short tags; a Docker archive
        // records the full NAME:TAG of its own reference (as skopeo does).
        let mut st = self.lock()?;
        for (_, d) in tags {
            let i = *st.by_manifest.get(d.digest().as_ref()).ok_or_else(|| {
                Error::invalid(
                    self.name(),
                    format!("refusing to tag {}: no such image written", d.digest()),
                )
            })?;
            if let Some(t) = &self.repo_tag {
                // A name:tag names one image: move it from any other.
                for (j, it) in st.items.iter_mut().enumerate() {
                    if j != i {
                        if let Some(tags) = &mut it.repo_tags {
                            tags.retain(|x| {
                                ArchiveImage::parse(x).map(|n| n.to_string()).as_ref() != Ok(t)
                            });
                        }
                    }
                }
                let tags = st.items[i].repo_tags.get_or_insert_with(Vec::new);
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let path = self.path;
        let mut st = self
            .state
            .into_inner()
            .map_err(|_| Error::invalid(path.display().to_string(), "writer poisoned"))?;
        if st.items.is_empty() {
            return Err(Error::invalid(
                path.display().to_string(),
                "no image was written",
            ));
        }
        let json = serde_json::to_vec(&st.items).map_err(|e| Error::json(MANIFEST_JSON, e))?;
        let io_err = |e| Error::io(&path, e);
        st.append_bytes(MANIFEST_JSON, &json).map_err(io_err)?;
        // End of archive: two zero blocks; drop anything a failed member left.
        let end = st.pos;
        let f = st.tmp.as_file();
        f.write_all_at(&[0u8; 1024], end).map_err(io_err)?;
        f.set_len(end + 1024).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        st.tmp
            .persist(&path)
            .map_err(|e| Error::io(&path, e.error))?;
        atomic::sync_dir(atomic::parent_dir(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::{copy_image, CopyOptions};
    use crate::endpoint::read_all;

    /// A tar with one file per (name, content).
    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn config(diff_ids: &[&Digest]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ids},
        }))
        .unwrap()
    }

    enum M<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
    }

    fn archive(dir: &Path, members: &[M]) -> PathBuf {
        let path = dir.join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for m in members {
            let mut h = tar::Header::new_ustar();
            match m {
                M::File(name, data) => {
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_cksum();
                    b.append_data(&mut h, name, *data).unwrap();
                }
                M::Symlink(name, target) => {
                    h.set_size(0);
                    h.set_entry_type(tar::EntryType::Symlink);
                    b.append_link(&mut h, name, target).unwrap();
                }
            }
        }
        b.finish().unwrap();
        path
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        plain: Vec<u8>,
        gz: Vec<u8>,
        cfg: Vec<u8>,
    }

    /// `docker save` style: a plain layer named by digest, a gzip layer in a
    /// legacy directory reached through a symlink.
    fn fixture(tamper: impl Fn(&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = layer(&[("etc/a", b"one")]);
        let l2 = layer(&[("usr/b", b"two")]);
        let mut cfg = config(&[&sha256(&plain), &sha256(&l2)]);
        let mut gz = gzip(&l2);
        tamper(&mut plain, &mut gz, &mut cfg);
        let cfg_name = format!("{}.json", sha256(&cfg).digest());
        let plain_name = format!("{}.tar", sha256(&plain).digest());
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": cfg_name,
            "RepoTags": ["base:latest", "ghcr.io/k/b:v1"],
            "Layers": [plain_name, "bbb/layer.tar"],
        }]))
        .unwrap();
        let path = archive(
            dir.path(),
            &[
                M::File(&cfg_name, &cfg),
                M::File(&plain_name, &plain),
                M::File("aaa/layer.tar", &gz),
                M::Symlink("bbb/layer.tar", "../aaa/layer.tar"),
                M::File("manifest.json", &manifest),
                M::File("repositories", b"{}"),
            ],
        );
        Fixture {
            _dir: dir,
            path,
            plain,
            gz,
            cfg,
        }
    }

    #[test]
    fn reads_docker_save_layout() {
        let f = fixture(|_, _, _| {});
        let src = DockerArchiveSource::open(&f.path, None).unwrap();
        let raw = src.read_manifest(&src.resolve().unwrap()).unwrap();
        assert_eq!(raw.kind(), crate::manifest::ManifestKind::DockerManifest);
        let m = raw.manifest().unwrap();
        assert_eq!(m.config().digest(), &sha256(&f.cfg));
        assert_eq!(src.read_blob(m.config()).unwrap(), f.cfg);
        let l = m.layers();
        assert_eq!(l[0].media_type().as_ref(), DOCKER_LAYER_TAR);
        assert_eq!(l[0].digest(), &sha256(&f.plain));
        assert_eq!(l[1].media_type().as_ref(), DOCKER_LAYER_GZIP);
        assert_eq!(l[1].digest(), &sha256(&f.gz));
        assert_eq!(l[1].size(), f.gz.len() as u64);
        assert_eq!(read_all(&src, &l[0]).unwrap(), f.plain);
        assert_eq!(read_all(&src, &l[1]).unwrap(), f.gz);
        // Same bytes, same manifest (deterministic).
        let again = DockerArchiveSource::open(&f.path, None).unwrap();
        assert_eq!(again.resolve().unwrap().digest(), raw.digest());
    }

    #[test]
    fn chooses_by_repo_tag_or_index() {
        let f = fixture(|_, _, _| {});
        for ok in ["base", "docker.io/library/base:latest", "ghcr.io/k/b:v1"] {
            let img = ArchiveImage::parse(ok).unwrap();
            DockerArchiveSource::open(&f.path, Some(img)).unwrap();
        }
        DockerArchiveSource::open(&f.path, Some(ArchiveImage::Index(0))).unwrap();
        let e = DockerArchiveSource::open(&f.path, Some(ArchiveImage::parse("base:v2").unwrap()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("docker.io/library/base:v2 not found"), "{e}");
        assert!(e.contains("@0 base:latest ghcr.io/k/b:v1"), "{e}");
        let e = DockerArchiveSource::open(&f.path, Some(ArchiveImage::Index(1)))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("image @1 not found"), "{e}");
    }

    #[test]
    fn corrupt_members_are_refused() {
        // A plain layer whose bytes do not match its diff_id fails while it
        // streams, naming the digest.
        let f = fixture(|plain, _, _| {
            let n = plain.len();
            plain[n - 1100] ^= 1;
        });
        // (the member is renamed after its new digest; the config still
        // lists the original diff_id)
        let src = DockerArchiveSource::open(&f.path, None).unwrap();
        let m = src
            .read_manifest(&src.resolve().unwrap())
            .unwrap()
            .manifest()
            .unwrap();
        let e = read_all(&src, &m.layers()[0]).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");

        // A gzip layer whose content does not match its diff_id fails at open.
        let f = fixture(|_, gz, _| *gz = gzip(&layer(&[("usr/b", b"TWO")])));
        let e = DockerArchiveSource::open(&f.path, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("aaa/layer.tar") || e.contains("bbb/layer.tar"),
            "{e}"
        );
        assert!(e.contains("the config lists diff_id"), "{e}");
    }

    #[test]
    fn config_named_by_another_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&[]);
        let wrong = format!("{}.json", "0".repeat(64));
        let manifest = format!(r#"[{{"Config":"{wrong}","RepoTags":null,"Layers":[]}}]"#);
        let path = archive(
            dir.path(),
            &[
                M::File(&wrong, &cfg),
                M::File("manifest.json", manifest.as_bytes()),
            ],
        );
        let e = DockerArchiveSource::open(&path, None).err().unwrap();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(&wrong), "{e}");
    }

    #[test]
    fn reads_a_gzipped_archive() {
        let f = fixture(|_, _, _| {});
        let gz = f._dir.path().join("a.tar.gz");
        std::fs::write(&gz, gzip(&std::fs::read(&f.path).unwrap())).unwrap();
        let plain = DockerArchiveSource::open(&f.path, None).unwrap();
        let src = DockerArchiveSource::open(&gz, None).unwrap();
        assert_eq!(src.resolve().unwrap(), plain.resolve().unwrap());
        let m = src
            .read_manifest(&src.resolve().unwrap())
            .unwrap()
            .manifest()
            .unwrap();
        assert_eq!(read_all(&src, &m.layers()[0]).unwrap(), f.plain);
    }

    #[test]
    fn not_a_docker_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = archive(dir.path(), &[M::File("oci-layout", b"{}")]);
        let e = DockerArchiveSource::open(&path, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("manifest.json not found") && e.contains("oci-archive:"),
            "{e}"
        );
    }

    #[test]
    fn writes_what_skopeo_writes() {
        let f = fixture(|_, _, _| {});
        let src = DockerArchiveSource::open(&f.path, None).unwrap();
        let out = f._dir.path().join("out.tar");
        let name = ArchiveImage::parse("k/img:v1").unwrap();
        let sink = DockerArchiveWriter::create(&out, Some(&name)).unwrap();
        copy_image(
            &src,
            Box::new(sink),
            &CopyOptions {
                tags: vec!["v1".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let back = DockerArchive::open(&out).unwrap();
        let l2 = layer(&[("usr/b", b"two")]);
        assert_eq!(
            back.items(),
            &[ManifestItem {
                config: format!("{}.json", sha256(&f.cfg).digest()),
                repo_tags: Some(vec!["docker.io/k/img:v1".into()]),
                layers: vec![
                    format!("{}.tar", sha256(&f.plain).digest()),
                    format!("{}.tar", sha256(&l2).digest()),
                ],
            }]
        );
        // Layers are stored uncompressed: their digests are the diff_ids.
        let src2 = DockerArchiveSource::open(&out, Some(name)).unwrap();
        let m = src2
            .read_manifest(&src2.resolve().unwrap())
            .unwrap()
            .manifest()
            .unwrap();
        assert_eq!(m.layers()[1].digest(), &sha256(&l2));
        assert_eq!(m.layers()[1].media_type().as_ref(), DOCKER_LAYER_TAR);
        assert_eq!(read_all(&src2, &m.layers()[1]).unwrap(), l2);
        assert_eq!(src2.read_blob(m.config()).unwrap(), f.cfg);
        // GNU tar agrees it is a plain tar with these members.
        let bytes = std::fs::read(&out).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names.last().unwrap(), MANIFEST_JSON);
        assert_eq!(names.len(), 4);
        // Deterministic: the same copy gives the same bytes.
        let out2 = f._dir.path().join("out2.tar");
        let sink =
            DockerArchiveWriter::create(&out2, ArchiveImage::parse("k/img:v1").ok().as_ref())
                .unwrap();
        copy_image(
            &src,
            Box::new(sink),
            &CopyOptions {
                tags: vec!["v1".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&out2).unwrap(), bytes);
    }

    #[test]
    fn writer_checks_diff_ids_and_leaves_nothing_on_failure() {
        // The config claims another diff_id for the gzip layer.
        let f = fixture(|_, _, cfg| {
            let l = layer(&[("usr/b", b"other")]);
            let p = layer(&[("etc/a", b"one")]);
            *cfg = config(&[&sha256(&p), &sha256(&l)]);
        });
        // The reader refuses it already; build the source from the
        // unchecked pieces through a layout instead.
        assert!(DockerArchiveSource::open(&f.path, None).is_err());
        let dir = f._dir.path();
        let layout = crate::layout::Layout::open_or_create(dir.join("oci")).unwrap();
        let put = |mt: MediaType, b: &[u8]| {
            let d = Descriptor::new(mt, b.len() as u64, sha256(b));
            layout.put_blob(&d, &mut &b[..]).unwrap();
            d
        };
        let c = put(MediaType::ImageConfig, &f.cfg);
        let l0 = put(MediaType::ImageLayer, &f.plain);
        let l1 = put(MediaType::ImageLayerGzip, &f.gz);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c, "layers": [l0, l1],
        }))
        .unwrap();
        let md = put(MediaType::ImageManifest, &m);
        layout.set_tags(&[("t".into(), md)]).unwrap();
        let src = crate::transport::LayoutSource {
            layout,
            selector: Some(crate::reference::Selector::Tag("t".into())),
        };
        let out = dir.join("bad.tar");
        let sink = DockerArchiveWriter::create(&out, None).unwrap();
        let e = copy_image(&src, Box::new(sink), &CopyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("the config lists diff_id"), "{e}");
        assert!(!out.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty());
    }
}
