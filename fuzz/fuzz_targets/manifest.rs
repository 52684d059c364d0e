//! Manifests, indexes and configs: parsing never panics, and a manifest or
//! index that parses re-serialises canonically to a document that parses to
//! the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocipack::manifest::{canonical_json, RawManifest};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = RawManifest::from_bytes(data.to_vec(), None) else {
        return;
    };
    if raw.kind().is_index() {
        if let Ok(idx) = raw.index() {
            let bytes = canonical_json(&idx).expect("an index serialises");
            let again = RawManifest::from_bytes(bytes.clone(), None).expect("canonical index parses");
            let idx2 = again.index().expect("canonical index parses as an index");
            assert_eq!(canonical_json(&idx2).unwrap(), bytes, "canonical form is stable");
        }
    } else if let Ok(m) = raw.manifest() {
        let bytes = canonical_json(&m).expect("a manifest serialises");
        let again = RawManifest::from_bytes(bytes.clone(), None).expect("canonical manifest parses");
        let m2 = again.manifest().expect("canonical manifest parses as a manifest");
        assert_eq!(canonical_json(&m2).unwrap(), bytes, "canonical form is stable");
    }
    // The image config goes through serde_json::Value and the RFC 3339 parser.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(created) = v.get("created").and_then(|c| c.as_str()) {
            let _ = ocipack::imageconfig::parse_rfc3339(created);
        }
    }
});
