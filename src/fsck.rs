//! `ocipack fsck`: checks an OCI layout (or archive) the way a registry
//! would before serving it, and after a crash or a full disk repairs what
//! can be repaired without losing anything.
//!
//! Checked: every stored blob against the digest it is stored under (and
//! the size descriptors give it); every descriptor reachable from
//! `index.json`, through indexes and manifests down to configs and layers,
//! present and parseable; every image layer's uncompressed digest against
//! its config's `rootfs.diff_ids`. Reported besides: orphan blobs (nothing
//! reaches them) and temp files of writers that died. `--repair` removes
//! those two (never a referenced blob, even a corrupt one), under the
//! layout lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::Serialize;

use crate::archive::ArchiveReader;
use crate::atomic::{self, TEMP_PREFIX};
use crate::digest::{parse_sha256, HashingReader};
use crate::error::{Error, Result};
use crate::layout::{IndexFile, Layout};
use crate::manifest::{Compression, RawManifest, DOCKER_CONFIG, MAX_METADATA_SIZE};
use crate::reference::Reference;
use crate::transport::{ArchiveSource, ImageSource, LayoutSource};

/// One defect found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `missing-blob`, `size-mismatch`, `corrupt-blob`, `unparseable`,
    /// `diff-id-mismatch`, `bad-layer`, `invalid-index`, `stray-file`.
    pub kind: &'static str,
    /// The digest (or path) concerned.
    pub object: String,
    pub message: String,
}

/// What fsck found (and repaired).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    /// No problem, no orphan, no stale temp file left.
    pub ok: bool,
    /// Stored blobs hashed.
    pub blobs: usize,
    /// Indexes and manifests parsed.
    pub manifests: usize,
    /// Layers decompressed and checked against their diff_id.
    pub layers: usize,
    pub problems: Vec<Problem>,
    /// Stored blobs nothing in index.json reaches.
    pub orphans: Vec<String>,
    /// Temp files and staging directories of writers that died.
    pub temp_files: Vec<String>,
    /// Temp files of writers still running (not a defect).
    pub temp_in_use: Vec<String>,
    /// What `--repair` removed.
    pub repaired: Vec<String>,
}

/// Checks `oci:DIR` or `oci-archive:FILE`; with `repair`, removes orphans
/// and dead writers' temp files of a layout.
pub fn fsck(reference: &Reference, repair: bool) -> Result<Report> {
    match reference {
        Reference::Layout { path, .. } => fsck_layout(path, repair),
        Reference::Archive { path, .. } => {
            if repair {
                return Err(Error::Unsupported(format!(
                    "{}: --repair works on layout directories only (an archive is rewritten whole: copy it with `ocipack copy --all`)",
                    path.display()
                )));
            }
            fsck_archive(path)
        }
        Reference::Registry(_) | Reference::DockerArchive { .. } => Err(Error::Unsupported(
            format!("{reference}: fsck checks oci: layouts and oci-archive: files"),
        )),
    }
}

fn fsck_layout(dir: &Path, repair: bool) -> Result<Report> {
    let layout = Layout::open(dir)?;
    let src = LayoutSource {
        layout: layout.clone(),
        selector: None,
    };
    let mut problems = Vec::new();
    let stored = list_layout_blobs(dir, &mut problems)?;
    let mut check = Checker::new(&src, stored, problems);
    check.hash_stored();
    let index_bytes = read_index(dir);
    let referenced = check.walk(index_bytes.as_ref().map(|b| b.as_slice()), "index.json");
    let mut orphans = check.orphans(&referenced);
    let (mut temp_files, temp_in_use) = temps(dir)?;
    let mut repaired = Vec::new();
    if repair {
        let _lock = layout.lock()?;
        // A writer may have tagged something since: walk again (cheap, the
        // hashes are cached) before deciding what is an orphan.
        let now = read_index(dir);
        if now.as_ref().ok() != index_bytes.as_ref().ok() {
            let referenced = check.walk(now.as_ref().map(|b| b.as_slice()), "index.json");
            orphans = check.orphans(&referenced);
        }
        if now.is_ok() {
            for o in &orphans {
                let p = layout.blob_path(&parse_sha256(o)?)?;
                match fs::remove_file(&p) {
                    Ok(()) => repaired.push(format!("removed orphan blob {o}")),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(p, e)),
                }
            }
            orphans.clear();
        }
        for p in atomic::remove_stale_temp(dir, TEMP_PREFIX)? {
            repaired.push(format!("removed temp file {}", p.display()));
        }
        temp_files = temps(dir)?.0;
    }
    Ok(check.report(
        format!("oci:{}", dir.display()),
        orphans,
        temp_files,
        temp_in_use,
        repaired,
    ))
}

