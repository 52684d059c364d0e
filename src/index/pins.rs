//! Digest pins: `REPO@sha256:…` for everything a command wrote, so the next
//! stage consumes exactly those bytes and never a tag that may have moved.

use std::collections::BTreeMap;
use std::path::Path;

use crate::atomic;
use crate::error::Result;
use crate::manifest::canonical_json;

/// Reference written (a tag) -> its pin. Sorted, so the file is stable.
pub type Pins = BTreeMap<String, String>;

/// Writes `{ "<ref>": "<pin>", ... }` atomically. The file holds this
/// command's pins only: merging into an older file would carry pins of a
/// previous run forward, which is how stale bases propagate.
pub fn write_digest_file(path: &Path, pins: &Pins) -> Result<()> {
    let mut bytes = canonical_json(pins)?;
    bytes.push(b'\n');
    atomic::write_file(path, &bytes)
}

/// Writes one manifest digest (`sha256:…`, no newline) atomically: the
/// format of skopeo's and podman's `--digestfile`.
pub fn write_digestfile(path: &Path, digest: &str) -> Result<()> {
    atomic::write_file(path, digest.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digestfile_is_skopeos_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digest");
        write_digestfile(&p, "sha256:ab").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"sha256:ab");
    }

    #[test]
    fn writes_sorted_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pins.json");
        std::fs::write(&p, b"old").unwrap();
        let mut pins = Pins::new();
        pins.insert("oci:l:b".into(), "oci:l@sha256:2".into());
        pins.insert("oci:l:a".into(), "oci:l@sha256:1".into());
        write_digest_file(&p, &pins).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"oci:l:a\":\"oci:l@sha256:1\",\"oci:l:b\":\"oci:l@sha256:2\"}\n"
        );
    }
}
