//! Per-file checksums of the layers a step added, read back from the
//! output as any consumer would read them: each layer decompressed and
//! parsed as tar, every regular file hashed once (SHA-1, which SPDX 2.3
//! requires, and SHA-256) while it streams. No coupling to the layer
//! writer: a reused or cached layer is hashed like a fresh one.

use std::collections::BTreeMap;
use std::io::{self, Write};

use oci_spec::image::Descriptor;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::endpoint::ImageSource;
use crate::error::{Error, Result};
use crate::layer::path::{entry_name, EntryName};
use crate::layer::ImagePath;

/// A regular file of an added layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    pub path: ImagePath,
    pub size: u64,
    pub sha1: String,
    pub sha256: String,
    /// Index of the added layer it came from.
    pub layer: usize,
}

struct Hashing {
    sha1: Sha1,
    sha256: Sha256,
}

impl Write for Hashing {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.sha1.update(b);
        self.sha256.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes every regular file of the layers (in order; a later layer's file
/// replaces an earlier one at the same path, a whiteout removes it). Hard
/// links take their target's sums. Names are read as every other layer
/// reader reads them ([`entry_name`]).
pub fn hash_layers(src: &dyn ImageSource, layers: &[Descriptor]) -> Result<Vec<FileSum>> {
    let mut files: BTreeMap<ImagePath, FileSum> = BTreeMap::new();
    for (i, desc) in layers.iter().enumerate() {
        let what = format!("layer {}", desc.digest());
        let r = crate::layer::open_tar_stream(src, desc)?;
        let mut ar = tar::Archive::new(r);
        let entries = ar.entries().map_err(|e| Error::from_io(&what, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::from_io(&what, e))?;
            let raw = entry.path().map_err(|e| Error::io(&what, e))?.into_owned();
            let kind = entry.header().entry_type();
            let name = entry_name(&raw, kind.is_dir())
                .map_err(|r| Error::invalid(format!("{what}: entry {}", raw.display()), r))?;
            let path = match name {
                EntryName::Opaque(dir) => {
                    let dir = ImagePath::from_normalized(dir);
                    files.retain(|p, _| p == &dir || !p.starts_with(&dir));
                    continue;
                }
                EntryName::Whiteout(gone) => {
                    let gone = ImagePath::from_normalized(gone);
                    files.retain(|p, _| !p.starts_with(&gone));
                    continue;
                }
                EntryName::Regular(p) => ImagePath::from_normalized(p),
            };
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut h = Hashing {
                        sha1: Sha1::new(),
                        sha256: Sha256::new(),
                    };
                    let size =
                        io::copy(&mut entry, &mut h).map_err(|e| Error::from_io(&what, e))?;
                    files.insert(
                        path.clone(),
                        FileSum {
                            path,
                            size,
                            sha1: hex::encode(h.sha1.finalize()),
                            sha256: hex::encode(h.sha256.finalize()),
                            layer: i,
                        },
                    );
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(|e| Error::io(&what, e))?
                        .map(|t| ImagePath::from(t.as_ref()));
                    if let Some(t) = target.and_then(|t| files.get(&t).cloned()) {
                        files.insert(
                            path.clone(),
                            FileSum {
                                path,
                                layer: i,
                                ..t
                            },
                        );
                    }
                }
                _ => {
                    // Directories, symlinks, devices: not files with content.
                    files.remove(&path);
                }
            }
        }
    }
    Ok(files.into_values().collect())
}
