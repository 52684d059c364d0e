//! Publishing an index: resolve the per-arch children, gate them, write
//! children (by digest) then the index then its tags, re-read everything
//! through a fresh source, and hand out pins.
//!
//! `--repair` is this same path: `manifest` never builds images, it only
//! indexes what the per-arch tags hold, so a lost index is rebuilt with the
//! same bytes as long as the children did not change.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::image::{Descriptor, Digest};
use serde::Serialize;

use crate::copy::run_parallel;
use crate::error::{Error, Result};
use crate::index::assemble::{assemble_index, IndexFormat};
use crate::index::children::{
    expand_template, parent_now, resolve_child, Child, ChildInfo, MissingChild, DEFAULT_TEMPLATE,
};
use crate::index::gates::{self, FreshCheck, Gate, GateResult};
use crate::index::pins::Pins;
use crate::manifest::RawManifest;
use crate::platform::TargetArch;
use crate::reference::{validate_tag, Reference};
use crate::registry::{Progress, RegistryOptions, RegistrySink, TransferLog};
use crate::transport::{open_sink_with, open_source_with, ImageSink, ImageSource};

/// Opens a reference for reading (normally [`open_source_with`]).
pub type Reopen = dyn Fn(&Reference) -> Result<Box<dyn ImageSource>>;

/// What to index and where.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The index's reference, with its tag (`oci:out:latest-cross`,
    /// `docker://host/repo:latest-cross`). The index is written to its store.
    pub image: Reference,
    /// The arches the index must hold, in entry order.
    pub target_arches: Vec<TargetArch>,
    /// One reference per arch, in `target_arches` order (see [`IndexOptions::new`]).
    pub children: Vec<(TargetArch, Reference)>,
    /// More tags for the index, in the same store.
    pub aliases: Vec<Reference>,
    /// `None`: Docker manifest list if every child is a Docker manifest, else OCI.
    pub format: Option<IndexFormat>,
    /// Copy children that live in another store into the index's store
    /// (tagged `<tag>-<arch>` there). Without it they must already be there.
    pub push: bool,
    /// Rebuild the index from the existing per-arch images only; children
    /// without provenance (a run id) are refused.
    pub repair: bool,
    /// Let failing gates through (recorded in the report).
    pub force: bool,
    /// Resolve, build and gate, but write nothing.
    pub dry_run: bool,
    /// How to talk to the index's registry (also used to read children
    /// in that repository and for the freshness re-reads).
    pub registry: RegistryOptions,
    /// How to read children that live in another store; `None`: as
    /// `registry`.
    pub source_registry: Option<RegistryOptions>,
}

impl IndexOptions {
    /// Options with the children named by `template` (default
    /// `{image}-{arch}`: the per-arch tags `<tag>-<arch>` beside the index).
    pub fn new(
        image: Reference,
        target_arches: Vec<TargetArch>,
        template: Option<&str>,
    ) -> Result<IndexOptions> {
        let template = template.unwrap_or(DEFAULT_TEMPLATE);
        let children = target_arches
            .iter()
            .map(|a| Ok((*a, expand_template(&image, template, *a)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexOptions {
            image,
            target_arches,
            children,
            aliases: Vec::new(),
            format: None,
            push: false,
            repair: false,
            force: false,
            dry_run: false,
            registry: RegistryOptions::default(),
            source_registry: None,
        })
    }

    /// The options a child at `r` is read with.
    fn registry_for(&self, r: &Reference) -> &RegistryOptions {
        match &self.source_registry {
            Some(s) if !same_store(r, &self.image) => s,
            _ => &self.registry,
        }
    }
}

/// One child in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChildReport {
    #[serde(flatten)]
    pub info: ChildInfo,
    /// The tag it has in the index's store.
    pub destination: String,
    /// Copied from another store (`--push`).
    pub copied: bool,
}

/// What `manifest` did (or, on `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub image: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub format: IndexFormat,
    pub children: Vec<ChildReport>,
    pub missing: Vec<MissingChild>,
    pub gates: Vec<GateResult>,
    /// Gates that failed and were let through by `--force`.
    pub forced: Vec<Gate>,
    /// Tags written (or to be written), in the order they are set.
    pub tags: Vec<String>,
    /// Reference -> `REPO@sha256:…` for everything written.
    pub pins: Pins,
    pub repair: bool,
    pub dry_run: bool,
    pub written: bool,
    /// For a registry destination: blobs uploaded or already there,
    /// manifests and tags written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferLog>,
}

