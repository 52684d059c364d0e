//! Recipes: what an image step (`package`, `wrapper`) does, declared in a
//! TOML file under `layouts/`.
//!
//! A recipe is loaded for one target arch: variables are expanded, `when`
//! conditions evaluated, every path checked. What comes out is plain data
//! ([`Recipe`]) that the commands execute; any mistake in the file is an
//! [`crate::Error::Recipe`] naming the file, line and column.
//!
//! The format, section by section (see `layouts/README.md` for a tour):
//!
//! - `[recipe]` name, `kind` (`package` | `wrapper`), `parent_stage`,
//!   `build_arch` (the BuildKit host arch; `when.foreign` means target != it);
//! - `[variables]` defaults, overridden by `--versions FILE` and `--set`;
//! - `[inputs.NAME]` images the step reads (`platform = "target" | "any"`);
//! - `[[copy]]` trees and globs from an input (`from`) or a repo directory
//!   (`dir`), with `dest`, `optional`, `exclude`, `owner`, `layer`, `when`;
//! - `[[prune]]` globs excluded from every copy (with a reason);
//! - `[[dir]]`, `[[file]]`, `[[symlink]]`, `[[alternative]]` system setup,
//!   written natively into one generated layer;
//! - `[config]` user, workdir, volumes, entrypoint, cmd, env
//!   (`set`/`prepend`/`append`), labels, healthcheck, exposed ports;
//!   `[annotations]` for the manifest;
//! - `[guards]` waivers (by name, with a reason), required paths, ELF
//!   allow-list, compiler and dangling-symlink settings.

mod config;
mod context;
mod copy;
mod guards;
mod load;
mod schema;
mod system;
#[cfg(test)]
mod tests;
mod validate;
pub mod vars;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::platform::TargetArch;

pub use load::{load, load_str};
pub use validate::{
    check_abs_path, check_glob, is_glob, parse_duration, parse_mode, parse_owner, truthy,
    FALSE_VALUES,
};
pub use vars::{VarInputs, Vars};

/// The names of the guards, as used by waivers.
pub const GUARD_NAMES: [&str; 8] = [
    "elf",
    "compiler",
    "symlinks",
    "required",
    "platform",
    "entrypoint",
    // The exec guards (src/step/exec.rs): `cc -dumpmachine`, compile smoke.
    "dumpmachine",
    "smoke",
];

/// Which command a recipe is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipeKind {
    Package,
    Wrapper,
}

/// A recipe loaded for one target arch.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub kind: RecipeKind,
    pub parent_stage: Option<String>,
    pub arch: TargetArch,
    pub build_arch: TargetArch,
    /// Every variable with its final value (built-ins included).
    pub variables: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, Input>,
    /// Layers to add, bottom first (the system layer comes after them).
    pub layers: Vec<LayerPlan>,
    pub system: SystemSetup,
    pub config: ConfigEdit,
    pub annotations: BTreeMap<String, String>,
    pub guards: GuardSettings,
}

/// An image the step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub description: Option<String>,
    /// Default reference, when the recipe gives one.
    pub reference: Option<String>,
    pub platform: InputPlatform,
}

/// Which platform an input image must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPlatform {
    /// The target's (e.g. the venv export, built on the target platform).
    Target,
    /// Any: the cross lane's artifacts are build-arch images holding target
    /// payload. From an index, the target platform is preferred, then the
    /// build arch. The ELF guard judges the payload either way.
    Any,
}

/// One added layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    pub name: String,
    pub source: LayerSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// Selected from an input image's merged tree.
    Image { input: String, selection: Selection },
    /// A directory of the repository (relative paths resolved against the
    /// recipe's directory), placed at `dest`.
    Dir {
        dir: PathBuf,
        dest: String,
        owner: Option<(u64, u64)>,
    },
}

/// What to take from an image: the layer engine's own selection type, so
/// a recipe converts into it without a copy.
pub use crate::layer::select::{SelectRule, Selection};

/// Files written natively into the generated system layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemSetup {
    pub dirs: Vec<DirSpec>,
    pub files: Vec<FileSpec>,
    pub symlinks: Vec<SymlinkSpec>,
    pub alternatives: Vec<AlternativeSpec>,
}

impl SystemSetup {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
            && self.files.is_empty()
            && self.symlinks.is_empty()
            && self.alternatives.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSpec {
    pub path: String,
    pub mode: u32,
    pub owner: (u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: (u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymlinkSpec {
    pub path: String,
    pub target: String,
    pub owner: (u64, u64),
}

/// `update-alternatives --install LINK NAME PATH PRIORITY [--slave ...]`,
/// then `--set NAME PATH` when `set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeSpec {
    pub name: String,
    pub link: String,
    pub path: String,
    pub priority: i32,
    pub slaves: Vec<SlaveSpec>,
    pub set: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveSpec {
    pub name: String,
    pub link: String,
    pub path: String,
}

/// Changes to the image config; the base's config is kept and extended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigEdit {
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub volumes: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub env: EnvEdit,
    pub labels: BTreeMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
}

/// Environment edits, applied in the order set, prepend, append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvEdit {
    pub set: BTreeMap<String, String>,
    /// PATH-like variables: items go in front (or behind, for `append`),
    /// duplicates of them are removed from the old value, `:`-joined.
    pub prepend: BTreeMap<String, Vec<String>>,
    pub append: BTreeMap<String, Vec<String>>,
}

/// Docker's `Healthcheck` config object; durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u64>,
}

/// How the guards run for this recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSettings {
    /// Guard name -> reason.
    pub waivers: BTreeMap<String, String>,
    pub required: Vec<String>,
    pub elf_allow: Vec<ElfAllow>,
    /// Links the compiler guard resolves inside the image.
    pub compiler_links: Vec<String>,
    /// `/opt/gcc-V`: its `lib/gcc/<triple>/<version>/` must name the target.
    pub gcc_prefix: Option<String>,
    pub gcc_version: Option<String>,
    /// Globs of trees that must hold no dangling symlink.
    pub symlink_trees: Vec<String>,
}

/// Paths the ELF guard accepts whatever their arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfAllow {
    pub glob: String,
    pub reason: String,
}

/// The default trees of the dangling-symlink guard: Python's `lib-dynload`
/// anywhere (C extensions fail to import through a dangling link).
pub const DEFAULT_SYMLINK_TREES: [&str; 1] = ["/**/lib-dynload"];
