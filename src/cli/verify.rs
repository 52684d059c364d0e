use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use ocipack::platform::TargetArch;
use ocipack::recipe::VarInputs;
use ocipack::reference::Reference;
use ocipack::step::run::verify;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to check.
    #[arg(value_parser = super::reference_arg)]
    pub reference: Reference,
    /// The architecture it must be for.
    #[arg(long, value_parser = super::package::arch_arg)]
    pub arch: TargetArch,
    /// Take allow-lists, required paths and compiler settings from a recipe.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Variables for the recipe (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long)]
    pub versions: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
    let report = verify(&a.reference, a.arch, recipe.as_ref(), &BTreeMap::new())
        .with_context(|| format!("verifying {}", a.reference))?;
    if a.json {
        super::print_json(&report)?;
    } else {
        print!("{}", report.summary());
    }
    if !report.ok() {
        anyhow::bail!("{} is not a valid {} image", a.reference, a.arch);
    }
    Ok(())
}
