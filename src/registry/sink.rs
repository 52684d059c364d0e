//! Writing images to a registry, in the order that keeps every tag
//! complete: blobs, manifests by digest, then tags (the caller, `copy`,
//! pushes per-arch manifests before the index that lists them).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use oci_spec::image::Descriptor;
use serde::Serialize;

use super::client::{block_on, RegistryClient};
use super::upload::{blob_exists, push_blob, Opener, Pushed};
use super::{manifests, RegistryOptions};
use crate::endpoint::{ImageSink, ImageSource};
use crate::error::{Error, Result};
use crate::manifest::RawManifest;
use crate::reference::RegistryRef;

/// What a push did, for `--json` and summaries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferLog {
    /// Blobs uploaded.
    pub pushed: Vec<String>,
    /// Blobs the repository already had.
    pub skipped: Vec<String>,
    /// Blobs mounted from another repository of the registry.
    pub mounted: Vec<MountedBlob>,
    /// Bytes uploaded (blob sizes; retries not counted).
    pub bytes_pushed: u64,
    /// Manifests stored, in order, as `HOST/REPO@DIGEST` pins.
    pub manifests: Vec<String>,
    /// Tags set, in order.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MountedBlob {
    pub digest: String,
    pub from: String,
}

/// Per-digest gate: the first caller uploads, later callers wait and see
/// the result, so a blob shared by several images goes up once.
type Gate = Arc<Mutex<bool>>;

/// A repository in a registry, as a destination.
pub struct RegistrySink {
    client: RegistryClient,
    reference: RegistryRef,
    opts: RegistryOptions,
    log: Arc<Mutex<TransferLog>>,
    /// Results of `has_blob`: true = present, false = checked absent.
    known: Mutex<HashMap<String, bool>>,
    gates: Mutex<HashMap<String, Gate>>,
    /// Manifests stored in this session, for tagging without refetching.
    stored: Mutex<HashMap<String, RawManifest>>,
    reported: Mutex<HashSet<String>>,
}

impl RegistrySink {
    pub fn open(reference: &RegistryRef, opts: &RegistryOptions) -> Result<RegistrySink> {
        let mut scopes = vec![format!("repository:{}:pull,push", reference.repository)];
        for from in &opts.mount_from {
            if from != &reference.repository {
                scopes.push(format!("repository:{from}:pull"));
            }
        }
        Ok(RegistrySink {
            client: RegistryClient::for_repository(
                &reference.host,
                &reference.repository,
                scopes,
                opts,
            )?,
            reference: reference.clone(),
            opts: opts.clone(),
            log: Arc::default(),
            known: Mutex::default(),
            gates: Mutex::default(),
            stored: Mutex::default(),
            reported: Mutex::default(),
        })
    }

    /// The record of this push; stays readable after the sink is consumed.
    pub fn log(&self) -> Arc<Mutex<TransferLog>> {
        self.log.clone()
    }

    fn record(&self, f: impl FnOnce(&mut TransferLog)) {
        if let Ok(mut l) = self.log.lock() {
            f(&mut l);
        }
    }

    fn record_skipped(&self, digest: &str) {
        let first = self
            .reported
            .lock()
            .map(|mut r| r.insert(digest.to_string()))
            .unwrap_or(false);
        if first {
            self.record(|l| l.skipped.push(digest.to_string()));
            self.opts.progress.skipped();
        }
    }

    fn gate(&self, digest: &str) -> Gate {
        let mut g = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(digest.to_string()).or_default().clone()
    }

