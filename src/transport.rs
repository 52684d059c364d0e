//! Opening a reference as an image source or sink: layouts, archives and
//! registries. The core (copy, inspect, unpack, the layer engine) talks only
//! to the traits of [`crate::endpoint`], re-exported here; this module
//! depends on the transports, never the other way round.

use std::io::Read;

use oci_spec::image::Descriptor;

use crate::archive::{ArchiveReader, ArchiveWriter};
use crate::docker_archive::{DockerArchiveSource, DockerArchiveWriter};
use crate::error::Result;
use crate::layout::Layout;
use crate::manifest::RawManifest;
use crate::reference::{Reference, Selector};
use crate::registry::{RegistryOptions, RegistrySink, RegistrySource};

pub use crate::endpoint::{ImageSink, ImageSource};

/// A layout directory with the tag or digest to read.
pub struct LayoutSource {
    pub layout: Layout,
    pub selector: Option<Selector>,
}

impl ImageSource for LayoutSource {
    fn name(&self) -> String {
        Reference::Layout {
            path: self.layout.root().to_path_buf(),
            selector: self.selector.clone(),
        }
        .to_string()
    }

    fn resolve(&self) -> Result<Descriptor> {
        self.layout.resolve(self.selector.as_ref())
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        self.layout.read_manifest(desc)
    }

    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.layout.read_blob(desc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.layout.open_blob(desc)?))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        crate::referrers::in_index(&self.layout.index()?, subject, |d| {
            self.layout.read_manifest(d)
        })
    }
}

/// An archive with the tag to read.
pub struct ArchiveSource {
    pub archive: ArchiveReader,
    pub tag: Option<String>,
}

impl ImageSource for ArchiveSource {
    fn name(&self) -> String {
        Reference::Archive {
            path: self.archive.path().to_path_buf(),
            tag: self.tag.clone(),
        }
        .to_string()
    }

    fn resolve(&self) -> Result<Descriptor> {
        let sel = self.tag.clone().map(Selector::Tag);
        self.archive.resolve(sel.as_ref())
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        self.archive.read_manifest(desc)
    }

    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.archive.read_blob(desc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.archive.open_blob(desc)?))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        crate::referrers::in_index(self.archive.index(), subject, |d| {
            self.archive.read_manifest(d)
        })
    }
}

impl ImageSink for Layout {
    fn name(&self) -> String {
        format!("oci:{}", self.root().display())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Layout::has_blob(self, desc)
    }

    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        Layout::put_blob(self, desc, src)
    }

    fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        let desc = raw.descriptor();
        Layout::put_blob(self, &desc, &mut raw.bytes())?;
        Ok(())
    }

    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        Layout::set_tags(self, tags)
    }

    fn record_untagged(&self, desc: &Descriptor) -> Result<()> {
        self.update_index(|idx| idx.add_untagged(desc))
    }

    fn put_referrer(
        &self,
        raw: &RawManifest,
        desc: &Descriptor,
        _subject: &Descriptor,
    ) -> Result<bool> {
        self.put_manifest(raw)?;
        self.record_untagged(desc)?;
        Ok(true)
    }

    fn max_parallel(&self) -> usize {
        // Blobs land under their digest, so order does not matter.
        2
    }
}

impl ImageSink for ArchiveWriter {
    fn name(&self) -> String {
        format!("oci-archive:{}", self.path().display())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        ArchiveWriter::has_blob(self, desc)
    }

    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        ArchiveWriter::put_blob(self, desc, src)
    }

    fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        ArchiveWriter::put_blob(self, &raw.descriptor(), &mut raw.bytes())?;
        Ok(())
    }

    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        self.update_index(|idx| {
            for (t, d) in tags {
                idx.set_tag(t, d)?;
            }
            Ok(())
        })
    }

    fn record_untagged(&self, desc: &Descriptor) -> Result<()> {
        self.update_index(|idx| idx.add_untagged(desc))
    }

    fn put_referrer(
        &self,
        raw: &RawManifest,
        desc: &Descriptor,
        _subject: &Descriptor,
    ) -> Result<bool> {
        self.put_manifest(raw)?;
        self.record_untagged(desc)?;
        Ok(true)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        ArchiveWriter::commit(*self)
    }
}

/// Opens a reference for reading; a registry gets `registry` (credentials,
/// TLS, retries, progress).
pub fn open_source_with(
    reference: &Reference,
    registry: &RegistryOptions,
) -> Result<Box<dyn ImageSource>> {
    match reference {
        Reference::Layout { path, selector } => Ok(Box::new(LayoutSource {
            layout: Layout::open(path)?,
            selector: selector.clone(),
        })),
        Reference::Archive { path, tag } => Ok(Box::new(ArchiveSource {
            archive: ArchiveReader::open(path)?,
            tag: tag.clone(),
        })),
        Reference::DockerArchive { path, image } => {
            Ok(Box::new(DockerArchiveSource::open(path, image.clone())?))
        }
        Reference::Registry(r) => Ok(Box::new(RegistrySource::open(r, registry)?)),
    }
}

/// Opens a reference for writing (creating a layout if needed); a registry
/// gets `registry`.
pub fn open_sink_with(
    reference: &Reference,
    registry: &RegistryOptions,
) -> Result<Box<dyn ImageSink>> {
    match reference {
        Reference::Layout { path, .. } => Ok(Box::new(crate::layout::StagedLayout::open(path)?)),
        Reference::Archive { path, .. } => Ok(Box::new(ArchiveWriter::create(path)?)),
        Reference::DockerArchive { path, image } => {
            Ok(Box::new(DockerArchiveWriter::create(path, image.as_ref())?))
        }
        Reference::Registry(r) => Ok(Box::new(RegistrySink::open(r, registry)?)),
    }
}
