//! Shell completions and man pages, generated from the clap definitions so
//! they never drift from the flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write ocipack.1 and ocipack-COMMAND.1 into (created).
    pub dir: PathBuf,
}

/// Prints the completion script on stdout, e.g.
/// `ocipack completions bash > /usr/share/bash-completion/completions/ocipack`.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "ocipack", &mut std::io::stdout());
    Ok(())
}

/// Writes one page per command (`man -l DIR/ocipack-copy.1`).
pub fn man(a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages to {}", a.dir.display()))?;
    Ok(())
}