/// Resolved children, the index bytes and the pre-write gates.
pub struct IndexPlan {
    opts: IndexOptions,
    children: Vec<Child>,
    /// Per child: its reference in the index's store, and whether to copy it.
    destinations: Vec<(Reference, bool)>,
    missing: Vec<MissingChild>,
    format: IndexFormat,
    index: RawManifest,
    gates: Vec<GateResult>,
    forced: Vec<Gate>,
}

/// Resolves, gates and (unless `dry_run`) writes the index. Fails naming
/// the gate when a gate fails and `force` is off.
pub fn publish_index(opts: &IndexOptions) -> Result<IndexReport> {
    let mut plan = plan_index(opts)?;
    plan.check_gates()?;
    if opts.dry_run {
        return Ok(plan.report());
    }
    plan.publish()
}

/// Resolves every child and builds the index in memory; writes nothing.
pub fn plan_index(opts: &IndexOptions) -> Result<IndexPlan> {
    let image_tag = check_destination(opts)?;
    let mut children = Vec::new();
    let mut missing = Vec::new();
    for (arch, r) in &opts.children {
        let registry = opts.registry_for(r);
        match resolve_child(*arch, r, registry)? {
            Ok(mut c) => {
                c.info.parent_now = parent_now(&c, &image_tag, registry)?;
                children.push(c)
            }
            Err(m) => missing.push(m),
        }
    }
    if children.is_empty() {
        return Err(Error::Gate {
            gate: Gate::Completeness.to_string(),
            reason: format!(
                "none of the children exist: {}",
                missing
                    .iter()
                    .map(|m| m.reference.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut destinations = Vec::new();
    for c in &children {
        if same_store(&c.reference, &opts.image) {
            destinations.push((c.reference.clone(), false));
        } else if opts.push && !opts.repair {
            let tag = format!("{image_tag}-{}", c.info.arch);
            destinations.push((opts.image.with_tag(&tag)?, true));
        } else {
            return Err(Error::invalid(
                c.reference.to_string(),
                format!(
                    "is not in the store of {}; {}",
                    opts.image,
                    if opts.repair {
                        "--repair only indexes images already there"
                    } else {
                        "pass --push to copy it there"
                    }
                ),
            ));
        }
    }
    let kinds: Vec<_> = children.iter().map(|c| c.kind()).collect();
    let format = IndexFormat::choose(opts.format, &kinds)?;
    let entries: Vec<Descriptor> = children.iter().map(|c| c.entry()).collect();
    let index = assemble_index(&entries, format)?;
    let infos: Vec<ChildInfo> = children.iter().map(|c| c.info.clone()).collect();
    let gates = vec![
        gates::completeness(&opts.target_arches, &infos, &missing),
        gates::coherence(&infos, opts.repair),
    ];
    Ok(IndexPlan {
        opts: opts.clone(),
        children,
        destinations,
        missing,
        format,
        index,
        gates,
        forced: Vec::new(),
    })
}

impl IndexPlan {
    /// The index digest this plan writes.
    pub fn index(&self) -> &RawManifest {
        &self.index
    }

    /// Applies the pre-write gates: an error naming the failed gates, or
    /// (with `force`) the list of overridden gates.
    pub fn check_gates(&mut self) -> Result<Vec<Gate>> {
        let forced = gates::enforce(&mut self.gates, self.opts.force)?;
        for g in self.gates.iter().filter(|g| g.forced) {
            tracing::info!(
                "{} gate overridden by --force: {}",
                g.gate,
                g.problems.join("; ")
            );
        }
        self.forced.extend(forced.iter().copied());
        Ok(forced)
    }

    /// The report as of now (nothing written yet).
    pub fn report(&self) -> IndexReport {
        let desc = self.index.descriptor();
        IndexReport {
            image: self.opts.image.to_string(),
            digest: desc.digest().to_string(),
            media_type: desc.media_type().to_string(),
            size: desc.size(),
            format: self.format,
            children: self
                .children
                .iter()
                .zip(&self.destinations)
                .map(|(c, (d, copied))| ChildReport {
                    info: c.info.clone(),
                    destination: d.to_string(),
                    copied: *copied,
                })
                .collect(),
            missing: self.missing.clone(),
            gates: self.gates.clone(),
            forced: self.forced.clone(),
            tags: self.tags().iter().map(|(r, _)| r.to_string()).collect(),
            pins: Pins::new(),
            repair: self.opts.repair,
            dry_run: self.opts.dry_run,
            written: false,
            transfer: None,
        }
    }

    /// Tags to set, in order: copied children, the index, its aliases.
    fn tags(&self) -> Vec<(Reference, Descriptor)> {
        let mut out = Vec::new();
        for (c, (dest, copied)) in self.children.iter().zip(&self.destinations) {
            if *copied {
                out.push((dest.clone(), c.entry()));
            }
        }
        let idx = self.index.descriptor();
        out.push((self.opts.image.clone(), idx.clone()));
        for a in &self.opts.aliases {
            out.push((a.clone(), idx.clone()));
        }
        out
    }

    /// Writes children, index and tags, then checks freshness. Call
    /// [`IndexPlan::check_gates`] first.
    pub fn publish(self) -> Result<IndexReport> {
        // The re-reads draw no progress bars.
        let quiet = RegistryOptions {
            progress: Progress::hidden(),
            ..self.opts.registry.clone()
        };
        let reopen = move |r: &Reference| open_source_with(r, &quiet);
        match &self.opts.image {
            Reference::Registry(reg) => {
                let sink = RegistrySink::open(reg, &self.opts.registry)?;
                let log = sink.log();
                let mut report = self.publish_to(Box::new(sink), &reopen)?;
                report.transfer = log.lock().ok().map(|l| l.clone());
                Ok(report)
            }
            other => {
                let sink = open_sink_with(other, &self.opts.registry)?;
                self.publish_to(sink, &reopen)
            }
        }
    }

    /// [`IndexPlan::publish`] into an open sink; `reopen` opens the fresh
    /// sources the freshness gate reads through (a new connection, no
    /// caches). For callers that already hold a sink, and for tests.
    pub fn publish_to(mut self, sink: Box<dyn ImageSink>, reopen: &Reopen) -> Result<IndexReport> {
        for (c, (_, copied)) in self.children.iter().zip(&self.destinations) {
            if *copied {
                copy_blobs(c, sink.as_ref())?;
            }
        }
        for c in &self.children {
            sink.put_manifest(&c.raw)?;
        }
        // A child copied here brings its SBOM and provenance along.
        for (c, (_, copied)) in self.children.iter().zip(&self.destinations) {
            if *copied {
                crate::referrers::copy_referrers(
                    c.source.as_ref(),
                    &c.raw.descriptor(),
                    sink.as_ref(),
                )?;
            }
        }
        sink.put_manifest(&self.index)?;
        let tags: Vec<(String, Descriptor)> = self
            .tags()
            .into_iter()
            .map(|(r, d)| {
                let t = r
                    .tag()
                    .map(str::to_string)
                    .ok_or_else(|| Error::Reference {
                        input: r.to_string(),
                        reason: "needs a tag".into(),
                    })?;
                Ok((t, d))
            })
            .collect::<Result<_>>()?;
        sink.set_tags(&tags)?;
        sink.commit()?;

        let (checks, served) = self.reread(reopen);
        let mut fresh = vec![gates::freshness(&checks)];
        let forced = gates::enforce(&mut fresh, self.opts.force).map_err(|e| match e {
            Error::Gate { gate, reason } => Error::Gate {
                gate,
                reason: format!("the index was written, but {reason}"),
            },
            other => other,
        })?;
        self.forced.extend(forced);
        self.gates.extend(fresh);

        let mut report = self.report();
        report.written = true;
        for (r, d) in served {
            report.pins.insert(r.to_string(), r.pin(&d));
        }
        Ok(report)
    }

    /// Re-reads every tag through a new source: each child tag must hold the
    /// child, each index entry must equal its child tag's digest, and the
    /// index tag and aliases must hold the index. Returns the checks and the
    /// digests served, for pins.
    fn reread(&self, reopen: &Reopen) -> (Vec<FreshCheck>, Vec<(Reference, Digest)>) {
        let mut checks = Vec::new();
        let mut served = Vec::new();
        let mut child_now = Vec::new();
        for (c, (dest, _)) in self.children.iter().zip(&self.destinations) {
            let now = resolve_fresh(reopen, dest);
            if let Ok(d) = &now {
                served.push((dest.clone(), d.clone()));
            }
            child_now.push(now.as_ref().map(|d| d.to_string()).map_err(Clone::clone));
            checks.push(FreshCheck {
                reference: dest.to_string(),
                expected: c.raw.digest().to_string(),
                actual: now.map(|d| d.to_string()),
            });
        }
        let index_digest = self.index.digest().to_string();
        for r in std::iter::once(&self.opts.image).chain(&self.opts.aliases) {
            let now = resolve_fresh(reopen, r);
            if let Ok(d) = &now {
                served.push((r.clone(), d.clone()));
            }
            checks.push(FreshCheck {
                reference: r.to_string(),
                expected: index_digest.clone(),
                actual: now.map(|d| d.to_string()),
            });
        }
        match read_entries(reopen, &self.opts.image) {
            Ok(entries) => {
                for (i, (c, now)) in self.children.iter().zip(&child_now).enumerate() {
                    let (dest, _) = &self.destinations[i];
                    let entry = entries.get(i).map(|d| d.digest().to_string());
                    checks.push(FreshCheck {
                        reference: format!("{} entry {} vs {dest}", self.opts.image, c.info.arch),
                        expected: entry.unwrap_or_else(|| "(no entry)".into()),
                        actual: now.clone(),
                    });
                }
            }
            Err(e) => checks.push(FreshCheck {
                reference: self.opts.image.to_string(),
                expected: index_digest,
                actual: Err(e.to_string()),
            }),
        }
        (checks, served)
    }
}

/// The index's tag; refuses destinations `manifest` cannot write to.
fn check_destination(opts: &IndexOptions) -> Result<String> {
    if let Reference::Archive { .. } | Reference::DockerArchive { .. } = opts.image {
        return Err(Error::Unsupported(format!(
            "{}: an index is written to an OCI layout or a registry, not an archive",
            opts.image
        )));
    }
    let tag = opts
        .image
        .tag()
        .ok_or_else(|| Error::Reference {
            input: opts.image.to_string(),
            reason: "the index reference needs a tag (e.g. :latest-cross)".into(),
        })?
        .to_string();
    let mut seen = HashSet::new();
    for a in &opts.target_arches {
        if !seen.insert(*a) {
            return Err(Error::invalid(
                "--target-arches",
                format!("{a} is listed twice"),
            ));
        }
    }
    if opts.target_arches.is_empty() {
        return Err(Error::invalid("--target-arches", "no arches given"));
    }
    for a in &opts.aliases {
        if !same_store(a, &opts.image) || a.tag().is_none() {
            return Err(Error::invalid(
                format!("alias {a}"),
                format!("must be a tag in the same store as {}", opts.image),
            ));
        }
    }
    Ok(tag)
}

/// An alias given as a bare tag names a tag beside the index.
pub fn alias_reference(image: &Reference, alias: &str) -> Result<Reference> {
    if validate_tag(alias).is_ok() {
        image.with_tag(alias)
    } else {
        Reference::parse(alias)
    }
}

/// Whether two references name the same store (layout directory, archive
/// file, registry repository).
pub fn same_store(a: &Reference, b: &Reference) -> bool {
    match (a, b) {
        (Reference::Layout { path: p, .. }, Reference::Layout { path: q, .. })
        | (Reference::Archive { path: p, .. }, Reference::Archive { path: q, .. }) => {
            same_path(p, q)
        }
        (Reference::Registry(x), Reference::Registry(y)) => {
            x.host == y.host && x.repository == y.repository
        }
        _ => false,
    }
}

fn same_path(p: &Path, q: &Path) -> bool {
    if p == q {
        return true;
    }
    matches!(
        (std::fs::canonicalize(p), std::fs::canonicalize(q)),
        (Ok(a), Ok(b)) if a == b
    )
}

/// Copies a child's config and layers that the sink lacks.
fn copy_blobs(c: &Child, sink: &dyn ImageSink) -> Result<()> {
    let m = &c.image.manifest;
    let mut seen = HashSet::new();
    let blobs: Vec<Descriptor> = std::iter::once(m.config())
        .chain(m.layers())
        .filter(|d| seen.insert(d.digest().to_string()))
        .cloned()
        .collect();
    run_parallel(&blobs, sink.max_parallel(), |d| {
        // put_blob_from: a registry that loses an upload can restart it.
        if !sink.has_blob(d)? {
            sink.put_blob_from(d, c.source.as_ref())?;
        }
        Ok(())
    })
}

/// What a tag resolves to through a source opened just now (no caches).
fn resolve_fresh(reopen: &Reopen, r: &Reference) -> std::result::Result<Digest, String> {
    reopen(r)
        .and_then(|s| s.resolve())
        .map(|d| d.digest().clone())
        .map_err(|e| e.to_string())
}

/// The entries of the index a tag serves, read through a new source.
fn read_entries(reopen: &Reopen, r: &Reference) -> Result<Vec<Descriptor>> {
    let src = reopen(r)?;
    let d = src.resolve()?;
    let raw = src.read_manifest(&d)?;
    Ok(raw.index()?.manifests().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::{copy_image, CopyOptions};
    use crate::layout::Layout;
    // Layouts only: registry options play no part.
    fn open_source(r: &Reference) -> Result<Box<dyn ImageSource>> {
        open_source_with(r, &RegistryOptions::default())
    }

    fn open_sink(r: &Reference) -> Result<Box<dyn ImageSink>> {
        open_sink_with(r, &RegistryOptions::default())
    }

    /// A layout with `latest-cross-<arch>` copied from the fixtures.
    fn children_in(dir: &Path) -> Reference {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/base");
        for a in TargetArch::ALL {
            let src = open_source(&Reference::Layout {
                path: fixtures.clone(),
                selector: Some(crate::reference::Selector::Tag(format!("base-{a}"))),
            })
            .unwrap();
            let dst =
                open_sink(&Reference::parse(&format!("oci:{}", dir.display())).unwrap()).unwrap();
            let opts = CopyOptions {
                tags: vec![format!("latest-cross-{a}")],
                ..CopyOptions::default()
            };
            copy_image(src.as_ref(), dst, &opts).unwrap();
        }
        Reference::parse(&format!("oci:{}:latest-cross", dir.display())).unwrap()
    }

    #[test]
    fn freshness_fails_when_the_store_serves_something_else() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let image = children_in(&a);
        // What a "registry" serves after the push: the amd64 tag moved to
        // another image, and the index tag is not there.
        children_in(&b);
        let lb = Layout::open(&b).unwrap();
        let arm = lb
            .resolve(Some(&crate::reference::Selector::Tag(
                "latest-cross-arm64".into(),
            )))
            .unwrap();
        lb.set_tags(&[("latest-cross-amd64".into(), arm)]).unwrap();
        let served = move |r: &Reference| -> Result<Box<dyn ImageSource>> {
            let Reference::Layout { selector, .. } = r else {
                unreachable!()
            };
            open_source(&Reference::Layout {
                path: b.clone(),
                selector: selector.clone(),
            })
        };

        let opts = IndexOptions::new(image.clone(), TargetArch::ALL.to_vec(), None).unwrap();
        let mut plan = plan_index(&opts).unwrap();
        plan.check_gates().unwrap();
        let err = plan
            .publish_to(open_sink(&image).unwrap(), &served)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("freshness gate failed: the index was written"),
            "{msg}"
        );
        assert!(msg.contains("latest-cross-amd64 resolves to"), "{msg}");
        assert!(msg.contains("latest-cross: tag"), "{msg}");

        let mut forced = opts.clone();
        forced.force = true;
        let mut plan = plan_index(&forced).unwrap();
        plan.check_gates().unwrap();
        let report = plan
            .publish_to(open_sink(&image).unwrap(), &served)
            .unwrap();
        assert_eq!(report.forced, vec![Gate::Freshness]);
        let fresh = report.gates.last().unwrap();
        assert!(fresh.forced && !fresh.passed);
        // Honest publishing of the same plan passes.
        let report = publish_index(&opts).unwrap();
        assert!(report.forced.is_empty() && report.written);
    }

    #[test]
    fn stores() {
        let p = |s: &str| Reference::parse(s).unwrap();
        assert!(same_store(&p("oci:a/b:x"), &p("oci:a/b:y")));
        assert!(!same_store(&p("oci:a/b:x"), &p("oci:a/c:x")));
        assert!(same_store(
            &p("docker://h:5000/r/x:a"),
            &p("docker://h:5000/r/x:b")
        ));
        assert!(!same_store(&p("docker://h:5000/r/x:a"), &p("oci:r/x:a")));
        let img = p("oci:l:latest-cross");
        assert_eq!(
            alias_reference(&img, "latest").unwrap().to_string(),
            "oci:l:latest"
        );
        assert_eq!(
            alias_reference(&img, "oci:l:v1").unwrap().to_string(),
            "oci:l:v1"
        );
    }
}