    fn push(&self, desc: &Descriptor, opener: &mut Opener<'_>) -> Result<bool> {
        let digest = desc.digest().to_string();
        let gate = self.gate(&digest);
        let mut done = gate.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return Ok(false);
        }
        let known = self.known.lock().ok().and_then(|k| k.get(&digest).copied());
        if known == Some(true) {
            *done = true;
            return Ok(false);
        }
        let bar = self.opts.progress.blob(desc);
        let result = block_on(push_blob(
            &self.client,
            &self.reference.repository,
            desc,
            known.is_none(),
            opener,
            &bar,
        ))??;
        drop(bar);
        *done = true;
        if let Ok(mut r) = self.reported.lock() {
            r.insert(digest.clone());
        }
        match result {
            Pushed::Existed => {
                self.record(|l| l.skipped.push(digest));
                self.opts.progress.skipped();
                Ok(false)
            }
            Pushed::Mounted(from) => {
                self.record(|l| l.mounted.push(MountedBlob { digest, from }));
                self.opts.progress.mounted();
                Ok(true)
            }
            Pushed::Uploaded => {
                self.record(|l| {
                    l.pushed.push(digest);
                    l.bytes_pushed += desc.size();
                });
                self.opts.progress.transferred();
                Ok(true)
            }
        }
    }

    fn manifest_bytes(&self, desc: &Descriptor) -> Result<RawManifest> {
        let cached = self
            .stored
            .lock()
            .ok()
            .and_then(|s| s.get(desc.digest().as_ref()).cloned());
        match cached {
            Some(r) => Ok(r),
            None => block_on(manifests::get(
                &self.client,
                &self.reference.repository,
                desc.digest().as_ref(),
            ))?,
        }
    }
}

impl ImageSink for RegistrySink {
    fn name(&self) -> String {
        format!("docker://{}", self.reference.name())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let digest = desc.digest().to_string();
        if let Some(k) = self.known.lock().ok().and_then(|k| k.get(&digest).copied()) {
            return Ok(k);
        }
        let there = block_on(blob_exists(&self.client, &self.reference.repository, desc))??;
        if let Ok(mut k) = self.known.lock() {
            k.insert(digest.clone(), there);
        }
        if there {
            self.record_skipped(&digest);
        }
        Ok(there)
    }

    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        // A plain reader can be read once: a failed chunk is resent from
        // memory, but a restart from zero is not possible.
        let mut once = Some(src);
        let mut opener = move || -> Result<Box<dyn Read + '_>> {
            match once.take() {
                Some(r) => Ok(Box::new(r)),
                None => Err(Error::Unsupported(
                    "the registry lost the upload and this source cannot be read twice".into(),
                )),
            }
        };
        self.push(desc, &mut opener)
    }

    fn put_blob_from(&self, desc: &Descriptor, src: &dyn ImageSource) -> Result<bool> {
        let mut opener = || -> Result<Box<dyn Read + '_>> {
            let r: Box<dyn Read + '_> = src.open_blob(desc)?;
            Ok(r)
        };
        self.push(desc, &mut opener)
    }

    fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        block_on(manifests::put(
            &self.client,
            &self.reference.repository,
            raw.digest().as_ref(),
            raw,
        ))??;
        if let Ok(mut s) = self.stored.lock() {
            s.insert(raw.digest().to_string(), raw.clone());
        }
        let pin = self.reference.pin(raw.digest());
        self.record(|l| l.manifests.push(pin));
        Ok(())
    }

    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        for (tag, desc) in tags {
            let raw = self.manifest_bytes(desc)?;
            if raw.digest() != desc.digest() {
                return Err(Error::invalid(
                    format!("tag {tag}"),
                    format!("descriptor {} does not match its manifest", desc.digest()),
                ));
            }
            block_on(manifests::put(
                &self.client,
                &self.reference.repository,
                tag,
                &raw,
            ))??;
            self.record(|l| l.tags.push(tag.clone()));
        }
        Ok(())
    }

    fn put_referrer(
        &self,
        raw: &RawManifest,
        desc: &Descriptor,
        subject: &Descriptor,
    ) -> Result<bool> {
        block_on(super::referrers::push(
            &self.client,
            &self.reference.repository,
            raw,
            desc,
            subject,
        ))??;
        let pin = self.reference.pin(raw.digest());
        self.record(|l| l.manifests.push(pin));
        Ok(true)
    }

    fn max_parallel(&self) -> usize {
        self.opts.jobs.max(1)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        // A destination named by digest must end up holding that digest.
        if let Some(want) = &self.reference.digest {
            let pin = self.reference.pin(want);
            let ok = self
                .log
                .lock()
                .map(|l| l.manifests.contains(&pin))
                .unwrap_or(false);
            if !ok {
                return Err(Error::invalid(
                    format!("docker://{}", self.reference),
                    "the destination names a digest, but the pushed image has another one",
                ));
            }
        }
        Ok(())
    }
}
