use anyhow::Context;
use ocipack::recipe::RecipeKind;
use ocipack::step::run::run_step;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: super::package::StepArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let req = super::package::request(&a.step, RecipeKind::Wrapper, None)?;
    let report = run_step(&req).with_context(|| format!("wrapper {} for {}", req.out, req.arch))?;
    super::package::print(&report, a.step.json)
}
