//! The merged-tree cache decoder: arbitrary (even checksummed) bytes never
//! panic or allocate without bound; a decoded tree re-encodes to the same
//! bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ocipack::layer::treecache::fuzz_round_trip(data);
});
