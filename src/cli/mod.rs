//! Subcommands, one file each.

mod append;
mod bench;
mod build;
mod copy;
mod docs;
pub mod exit;
mod extract;
mod fsck;
mod inspect;
mod manifest;
mod package;
mod password;
mod referrers;
mod registry_args;
mod unpack;
mod verify;
mod verify_chain;
mod wrapper;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ocipack",
    version,
    about = "Assemble, verify and publish multi-arch OCI images without a daemon",
    after_help = exit::HELP
)]
pub struct Cli {
    /// Debug logging on stderr (or set OCIPACK_LOG=...).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Namespace of the labels ocipack writes and reads (run-id,
    /// parent-digest, parent-stage, guard-waivers).
    #[arg(
        long,
        global = true,
        env = "OCIPACK_LABEL_PREFIX",
        value_name = "PREFIX",
        default_value = ocipack::labels::DEFAULT_PREFIX
    )]
    pub label_prefix: String,
    /// No progress bars and no warnings on stderr (errors still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show an image or index: digests, platforms, config, layers.
    Inspect(inspect::Args),
    /// Copy images between layouts, archives and registries, digests preserved
    /// (`push` and `pull` are the same command).
    #[command(visible_aliases = ["push", "pull"])]
    Copy(Box<copy::Args>),
    /// Unpack an image's root filesystem into a directory.
    Unpack(unpack::Args),
    /// Copy trees out of an image (build artifacts) with SHA256SUMS and
    /// metadata, optionally refusing wrong-architecture ELF files.
    Extract(Box<extract::Args>),
    /// Check a layout or archive as a registry would (every blob, every
    /// descriptor, every diff_id; orphans and temp files); --repair.
    Fsck(fsck::Args),
    /// Build and publish a multi-arch index from per-arch images, behind
    /// the completeness, coherence and freshness gates.
    Manifest(Box<manifest::Args>),
    /// List an image's OCI referrers (its SBOM and provenance), or those of
    /// an index and each of its images.
    Referrers(Box<referrers::Args>),
    /// Check that each stage image was built on its parent's current digest.
    VerifyChain(verify_chain::Args),
    /// Add directories as new layers on top of an image (umoci insert / crane append).
    Append(append::Args),
    /// Add a cross artifact's payload, system setup and config to a base image (a recipe step).
    Package(package::Args),
    /// Add layers from images and directories and the final config (a recipe step).
    Wrapper(wrapper::Args),
    /// Run the architecture guards on any image.
    Verify(verify::Args),
    /// package then wrapper for every arch, then the multi-arch index.
    Build(Box<build::Args>),
    /// Measure this machine: SHA-256, an image's layers, a layer from a
    /// directory at each compression level (figures only, writes nothing).
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(docs::CompletionsArgs),
    /// Write man pages into a directory (for packagers).
    #[command(hide = true)]
    Man(docs::ManArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let registry = match &cli.command {
        Command::Inspect(a) => Some(&a.registry),
        Command::Copy(a) => Some(&a.registry),
        Command::Unpack(a) => Some(&a.registry),
        Command::Manifest(a) => Some(&a.registry),
        Command::VerifyChain(a) => Some(&a.registry),
        Command::Append(a) => Some(&a.registry),
        Command::Package(a) => Some(&a.step.registry),
        Command::Wrapper(a) => Some(&a.step.registry),
        Command::Verify(a) => Some(&a.registry),
        Command::Build(a) => Some(&a.registry),
        Command::Referrers(a) => Some(&a.registry),
        Command::Extract(a) => Some(&a.registry),
        // `bench layers` prepares its own registry flags (other subcommands have none).
        Command::Fsck(_) | Command::Bench(_) | Command::Completions(_) | Command::Man(_) => None,
    };
    if let Some(r) = registry {
        r.prepare()?;
    }
    match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Copy(a) => copy::run(*a),
        Command::Unpack(a) => unpack::run(a),
        Command::Extract(a) => extract::run(*a),
        Command::Fsck(a) => fsck::run(a),
        Command::Manifest(a) => manifest::run(*a),
        Command::VerifyChain(a) => verify_chain::run(a),
        Command::Referrers(a) => referrers::run(*a),
        Command::Append(a) => append::run(a),
        Command::Package(a) => package::run(a),
        Command::Wrapper(a) => wrapper::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Build(a) => build::run(*a),
        Command::Bench(a) => bench::run(a),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// An error and its causes on one line, each cause once: library errors
/// already show their cause (`path: No space left on device`), so a cause
/// whose text is already there is not repeated.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses `--arch`/`--platform` values.
pub fn platform_arg(s: &str) -> Result<ocipack::platform::PlatformSpec, String> {
    s.parse().map_err(|e: ocipack::Error| e.to_string())
}

/// Parses image references.
pub fn reference_arg(s: &str) -> Result<ocipack::reference::Reference, String> {
    s.parse().map_err(|e: ocipack::Error| e.to_string())
}
