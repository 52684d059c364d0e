//! `index.json` of a layout: parsing never panics; what parses writes back
//! to bytes that parse to the same entries and tags.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocipack::layout::IndexFile;

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = IndexFile::parse(data, "index.json") else {
        return;
    };
    let Ok(bytes) = idx.to_bytes() else {
        return;
    };
    let again = IndexFile::parse(&bytes, "index.json").expect("written index.json parses");
    let (a, b) = (idx.entries(), again.entries());
    if let (Ok(a), Ok(b)) = (a, b) {
        assert_eq!(a, b, "entries survive a write");
    }
    if let (Ok(a), Ok(b)) = (idx.tags(), again.tags()) {
        assert_eq!(a, b, "tags survive a write");
    }
});
