//! Recipes: loading arbitrary TOML for every arch never panics (errors name
//! the file and line).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ocipack::platform::TargetArch;
use ocipack::recipe::{load_str, VarInputs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs = VarInputs::default();
    for arch in TargetArch::ALL {
        if let Err(e) = load_str(Path::new("fuzz.toml"), Path::new("/nonexistent"), text, arch, &inputs) {
            let msg = e.to_string();
            assert!(msg.contains("fuzz.toml"), "a recipe error names its file: {msg}");
        }
    }
});
