use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use ocipack::platform::TargetArch;
use ocipack::recipe::VarInputs;
use ocipack::reference::Reference;
use ocipack::smoke::SmokeReport;
use ocipack::step::run::{resolve_for_verify, verify};

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to check.
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// The architecture it must be for.
    #[arg(long, visible_alias = "platform", value_parser = super::package::arch_arg)]
    pub arch: TargetArch,
    /// Take allow-lists, required paths and compiler settings from a recipe.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Variables for the recipe (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long)]
    pub versions: Option<PathBuf>,
    /// Also run the image's own compiler under qemu-user (`cc -dumpmachine`
    /// and a compile-to-object smoke); fails when qemu-user-static is not
    /// installed.
    #[arg(long)]
    pub exec_smoke: bool,
    /// The compiler the exec smoke runs (a path inside the image).
    #[arg(long, default_value = "/usr/bin/cc", requires = "exec_smoke")]
    pub compiler: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let recipe = match &a.recipe {
        None => None,
        Some(p) => {
            let mut vars = VarInputs::default();
            if let Some(v) = &a.versions {
                vars.load_versions(v)?;
            }
            for s in &a.sets {
                vars.set(s)?;
            }
            // CREATED is irrelevant to the guards; give it a value so
            // recipes using it still load.
            vars.run
                .insert("CREATED".into(), "1970-01-01T00:00:00Z".into());
            Some(ocipack::recipe::load(p, a.arch, &vars)?)
        }
    };
    // Opened and resolved once: the guards and the exec smoke read the
    // same image. They read its layers several times, so a registry
    // image's blobs are spooled to disk and each downloaded once (layouts
    // and archives are on disk already).
    let name = a.reference.to_string();
    let src =
        ocipack::spool::for_reference(&a.reference, a.registry.open_source_quiet(&a.reference)?)
            .with_context(|| format!("verifying {name}"))?;
    let src = src.as_ref();
    let img = resolve_for_verify(src, a.arch).with_context(|| format!("verifying {name}"))?;
    let report = verify(&name, src, &img, a.arch, recipe.as_ref(), &BTreeMap::new())
        .with_context(|| format!("verifying {name}"))?;
    let smoke = if a.exec_smoke {
        Some(ocipack::smoke::exec_smoke(src, &img, a.arch, &a.compiler)?.report())
    } else {
        None
    };
    if a.json {
        super::print_json(&serde_json::json!({ "guards": report, "exec_smoke": smoke }))?;
    } else {
        print!("{}", report.summary());
        match &smoke {
            Some(SmokeReport::Passed {
                compiler,
                dumpmachine,
                object,
            }) => {
                println!("exec smoke passed: {compiler} -dumpmachine = {dumpmachine}; object is {object}")
            }
            Some(SmokeReport::Failed { reason, .. }) => println!("exec smoke FAILED: {reason}"),
            None => {}
        }
    }
    if !report.ok() || smoke.as_ref().is_some_and(SmokeReport::failed) {
        return Err(super::exit::CheckFailed(format!(
            "{} is not a valid {} image",
            a.reference, a.arch
        ))
        .into());
    }
    Ok(())
}
