//! The step's exec guards: (a) `cc -dumpmachine` names the target and (c)
//! `cc -x c - -c -o OBJ` writes a target object, run under qemu-user on the
//! image *as it will be*, before anything is written.
//!
//! How the image is materialised: the new layers are built by the same
//! code that writes them later, uncompressed and without the layer cache,
//! into a staging layout in a temp dir; the base's layers and those staged
//! layers are unpacked into a temp rootfs, where [`crate::smoke`] runs the
//! compiler. The output layout is not touched; the staging dir is removed.
//! This costs one uncompressed copy of the new layers plus the unpacked
//! image in `$TMPDIR`, but judges exactly the bytes that will be published
//! (extracting only "the compiler's subtrees" would have to guess what a
//! compiler reads: loader, libc, binutils, its libexec, `LD_LIBRARY_PATH`).
//!
//! A missing qemu-user fails both guards, naming the package; they are
//! skipped only by name with a reason (`--waive dumpmachine=... --waive
//! smoke=...`, or the recipe's waivers), recorded in the image like every
//! waiver. When both are waived nothing runs.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;

use crate::error::Result;
use crate::guard::GuardOutcome;
use crate::layout::Layout;
use crate::platform::TargetArch;
use crate::recipe::GuardSettings;
use crate::smoke::{self, SmokeEnv, DUMPMACHINE_GUARD, SMOKE_GUARD};
use crate::transport::{ImageSource, LayoutSource};
use crate::unpack::{unpack_layers, UnpackLayer, UnpackOptions};

/// The compiler the smoke runs: `/usr/bin/cc` when the recipe's compiler
/// links name it, else the first link.
pub fn compiler_of(settings: &GuardSettings) -> Option<&str> {
    settings
        .compiler_links
        .iter()
        .find(|l| *l == "/usr/bin/cc")
        .or_else(|| settings.compiler_links.first())
        .map(String::as_str)
}

fn both(f: impl Fn(&str) -> GuardOutcome) -> Vec<GuardOutcome> {
    vec![f(DUMPMACHINE_GUARD), f(SMOKE_GUARD)]
}

/// Runs (a) and (c). `base_layers` are the layers below the new ones;
/// `stage` writes the new layers into the layout it is given and returns
/// their descriptors and diff_ids, lowest first.
pub fn exec_guards(
    arch: TargetArch,
    settings: &GuardSettings,
    waivers: &BTreeMap<String, String>,
    config: &serde_json::Value,
    base_layers: &[UnpackLayer<'_>],
    stage: impl FnOnce(&Layout) -> Result<Vec<(Descriptor, String)>>,
) -> Result<Vec<GuardOutcome>> {
    let Some(compiler) = compiler_of(settings) else {
        return Ok(both(|g| {
            let mut o = GuardOutcome::new(g);
            o.notes
                .push("not run: the recipe names no compiler link".into());
            o
        }));
    };
    if waivers.contains_key(DUMPMACHINE_GUARD) && waivers.contains_key(SMOKE_GUARD) {
        return Ok(both(|g| {
            let mut o = GuardOutcome::new(g);
            o.notes.push(format!("not run: waived ({compiler})"));
            o
        }));
    }
    let Some(qemu) = smoke::qemu_for(arch) else {
        return Ok(both(|g| {
            let mut o = GuardOutcome::new(g);
            o.checked = 1;
            o.offend(compiler, smoke::qemu_missing(arch));
            o
        }));
    };
    let tmp = crate::atomic::scratch_dir()?;
    let staging = Layout::open_or_create(tmp.path().join("staging"))?;
    let staged = stage(&staging)?;
    let staged_src = LayoutSource {
        layout: staging,
        selector: None,
    };
    let mut layers: Vec<UnpackLayer<'_>> = base_layers.to_vec();
    layers.extend(staged.iter().map(|(d, diff_id)| UnpackLayer {
        src: &staged_src as &dyn ImageSource,
        descriptor: d,
        diff_id,
    }));
    let root = tmp.path().join("rootfs");
    let opts = UnpackOptions {
        preserve_ownership: false,
        devices: false,
    };
    unpack_layers(&layers, &root, &opts)?;
    let outcome = smoke::run_smoke(
        &qemu,
        &root,
        arch,
        compiler,
        tmp.path(),
        &SmokeEnv::from_config(config),
    )?;
    Ok(outcome.guards(compiler).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_cc_then_the_first_link() {
        let mut s = GuardSettings {
            compiler_links: vec!["/usr/bin/gcc".into(), "/usr/bin/cc".into()],
            ..Default::default()
        };
        assert_eq!(compiler_of(&s), Some("/usr/bin/cc"));
        s.compiler_links.remove(1);
        assert_eq!(compiler_of(&s), Some("/usr/bin/gcc"));
        s.compiler_links.clear();
        assert_eq!(compiler_of(&s), None);
    }

    #[test]
    fn waived_or_no_compiler_runs_nothing() {
        let s = GuardSettings {
            compiler_links: vec!["/usr/bin/cc".into()],
            ..Default::default()
        };
        let mut w = BTreeMap::new();
        w.insert(DUMPMACHINE_GUARD.to_string(), "r".to_string());
        w.insert(SMOKE_GUARD.to_string(), "r".to_string());
        let cfg = serde_json::json!({});
        let out = exec_guards(TargetArch::Arm64, &s, &w, &cfg, &[], |_| {
            panic!("nothing may be staged")
        })
        .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0].notes[0].contains("waived"));
        let none = GuardSettings::default();
        let out = exec_guards(
            TargetArch::Arm64,
            &none,
            &BTreeMap::new(),
            &cfg,
            &[],
            |_| panic!("nothing may be staged"),
        )
        .unwrap();
        assert!(out.iter().all(GuardOutcome::passed));
    }
}
