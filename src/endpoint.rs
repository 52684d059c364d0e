//! The two ends of every transfer: [`ImageSource`] and [`ImageSink`]. A
//! leaf module, so the transports that implement them (layouts, archives,
//! registries) never import the openers in [`crate::transport`] that pick
//! one of them for a reference.

use std::io::Read;

use oci_spec::image::Descriptor;

use crate::error::Result;
use crate::manifest::RawManifest;

/// Somewhere images are read from.
pub trait ImageSource: Send + Sync {
    /// The reference, for messages.
    fn name(&self) -> String;
    /// The descriptor of what the reference names (an index or a manifest).
    fn resolve(&self) -> Result<Descriptor>;
    /// Reads and verifies a manifest or index.
    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest>;
    /// Reads and verifies a small blob (a config).
    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>>;
    /// Streams a blob; the reader fails at EOF if digest or size are wrong.
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;
    /// The artifact manifests whose `subject` is `subject` (OCI 1.1
    /// referrers), as a referrers index lists them. Sources that cannot
    /// hold any list none.
    fn referrers(&self, _subject: &Descriptor) -> Result<Vec<Descriptor>> {
        Ok(Vec::new())
    }
}

/// Somewhere images are written to.
pub trait ImageSink: Send + Sync {
    fn name(&self) -> String;
    fn has_blob(&self, desc: &Descriptor) -> Result<bool>;
    /// Stores a blob, verifying it; returns false when it already existed
    /// (and `src` was not read).
    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool>;
    /// Stores blob `desc` read from `src`. Sinks that may need to read the
    /// blob again (a registry that lost an upload restarts it) override
    /// this; the default opens it once and calls [`ImageSink::put_blob`].
    fn put_blob_from(&self, desc: &Descriptor, src: &dyn ImageSource) -> Result<bool> {
        let mut r = src.open_blob(desc)?;
        self.put_blob(desc, &mut r)
    }
    /// Stores a manifest or index by digest (no tag).
    fn put_manifest(&self, raw: &RawManifest) -> Result<()>;
    /// Points tags at stored manifests; called last, once.
    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()>;
    /// Lists a stored manifest without a tag (an untagged `index.json`
    /// entry, as `append` writes), so garbage collectors keep it. A
    /// registry keeps a manifest pushed by digest: nothing to do.
    fn record_untagged(&self, _desc: &Descriptor) -> Result<()> {
        Ok(())
    }
    /// Stores an artifact manifest about `subject` (its blobs are already
    /// stored) so that it is listed as a referrer of `subject`: an
    /// untagged `index.json` entry in a layout, the referrers API or tag
    /// schema in a registry. `desc` is its descriptor with `artifactType`.
    /// Returns false when this sink cannot hold referrers (nothing stored).
    fn put_referrer(
        &self,
        _raw: &RawManifest,
        _desc: &Descriptor,
        _subject: &Descriptor,
    ) -> Result<bool> {
        Ok(false)
    }
    /// How many blobs may be written at once without making the output
    /// depend on timing.
    fn max_parallel(&self) -> usize {
        1
    }
    /// Makes everything written visible (archives are renamed into place).
    fn commit(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// A whole blob of `src`, for unit tests of sources.
#[cfg(test)]
pub(crate) fn read_all(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    src.open_blob(d)?
        .read_to_end(&mut out)
        .map_err(|e| crate::error::Error::from_io("test", e))?;
    Ok(out)
}
