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

/// A regular file of an added layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    /// Absolute path in the image (`/opt/x`).
    pub path: String,
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

/// `./opt/x`, `opt/x`, `/opt/x` -> `/opt/x`.
fn clean(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Hashes every regular file of the layers (in order; a later layer's file
/// replaces an earlier one at the same path, a whiteout removes it). Hard
/// links take their target's sums.
pub fn hash_layers(src: &dyn ImageSource, layers: &[Descriptor]) -> Result<Vec<FileSum>> {
    let mut files: BTreeMap<String, FileSum> = BTreeMap::new();
    for (i, desc) in layers.iter().enumerate() {
        let what = format!("layer {}", desc.digest());
        let r = crate::layer::open_tar_stream(src, desc)?;
        let mut ar = tar::Archive::new(r);
        let entries = ar.entries().map_err(|e| Error::from_io(&what, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::from_io(&what, e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = clean(&raw);
            let name = path.rsplit('/').next().unwrap_or("");
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = crate::tree::parent(&path).to_string();
                if hidden == ".wh..opq" {
                    let prefix = format!("{}/", parent.trim_end_matches('/'));
                    files.retain(|p, _| !p.starts_with(&prefix));
                } else {
                    let gone = format!("{}/{hidden}", parent.trim_end_matches('/'));
                    files.remove(&gone);
                }
                continue;
            }
            match entry.header().entry_type() {
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
                        .link_name_bytes()
                        .map(|b| clean(&String::from_utf8_lossy(&b)))
                        .unwrap_or_default();
                    if let Some(t) = files.get(&target).cloned() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_names() {
        assert_eq!(clean("./opt/x"), "/opt/x");
        assert_eq!(clean("opt//x/"), "/opt/x");
    }
}
