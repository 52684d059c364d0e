//! The recipe file as written: serde structs that refuse unknown keys and
//! keep spans, so later checks can name the line. `mod.rs` turns this into
//! the validated [`super::Recipe`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipe {
    pub recipe: RawHeader,
    /// Read separately (before expansion); kept here so the key is known.
    #[serde(default)]
    #[allow(dead_code)]
    pub variables: BTreeMap<String, S>,
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<RawInput>>,
    #[serde(default)]
    pub copy: Vec<Spanned<RawCopy>>,
    #[serde(default)]
    pub prune: Vec<Spanned<RawPrune>>,
    #[serde(default)]
    pub dir: Vec<Spanned<RawDir>>,
    #[serde(default)]
    pub file: Vec<Spanned<RawFile>>,
    #[serde(default)]
    pub symlink: Vec<Spanned<RawSymlink>>,
    #[serde(default)]
    pub alternative: Vec<Spanned<RawAlternative>>,
    #[serde(default)]
    pub system: RawSystem,
    #[serde(default)]
    pub config: RawConfig,
    #[serde(default)]
    pub annotations: BTreeMap<String, S>,
    #[serde(default)]
    pub guards: RawGuards,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: S,
    #[serde(default)]
    pub description: Option<S>,
    /// Which command the recipe is for (`package`, `wrapper`).
    pub kind: S,
    /// The stage this step's parent is (recorded as
    /// `org.kataglyphis.parent-stage`).
    #[serde(default)]
    pub parent_stage: Option<S>,
    /// The arch the BuildKit host built on; `when.foreign` compares to it.
    #[serde(default)]
    #[allow(dead_code)] // read before expansion, see `load::peek_build_arch`
    pub build_arch: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    #[serde(default)]
    pub arch: Option<Vec<S>>,
    #[serde(default)]
    pub foreign: Option<bool>,
    /// A variable switching the entry: on when truthy, or with `equals`,
    /// when its value is exactly that.
    #[serde(default)]
    pub var: Option<S>,
    #[serde(default)]
    pub equals: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    #[serde(default)]
    pub description: Option<S>,
    /// Default reference (overridable on the command line).
    #[serde(default, rename = "ref")]
    pub reference: Option<S>,
    /// `target` (must be the target platform) or `any`.
    #[serde(default)]
    pub platform: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    #[serde(default)]
    pub from: Option<S>,
    #[serde(default)]
    pub dir: Option<S>,
    #[serde(default)]
    pub paths: Vec<S>,
    #[serde(default)]
    pub dest: Option<S>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub exclude: Vec<S>,
    #[serde(default)]
    pub owner: Option<S>,
    #[serde(default)]
    pub layer: Option<S>,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrune {
    pub paths: Vec<S>,
    pub reason: S,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDir {
    pub path: S,
    #[serde(default)]
    pub mode: Option<S>,
    #[serde(default)]
    pub owner: Option<S>,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub path: S,
    #[serde(default)]
    pub content: Option<S>,
    #[serde(default)]
    pub source: Option<S>,
    #[serde(default)]
    pub mode: Option<S>,
    #[serde(default)]
    pub owner: Option<S>,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSymlink {
    pub path: S,
    pub target: S,
    #[serde(default)]
    pub owner: Option<S>,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlternative {
    pub name: S,
    pub link: S,
    pub path: S,
    pub priority: Spanned<i64>,
    #[serde(default)]
    pub slaves: Vec<Spanned<RawSlave>>,
    /// `--set NAME PATH` after installing (default true).
    #[serde(default)]
    pub set: Option<bool>,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlave {
    pub name: S,
    pub link: S,
    pub path: S,
}

/// `[system]`: switches of the generated system layer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    /// Write `/etc/ld.so.cache` (default: when the base has glibc).
    #[serde(default)]
    pub ld_cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub user: Option<S>,
    #[serde(default)]
    pub workdir: Option<S>,
    #[serde(default)]
    pub volumes: Vec<S>,
    #[serde(default)]
    pub entrypoint: Option<Vec<S>>,
    #[serde(default)]
    pub cmd: Option<Vec<S>>,
    #[serde(default)]
    pub exposed_ports: Vec<S>,
    #[serde(default)]
    pub stop_signal: Option<S>,
    #[serde(default)]
    pub env: RawEnv,
    #[serde(default)]
    pub labels: BTreeMap<String, S>,
    #[serde(default)]
    pub healthcheck: Option<Spanned<RawHealthcheck>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    #[serde(default)]
    pub set: BTreeMap<String, S>,
    #[serde(default)]
    pub prepend: BTreeMap<String, Vec<S>>,
    #[serde(default)]
    pub append: BTreeMap<String, Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthcheck {
    pub test: Vec<S>,
    #[serde(default)]
    pub interval: Option<S>,
    #[serde(default)]
    pub timeout: Option<S>,
    #[serde(default)]
    pub start_period: Option<S>,
    #[serde(default)]
    pub start_interval: Option<S>,
    #[serde(default)]
    pub retries: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    /// Guard name -> reason. A waived guard still runs and reports.
    #[serde(default)]
    pub waive: BTreeMap<String, S>,
    #[serde(default)]
    pub required: Vec<S>,
    #[serde(default)]
    pub elf: RawElfGuard,
    #[serde(default)]
    pub compiler: RawCompilerGuard,
    #[serde(default)]
    pub symlinks: RawSymlinkGuard,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawElfGuard {
    #[serde(default)]
    pub allow: Vec<Spanned<RawAllow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    pub glob: S,
    pub reason: S,
    #[serde(default)]
    pub when: Option<RawWhen>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompilerGuard {
    /// Links to resolve; default `/usr/bin/cc` plus every alternative link
    /// of the recipe.
    #[serde(default)]
    pub links: Option<Vec<S>>,
    #[serde(default)]
    pub gcc_prefix: Option<S>,
    #[serde(default)]
    pub gcc_version: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSymlinkGuard {
    /// Trees (globs allowed) with no dangling symlinks; default every
    /// directory named `lib-dynload`.
    #[serde(default)]
    pub trees: Option<Vec<S>>,
}
