//! References: parsing never panics, and what parses prints back to a
//! string that parses to the same reference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocipack::reference::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let printed = r.to_string();
        let again = Reference::parse(&printed)
            .unwrap_or_else(|e| panic!("{s:?} parsed, printed as {printed:?}, which fails: {e}"));
        assert_eq!(r, again, "{s:?} -> {printed:?}");
    }
});