fn fsck_archive(path: &Path) -> Result<Report> {
    let archive = ArchiveReader::open(path)?;
    let stored: Vec<(String, u64)> = archive.blob_list();
    let index = archive.index().to_bytes()?;
    let src = ArchiveSource { archive, tag: None };
    let mut check = Checker::new(&src, stored, Vec::new());
    check.hash_stored();
    let referenced = check.walk(Ok(&index), "index.json");
    let orphans = check.orphans(&referenced);
    Ok(check.report(
        format!("oci-archive:{}", path.display()),
        orphans,
        Vec::new(),
        Vec::new(),
        Vec::new(),
    ))
}

fn read_index(dir: &Path) -> std::result::Result<Vec<u8>, String> {
    let p = dir.join("index.json");
    let f = File::open(&p).map_err(|e| Error::io(&p, e).to_string())?;
    let mut bytes = Vec::new();
    f.take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&p, e).to_string())?;
    if bytes.len() as u64 > MAX_METADATA_SIZE {
        return Err(format!(
            "{}: too large (over {MAX_METADATA_SIZE} bytes)",
            p.display()
        ));
    }
    Ok(bytes)
}

/// `blobs/sha256/*` with their sizes; anything else under `blobs/` is a
/// stray file.
fn list_layout_blobs(dir: &Path, problems: &mut Vec<Problem>) -> Result<Vec<(String, u64)>> {
    let blobs = dir.join("blobs");
    let mut out = Vec::new();
    let rd = match fs::read_dir(&blobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&blobs, e)),
    };
    for alg in rd {
        let alg = alg.map_err(|e| Error::io(&blobs, e))?;
        if alg.file_name() != "sha256" || !alg.path().is_dir() {
            problems.push(stray(&alg.path()));
            continue;
        }
        let d = alg.path();
        for e in fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let e = e.map_err(|e| Error::io(&d, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().map_err(|err| Error::io(e.path(), err))?;
            if !meta.is_file() || parse_sha256(&format!("sha256:{name}")).is_err() {
                problems.push(stray(&e.path()));
                continue;
            }
            out.push((format!("sha256:{name}"), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

fn stray(p: &Path) -> Problem {
    Problem {
        kind: "stray-file",
        object: p.display().to_string(),
        message: "not a blob named by its sha256 digest".into(),
    }
}

/// Temp entries of the layout root: (dead writers', live writers').
fn temps(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let (mut dead, mut live) = (Vec::new(), Vec::new());
    for p in atomic::temp_entries(dir, TEMP_PREFIX)? {
        let name = p.display().to_string();
        if atomic::temp_in_use(&p) {
            live.push(name);
        } else {
            dead.push(name);
        }
    }
    Ok((dead, live))
}

/// Which checks a descriptor gets.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// An index or manifest (from index.json or an index).
    Manifest,
    /// A manifest's config; `true` for an image config (diff_ids apply).
    Config,
    /// Any other blob a manifest lists.
    Blob,
}

struct Checker<'a> {
    src: &'a dyn ImageSource,
    /// digest -> stored size.
    stored: BTreeMap<String, u64>,
    /// Stored blobs whose content does not match their name.
    corrupt: BTreeSet<String>,
    problems: Vec<Problem>,
    /// layer digest -> its uncompressed digest (or why it is unreadable).
    diff_ids: HashMap<String, std::result::Result<Digest, String>>,
    manifests: BTreeSet<String>,
}

impl<'a> Checker<'a> {
    fn new(src: &'a dyn ImageSource, stored: Vec<(String, u64)>, problems: Vec<Problem>) -> Self {
        Checker {
            src,
            stored: stored.into_iter().collect(),
            corrupt: BTreeSet::new(),
            problems,
            diff_ids: HashMap::new(),
            manifests: BTreeSet::new(),
        }
    }

    fn problem(
        &mut self,
        kind: &'static str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        let p = Problem {
            kind,
            object: object.into(),
            message: message.into(),
        };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    /// Hashes every stored blob (streamed).
    fn hash_stored(&mut self) {
        let all: Vec<(String, u64)> = self.stored.iter().map(|(d, s)| (d.clone(), *s)).collect();
        for (digest, size) in all {
            let Ok(d) = parse_sha256(&digest) else {
                continue;
            };
            let desc =
                Descriptor::new(MediaType::Other("application/octet-stream".into()), size, d);
            let r = self.src.open_blob(&desc).and_then(|mut r| {
                io::copy(&mut r, &mut io::sink()).map_err(|e| Error::from_io(&digest, e))
            });
            if let Err(e) = r {
                self.corrupt.insert(digest.clone());
                self.problem("corrupt-blob", &digest, e.to_string());
            }
        }
    }

    /// Walks everything `index` reaches; returns the digests reached.
    fn walk(&mut self, index: std::result::Result<&[u8], &String>, what: &str) -> BTreeSet<String> {
        let mut reached = BTreeSet::new();
        let entries = match index
            .map_err(|e| e.clone())
            .and_then(|b| IndexFile::parse(b, what).map_err(|e| e.to_string()))
            .and_then(|i| i.entries().map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                self.problem("invalid-index", what, e);
                return reached;
            }
        };
        let mut queue: Vec<(Descriptor, Role, Option<String>)> = entries
            .into_iter()
            .map(|d| (d, Role::Manifest, None))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((desc, role, parent)) = queue.pop() {
            let digest = desc.digest().to_string();
            reached.insert(digest.clone());
            if !seen.insert((digest.clone(), role == Role::Manifest)) {
                continue;
            }
            if !self.present(&desc, parent.as_deref()) {
                continue;
            }
            if role != Role::Manifest {
                continue;
            }
            let raw = match self
                .read(&desc)
                .and_then(|b| RawManifest::from_bytes(b, Some(desc.media_type().as_ref())))
            {
                Ok(r) => r,
                Err(e) => {
                    self.problem("unparseable", &digest, e.to_string());
                    continue;
                }
            };
            self.manifests.insert(digest.clone());
            if raw.kind().is_index() {
                match raw.index() {
                    Ok(i) => queue.extend(
                        i.manifests()
                            .iter()
                            .map(|c| (c.clone(), Role::Manifest, Some(digest.clone()))),
                    ),
                    Err(e) => self.problem("unparseable", &digest, e.to_string()),
                }
                continue;
            }
            match raw.manifest() {
                Ok(m) => {
                    reached.insert(m.config().digest().to_string());
                    for l in m.layers() {
                        reached.insert(l.digest().to_string());
                    }
                    self.check_image(&digest, m.config(), m.layers());
                    queue.extend(
                        std::iter::once((m.config().clone(), Role::Config, Some(digest.clone())))
                            .chain(
                                m.layers()
                                    .iter()
                                    .map(|l| (l.clone(), Role::Blob, Some(digest.clone()))),
                            ),
                    );
                }
                Err(e) => self.problem("unparseable", &digest, e.to_string()),
            }
        }
        reached
    }

    /// Whether a descriptor's blob is stored, uncorrupted, at its size.
    fn present(&mut self, desc: &Descriptor, parent: Option<&str>) -> bool {
        let digest = desc.digest().to_string();
        let from = parent
            .map(|p| format!(" (listed by {p})"))
            .unwrap_or_default();
        match self.stored.get(&digest) {
            None => {
                let mt = desc.media_type().to_string();
                // Foreign / non-distributable layers are fetched from
                // elsewhere by design.
                if !(mt.contains("foreign") || mt.contains("nondistributable")) {
                    self.problem(
                        "missing-blob",
                        &digest,
                        format!("blob {digest} is missing{from}"),
                    );
                }
                false
            }
            Some(&size) if size != desc.size() => {
                self.problem(
                    "size-mismatch",
                    &digest,
                    format!(
                        "blob {digest} has {size} bytes, its descriptor says {}{from}",
                        desc.size()
                    ),
                );
                false
            }
            _ => !self.corrupt.contains(&digest),
        }
    }

    fn read(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.src.read_blob(desc)
    }

    /// Config parseable; every layer's uncompressed digest equals its
    /// diff_id (image configs only; artifacts have no diff_ids).
    fn check_image(&mut self, manifest: &str, config: &Descriptor, layers: &[Descriptor]) {
        let cfg_mt = config.media_type().to_string();
        let is_image = config.media_type() == &MediaType::ImageConfig || cfg_mt == DOCKER_CONFIG;
        if !self.present(config, Some(manifest)) {
            return;
        }
        let bytes = match self.read(config) {
            Ok(b) => b,
            Err(e) => {
                self.problem("unparseable", config.digest().to_string(), e.to_string());
                return;
            }
        };
        if !is_image {
            if serde_json::from_slice::<serde_json::Value>(&bytes).is_err()
                && cfg_mt.ends_with("json")
            {
                self.problem(
                    "unparseable",
                    config.digest().to_string(),
                    "config is not JSON",
                );
            }
            return;
        }
        let cfg: oci_spec::image::ImageConfiguration = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                self.problem(
                    "unparseable",
                    config.digest().to_string(),
                    format!("config {}: {e}", config.digest()),
                );
                return;
            }
        };
        let diff_ids = cfg.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            self.problem(
                "diff-id-mismatch",
                config.digest().to_string(),
                format!(
                    "config {} lists {} diff_ids for {} layers (manifest {manifest})",
                    config.digest(),
                    diff_ids.len(),
                    layers.len()
                ),
            );
        }
        for (layer, want) in layers.iter().zip(diff_ids) {
            if !self.present(layer, Some(manifest)) {
                continue;
            }
            let digest = layer.digest().to_string();
            let got = match self.diff_ids.get(&digest) {
                Some(r) => r.clone(),
                None => {
                    let r = uncompressed_digest(self.src, layer).map_err(|e| e.to_string());
                    self.diff_ids.insert(digest.clone(), r.clone());
                    r
                }
            };
            match got {
                Ok(d) if d.to_string() == *want => {}
                Ok(d) => self.problem(
                    "diff-id-mismatch",
                    &digest,
                    format!(
                        "layer {digest}: uncompressed digest {d}, config {} says diff_id {want}",
                        config.digest()
                    ),
                ),
                Err(e) => self.problem("bad-layer", &digest, format!("layer {digest}: {e}")),
            }
        }
    }

    fn orphans(&self, reached: &BTreeSet<String>) -> Vec<String> {
        self.stored
            .keys()
            .filter(|d| !reached.contains(*d))
            .cloned()
            .collect()
    }

    fn report(
        self,
        target: String,
        orphans: Vec<String>,
        temp_files: Vec<String>,
        temp_in_use: Vec<String>,
        repaired: Vec<String>,
    ) -> Report {
        let mut problems = self.problems;
        problems.sort();
        Report {
            target,
            ok: problems.is_empty() && orphans.is_empty() && temp_files.is_empty(),
            blobs: self.stored.len(),
            manifests: self.manifests.len(),
            layers: self.diff_ids.len(),
            problems,
            orphans,
            temp_files,
            temp_in_use,
            repaired,
        }
    }
}

/// Decompresses a layer to its end and hashes the tar stream.
fn uncompressed_digest(src: &dyn ImageSource, layer: &Descriptor) -> Result<Digest> {
    let c = Compression::of_media_type(layer.media_type())?;
    let blob = src.open_blob(layer)?;
    let r = crate::layer::decompress(Box::new(BufReader::with_capacity(1 << 20, blob)), c)?;
    let mut h = HashingReader::new(r);
    io::copy(&mut h, &mut io::sink()).map_err(|e| Error::from_io(layer.digest().to_string(), e))?;
    Ok(h.finish().0)
}
