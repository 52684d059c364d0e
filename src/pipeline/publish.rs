//! Publish order: with `push_all` the bases, then the package stages; then
//! the per-arch images and the index through `publish_index` (the gates,
//! order and re-reads of `manifest --push`).

use super::{ArchPlan, BuildPlan, Published};
use crate::error::Result;
use crate::index::push::{push_image, push_source_image, PushedImage};
use crate::index::{publish_index, IndexOptions};
use crate::platform::PlatformSpec;
use crate::reference::Reference;
use crate::spool::SharedSources;

pub(super) fn publish(
    plan: &BuildPlan,
    plans: &[ArchPlan],
    image: &Reference,
    sources: &SharedSources,
) -> Result<Published> {
    let registry = &plan.dest_registry;
    let progress = &registry.progress;
    let warn_forced = |pushed: &PushedImage| {
        if pushed.forced {
            progress.note(&format!(
                "ocipack: warning: freshness gate failed, overridden by --force: \
                 {} does not serve {}",
                pushed.destination, pushed.digest
            ));
        }
    };
    // The bases first, as the seed's `<tag>-base-<arch>` stage tags (the
    // arch's image of a multi-arch base), so every stage a published
    // wrapper was built on is in the registry.
    let mut bases = Vec::new();
    for p in plans {
        let Some(dest) = &p.publish_base else {
            continue;
        };
        progress.note(&format!("ocipack: {}: push base -> {dest}", p.arch));
        // From the source the build read (source credentials, the root it
        // resolved, the blobs it spooled).
        let pushed = sources
            .open(&p.base)
            .and_then(|src| {
                push_source_image(
                    src.as_ref(),
                    &p.base,
                    Some(&PlatformSpec::linux(p.arch)),
                    dest,
                    registry,
                    plan.force,
                )
            })
            .map_err(|e| e.during(format!("pushing {} to {dest}", p.base)))?;
        warn_forced(&pushed);
        bases.push(pushed);
    }
    let mut packages = Vec::new();
    let push_all = plan.publish.as_ref().is_some_and(|p| p.push_all);
    for p in plans.iter().filter(|_| push_all) {
        let Some((dest, _)) = &p.publish else {
            continue;
        };
        progress.note(&format!("ocipack: {}: push package -> {dest}", p.arch));
        let pushed = push_image(&p.package, dest, registry, plan.force)
            .map_err(|e| e.during(format!("pushing {} to {dest}", p.package)))?;
        warn_forced(&pushed);
        packages.push(pushed);
    }
    let wrappers: Vec<String> = plans
        .iter()
        .filter_map(|p| p.publish.as_ref().map(|(_, w)| w.to_string()))
        .collect();
    progress.note(&format!(
        "ocipack: push {} then index {image}",
        wrappers.join(", ")
    ));
    let mut opts = IndexOptions::new(image.clone(), plan.arches.clone(), None)?;
    opts.children = plans.iter().map(|p| (p.arch, p.wrapper.clone())).collect();
    opts.aliases = plan.aliases.clone();
    opts.push = true;
    opts.force = plan.force;
    opts.registry = registry.clone();
    let index = publish_index(&opts).map_err(|e| e.during(format!("publishing {image}")))?;
    Ok(Published {
        bases,
        packages,
        index,
    })
}
