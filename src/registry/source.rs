//! Reading images from a registry.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use super::client::{block_on, RegistryClient};
use super::download::BlobDownload;
use super::{manifests, RegistryOptions};
use crate::digest::{read_verified, VerifyingReader};
use crate::endpoint::ImageSource;
use crate::error::{Error, Result};
use crate::manifest::{RawManifest, MAX_METADATA_SIZE};
use crate::reference::{RegistryRef, Selector};

/// A repository (and the tag or digest to read) in a registry.
pub struct RegistrySource {
    client: RegistryClient,
    reference: RegistryRef,
    /// Manifests already fetched (resolve fetches the root once).
    manifests: Mutex<HashMap<String, RawManifest>>,
    /// What the reference resolved to (a tag is resolved once per run, so
    /// every step sees the same image even if the tag moves meanwhile).
    resolved: Mutex<Option<Descriptor>>,
    opts: RegistryOptions,
}

impl RegistrySource {
    pub fn open(reference: &RegistryRef, opts: &RegistryOptions) -> Result<RegistrySource> {
        let scopes = vec![format!("repository:{}:pull", reference.repository)];
        Ok(RegistrySource {
            client: RegistryClient::for_repository(
                &reference.host,
                &reference.repository,
                scopes,
                opts,
            )?,
            reference: reference.clone(),
            manifests: Mutex::new(HashMap::new()),
            resolved: Mutex::new(None),
            opts: opts.clone(),
        })
    }

    pub fn reference(&self) -> &RegistryRef {
        &self.reference
    }

    fn remember(&self, raw: &RawManifest) {
        if let Ok(mut m) = self.manifests.lock() {
            m.insert(raw.digest().to_string(), raw.clone());
        }
    }
}

impl ImageSource for RegistrySource {
    fn name(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn resolve(&self) -> Result<Descriptor> {
        if let Some(d) = self.resolved.lock().ok().and_then(|r| r.clone()) {
            return Ok(d);
        }
        let reference = match self.reference.selector() {
            Selector::Digest(d) => d.to_string(),
            Selector::Tag(t) => t,
        };
        let raw = block_on(manifests::get(
            &self.client,
            &self.reference.repository,
            &reference,
        ))??;
        self.remember(&raw);
        let d = raw.descriptor();
        if let Ok(mut r) = self.resolved.lock() {
            *r = Some(d.clone());
        }
        Ok(d)
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        let cached = self
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(desc.digest().as_ref()).cloned());
        let raw = match cached {
            Some(r) => r,
            None => {
                let r = block_on(manifests::get(
                    &self.client,
                    &self.reference.repository,
                    desc.digest().as_ref(),
                ))??;
                self.remember(&r);
                r
            }
        };
        if raw.size() != desc.size() {
            return Err(Error::SizeMismatch {
                digest: desc.digest().to_string(),
                expected: desc.size(),
                actual: raw.size(),
                location: None,
            });
        }
        // The descriptor's media type wins, as for layouts.
        RawManifest::from_bytes(raw.bytes().to_vec(), Some(desc.media_type().as_ref()))
    }

    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let dl = BlobDownload::new(
            &self.client,
            &self.reference.repository,
            desc,
            &super::Progress::hidden(),
        );
        read_verified(dl, desc, MAX_METADATA_SIZE)
            .map_err(|e| Error::from_io(format!("{}@{}", self.name(), desc.digest()), e))
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let dl = BlobDownload::new(
            &self.client,
            &self.reference.repository,
            desc,
            &self.opts.progress,
        );
        Ok(Box::new(VerifyingReader::new(dl, desc)))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        block_on(super::referrers::list(
            &self.client,
            &self.reference.repository,
            subject.digest().as_ref(),
        ))?
    }
}
