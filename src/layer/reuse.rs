//! Whole-layer reuse: when a selection is exactly one source layer (all of
//! its entries, where they are, nothing else, no whiteouts), that layer's
//! blob already is the answer. It is copied (verified) instead of being
//! decompressed, re-tarred and recompressed.
//!
//! The reused blob keeps its own tar encoding, so its digest is not the
//! canonical one ocipack would write for the same tree; that is the price of
//! doing no work, and the reason reuse can be turned off
//! (`LayerOptions::reuse_layers`).

use std::collections::BTreeSet;

use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest};

use super::entry::FileKind;
use super::merged::MergedTree;
use super::output::{BuiltLayer, LayerOptions};
use super::path::{sort_key, ImagePath};
use super::select::{Picks, Selection};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::manifest::Compression;
use crate::transport::ImageSource;

/// A source layer that can stand for the selection.
pub struct Plan {
    pub descriptor: Descriptor,
    pub diff_id: String,
    pub entries: u64,
    pub paths: Vec<ImagePath>,
}

/// Whether `picks` is exactly one whole layer of `tree`.
pub fn whole_layer(
    tree: &MergedTree,
    sel: &Selection,
    picks: &Picks<'_>,
    opts: &LayerOptions,
) -> Option<Plan> {
    if !opts.reuse_layers || !sel.is_plain() {
        return None;
    }
    let first = picks.values().next()?;
    let layer = first.entry.layer;
    let info = tree.layers().get(layer as usize)?;
    if info.whiteouts > 0 || info.redirected > 0 {
        return None;
    }
    if Compression::of_media_type(info.descriptor.media_type()).ok()? != opts.compression {
        return None;
    }
    if opts.source_date_epoch.is_some_and(|t| info.max_mtime > t) {
        return None;
    }
    let mut parents: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut paths = Vec::new();
    for (k, p) in picks {
        let e = p.entry;
        if e.layer != layer || p.dest != e.path {
            return None;
        }
        if e.content.is_some_and(|c| c.layer != layer) {
            return None;
        }
        if e.kind == FileKind::File {
            paths.push(e.path.clone());
        }
        let mut cur = e.path.rel().parent();
        while let Some(par) = cur.filter(|p| !p.as_os_str().is_empty()) {
            let pk = sort_key(par);
            if picks.contains_key(&pk) || !parents.insert(pk) {
                break;
            }
            cur = par.parent();
        }
        let _ = k;
    }
    // Parents the layer itself has come with it (with its metadata); any
    // other parent the new layer would need to create.
    let mut extra = 0u64;
    for pk in &parents {
        let p = MergedTree::key_path(pk);
        match tree.get(&p) {
            Some(e) if e.layer == layer => extra += 1,
            _ => {}
        }
    }
    if picks.len() as u64 + extra != info.entries {
        return None;
    }
    Some(Plan {
        descriptor: info.descriptor.clone(),
        diff_id: info.diff_id.clone(),
        entries: info.entries,
        paths,
    })
}

/// Copies the planned source blob into `out` (verified while copied).
///
/// The diff_id is the plan's, which the merged tree verified: the tree was
/// loaded by decoding this very blob (equal digest, equal bytes) and
/// checking it against the config's diff_id, or came from the tree cache,
/// which holds only trees so verified (see `treecache`).
pub fn copy_layer(
    src: &dyn ImageSource,
    out: &Layout,
    plan: Plan,
    opts: &LayerOptions,
) -> Result<BuiltLayer> {
    let d = &plan.descriptor;
    if !out.has_blob(d)? {
        let mut r = src.open_blob(d)?;
        out.put_blob(d, &mut r)?;
    }
    let diff_id = Digest::from_str(&plan.diff_id)
        .map_err(|e| Error::invalid(format!("diff_id of layer {}", d.digest()), e.to_string()))?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(
            opts.compression.oci_media_type(),
            d.size(),
            d.digest().clone(),
        ),
        diff_id,
        entries: plan.entries,
        reused: true,
        paths: plan.paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::merged::tests::{apply, dir, file, meta, R};
    use crate::layer::select::SelectRule;

    /// A layer that wrote `lib/x` through a lower `lib -> usr/lib` holds
    /// `usr/lib/x` in the tree but `lib/x` in its blob: reusing the blob on
    /// another base would put it elsewhere, so it is never reused whole.
    #[test]
    fn a_layer_written_through_a_symlink_is_not_reused() {
        let mut t = MergedTree::default();
        apply(
            &mut t,
            0,
            vec![
                R::E("usr", dir()),
                R::E("usr/lib", dir()),
                R::E("lib", meta(FileKind::Symlink, Some("usr/lib"))),
                R::E("opt", dir()),
            ],
        )
        .unwrap();
        apply(&mut t, 1, vec![R::E("lib/x", file("", b"x").1)]).unwrap();
        apply(&mut t, 2, vec![R::E("opt/y", file("", b"y").1)]).unwrap();
        let opts = LayerOptions {
            compression: Compression::None,
            source_date_epoch: None,
            ..LayerOptions::default()
        };
        let plan = |p: &str| {
            let sel = Selection::new(vec![SelectRule::path(p)]);
            let picks = sel.apply(&t).unwrap();
            whole_layer(&t, &sel, &picks, &opts).map(|p| p.entries)
        };
        // The same shape, written directly: reused.
        assert_eq!(plan("/opt/y"), Some(1));
        assert_eq!(plan("/usr/lib/x"), None);
    }
}
