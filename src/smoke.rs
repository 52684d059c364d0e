//! The compiler guards (a) and (c) done for real, without root or binfmt:
//! the image's own compiler runs under `qemu-<cpu>-static -L <rootfs>`.
//! (a) `cc -dumpmachine` must name the target; (c) `cc -x c - -c -o OBJ`
//! must write an object whose ELF machine is the target's.
//!
//! A real gcc is a driver: it starts `cc1` and `as` as separate programs.
//! Without binfmt the kernel cannot run those target binaries, so the
//! driver gets `-wrapper QEMU,-L,ROOT` and starts each of them under qemu
//! too. The driver runs from its host path inside ROOT, so it finds `cc1`
//! under its own install prefix (gcc derives it from argv\[0\]); `as` is
//! looked up on the image's `PATH` (through `COMPILER_PATH`, with ROOT
//! prefixed), as execvp would inside the image. qemu's `-L` maps only some
//! syscalls (open, not access/faccessat), so guest-visible paths are not
//! enough: host paths under ROOT are used throughout, and absolute symlinks
//! in ROOT are first rewritten as relative ones so that the host resolves
//! them inside ROOT, as the image would. Clang needs no wrapper (cc1 runs
//! in-process, the assembler is integrated) and does not accept one.
//!
//! amd64 on an amd64 host runs under `qemu-x86_64-static -L ROOT` as well:
//! run natively, the host's loader and libc would serve the image's
//! compiler, which proves nothing about the image.
//!
//! Limit: qemu's `-L` serves a path the rootfs lacks from the host. For a
//! foreign arch such a file is of the wrong machine and the run fails; on
//! amd64 (or a host with that arch's multiarch libraries at the same path)
//! a file missing from the image can be taken from the host unnoticed.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::guard::GuardOutcome;
use crate::image::ResolvedImage;
use crate::layer::ImagePath;
use crate::platform::TargetArch;
use crate::transport::ImageSource;
use crate::unpack::{unpack_image, UnpackOptions};

/// The Debian package with the qemu-user binaries.
pub const QEMU_PACKAGE: &str = "qemu-user-static";
/// Guard (a): `cc -dumpmachine` names the target.
pub const DUMPMACHINE_GUARD: &str = "dumpmachine";
/// Guard (c): compile-to-object smoke under the target platform.
pub const SMOKE_GUARD: &str = "smoke";
/// The default PATH of BuildKit and Docker, for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The smoke's source, fed on stdin.
const SOURCE: &[u8] = b"int ocipack_smoke(void) { return 42; }\n";

/// The outcome of the smoke (the JSON of `verify --exec-smoke`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SmokeReport {
    Passed {
        compiler: String,
        dumpmachine: String,
        object: String,
    },
    Failed {
        compiler: Option<String>,
        reason: String,
    },
}

impl SmokeReport {
    pub fn failed(&self) -> bool {
        matches!(self, SmokeReport::Failed { .. })
    }
}

/// Both checks of one run: `Ok` carries what was found, `Err` why it failed.
#[derive(Debug, Clone)]
pub struct SmokeOutcome {
    /// The binary that ran (inside the image), once resolved.
    pub compiler: Option<String>,
    /// (a): the triple printed.
    pub dumpmachine: std::result::Result<String, String>,
    /// (c): the object's ELF description.
    pub object: std::result::Result<String, String>,
}

impl SmokeOutcome {
    fn failed_before_running(compiler: Option<String>, reason: String) -> SmokeOutcome {
        SmokeOutcome {
            compiler,
            dumpmachine: Err(reason.clone()),
            object: Err(reason),
        }
    }

    /// The report `verify --exec-smoke` prints.
    pub fn report(&self) -> SmokeReport {
        match (&self.compiler, &self.dumpmachine, &self.object) {
            (Some(c), Ok(d), Ok(o)) => SmokeReport::Passed {
                compiler: c.clone(),
                dumpmachine: d.clone(),
                object: o.clone(),
            },
            _ => {
                let mut reasons = Vec::new();
                if let Err(e) = &self.dumpmachine {
                    reasons.push(e.clone());
                }
                if let Err(e) = &self.object {
                    if !reasons.contains(e) {
                        reasons.push(e.clone());
                    }
                }
                SmokeReport::Failed {
                    compiler: self.compiler.clone(),
                    reason: reasons.join("\n"),
                }
            }
        }
    }

    /// The two guard outcomes, named [`DUMPMACHINE_GUARD`] and [`SMOKE_GUARD`].
    pub fn guards(&self, link: &str) -> [GuardOutcome; 2] {
        let shown = match &self.compiler {
            Some(c) if c != link => format!("{link} ({c})"),
            _ => link.to_string(),
        };
        let one = |name: &str, r: &std::result::Result<String, String>, what: &str| {
            let mut g = GuardOutcome::new(name);
            g.checked = 1;
            match r {
                Ok(v) => g.notes.push(format!("{shown}: {what} {v}")),
                Err(e) => g.offend(link, e.clone()),
            }
            g
        };
        [
            one(DUMPMACHINE_GUARD, &self.dumpmachine, "-dumpmachine ="),
            one(SMOKE_GUARD, &self.object, "compiled an object:"),
        ]
    }
}

/// The qemu-user binary for `arch`, if installed.
pub fn qemu_for(arch: TargetArch) -> Option<PathBuf> {
    let name = format!("qemu-{}-static", arch.qemu_name());
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(&name))
        .find(|p| p.is_file())
}

/// Why nothing could run without qemu, with what to install.
pub fn qemu_missing(arch: TargetArch) -> String {
    format!(
        "qemu-{}-static is not installed: apt-get install {QEMU_PACKAGE} (the compiler guards \
         run the image's cc under qemu-user; skip them only by name with a reason: \
         --waive {DUMPMACHINE_GUARD}=REASON --waive {SMOKE_GUARD}=REASON)",
        arch.qemu_name()
    )
}

/// The environment the compiler runs with, from the image config's `Env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmokeEnv {
    pub path: Option<String>,
    pub ld_library_path: Option<String>,
}

impl SmokeEnv {
    pub fn from_config(config: &serde_json::Value) -> SmokeEnv {
        let mut env = SmokeEnv::default();
        let list = config
            .get("config")
            .and_then(|c| c.get("Env"))
            .and_then(serde_json::Value::as_array);
        for v in list
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
        {
            match v.split_once('=') {
                Some(("PATH", p)) => env.path = Some(p.to_string()),
                Some(("LD_LIBRARY_PATH", p)) => env.ld_library_path = Some(p.to_string()),
                _ => {}
            }
        }
        env
    }
}

/// Unpacks `img` into a temp dir and runs the smoke with `compiler` (a path
/// inside the image, e.g. `/usr/bin/cc`). A missing qemu-user is a failure.
pub fn exec_smoke(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    arch: TargetArch,
    compiler: &str,
) -> Result<SmokeOutcome> {
    let Some(qemu) = qemu_for(arch) else {
        return Ok(SmokeOutcome::failed_before_running(
            None,
            qemu_missing(arch),
        ));
    };
    let tmp = crate::atomic::scratch_dir()?;
    let root = tmp.path().join("rootfs");
    let opts = UnpackOptions {
        preserve_ownership: false,
        devices: false,
    };
    unpack_image(src, img, &root, &opts)?;
    let env = SmokeEnv::from_config(&img.config_json);
    run_smoke(&qemu, &root, arch, compiler, tmp.path(), &env)
}

/// One command's result, for failure messages.
fn describe_run(cmd: &[String], out: &Output) -> String {
    let mut s = String::new();
    let _ = write!(s, "command: {}", shell_words(cmd));
    match (
        out.status.code(),
        std::os::unix::process::ExitStatusExt::signal(&out.status),
    ) {
        (Some(c), _) => {
            let _ = write!(s, "\nexit status: {c}");
        }
        (None, Some(sig)) => {
            let _ = write!(s, "\nexit status: killed by signal {sig}");
        }
        _ => {
            let _ = write!(s, "\nexit status: {}", out.status);
        }
    }
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end();
        if text.is_empty() {
            let _ = write!(s, "\n{name}: (empty)");
        } else {
            let _ = write!(s, "\n{name}:\n  {}", text.replace('\n', "\n  "));
        }
    }
    s
}

fn shell_words(cmd: &[String]) -> String {
    cmd.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` (program first) with `env` only, feeding `stdin`.
fn run_cmd(cmd: &[String], env: &[(String, String)], stdin: &[u8]) -> Result<Output> {
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| Error::io(&cmd[0], e))?;
    if let Some(mut w) = child.stdin.take() {
        // A compiler that exits early closes its stdin: not our error.
        let _ = w.write_all(stdin);
    }
    child.wait_with_output().map_err(|e| Error::io(&cmd[0], e))
}

/// Rewrites every absolute symlink under `root` (and every relative one
/// whose `..` would climb above it) as a relative link that stays inside
/// `root`, so the host resolves it as the image would. Only for a scratch
/// rootfs the caller owns.
pub fn relativize_symlinks(root: &Path) -> Result<u64> {
    let mut changed = 0;
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.map_err(|e| Error::io(root, e.into()))?;
        if !e.path_is_symlink() {
            continue;
        }
        let link = e.path();
        let target = fs::read_link(link).map_err(|err| Error::io(link, err))?;
        let Ok(rel) = link.strip_prefix(root) else {
            continue;
        };
        let parent: Vec<_> = rel
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        // The target as a path from the root, `..` clamped at the root.
        let mut dest: Vec<Component> = if target.is_absolute() {
            Vec::new()
        } else {
            parent.clone()
        };
        let mut escaped = false;
        for c in target.components() {
            match c {
                Component::Normal(_) => dest.push(c),
                Component::ParentDir if dest.pop().is_none() => escaped = true,
                _ => {}
            }
        }
        if !target.is_absolute() && !escaped {
            continue;
        }
        let mut new = PathBuf::new();
        for _ in &parent {
            new.push("..");
        }
        for c in &dest {
            new.push(c);
        }
        if new.as_os_str().is_empty() {
            new.push(".");
        }
        fs::remove_file(link).map_err(|err| Error::io(link, err))?;
        std::os::unix::fs::symlink(&new, link).map_err(|err| Error::io(link, err))?;
        changed += 1;
    }
    Ok(changed)
}

/// Runs guards (a) and (c) against an unpacked rootfs it may modify
/// (absolute symlinks are made relative). `scratch` receives temp files and
/// the object.
pub fn run_smoke(
    qemu: &Path,
    root: &Path,
    arch: TargetArch,
    compiler: &str,
    scratch: &Path,
    image_env: &SmokeEnv,
) -> Result<SmokeOutcome> {
    let root_s = root.display().to_string();
    if root_s.contains(',') {
        // gcc splits -wrapper's argument at commas.
        return Err(Error::invalid(
            root_s,
            "the smoke's rootfs path contains a comma; set TMPDIR to a path without one",
        ));
    }
    relativize_symlinks(root)?;
    let resolved = match resolve_in_root(root, Path::new(compiler)) {
        Ok(p) => p,
        Err(reason) => {
            return Ok(SmokeOutcome::failed_before_running(
                None,
                format!("{compiler}: {reason}"),
            ))
        }
    };
    // A shell-script wrapper cannot run without the target's shell; run the
    // `.real` binary it wraps, as the static compiler guard reads it.
    let mut exe = resolved.clone();
    if fs::read(root.join(exe.rel()))
        .map(|b| b.starts_with(b"#!"))
        .unwrap_or(false)
    {
        let mut real = exe.rel().as_os_str().to_owned();
        real.push(".real");
        exe = ImagePath::from(Path::new(&real));
    }
    let shown = exe.to_string();
    let host_exe = root.join(exe.rel()).display().to_string();
    let qemu_s = qemu.display().to_string();

    let tmpdir = scratch.join("tmp");
    fs::create_dir_all(&tmpdir).map_err(|e| Error::io(&tmpdir, e))?;
    let path = image_env
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let compiler_path: Vec<String> = path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{root_s}{d}"))
        .collect();
    let mut env = vec![
        ("PATH".to_string(), path.clone()),
        ("COMPILER_PATH".to_string(), compiler_path.join(":")),
        ("TMPDIR".to_string(), tmpdir.display().to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    if let Some(l) = &image_env.ld_library_path {
        env.push(("LD_LIBRARY_PATH".to_string(), l.clone()));
    }
    let under_qemu = |args: &[&str]| -> Vec<String> {
        let mut v = vec![
            qemu_s.clone(),
            "-L".into(),
            root_s.clone(),
            host_exe.clone(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };

    // (a)
    let cmd = under_qemu(&["-dumpmachine"]);
    let out = run_cmd(&cmd, &env, b"")?;
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dumpmachine = if !out.status.success() {
        Err(format!(
            "{shown} -dumpmachine failed under qemu\n{}",
            describe_run(&cmd, &out)
        ))
    } else if printed.starts_with(&format!("{}-", arch.gnu_cpu())) {
        Ok(printed)
    } else {
        Err(format!(
            "{shown} -dumpmachine printed {printed:?}, expected a {}-* triple",
            arch.gnu_cpu()
        ))
    };

    // (c): gcc's sub-programs must run under qemu too.
    let version = run_cmd(&under_qemu(&["--version"]), &env, b"")?;
    let is_clang = String::from_utf8_lossy(&version.stdout).contains("clang");
    let object_path = scratch.join("smoke.o");
    let object_s = object_path.display().to_string();
    let wrapper = format!("{qemu_s},-L,{root_s}");
    let mut args: Vec<&str> = Vec::new();
    if !is_clang {
        args.extend(["-wrapper", wrapper.as_str()]);
    }
    args.extend(["-x", "c", "-", "-c", "-o", object_s.as_str()]);
    let cmd = under_qemu(&args);
    let out = run_cmd(&cmd, &env, SOURCE)?;
    let object = if !out.status.success() {
        let mut why = format!(
            "{shown}: the compile-to-object smoke failed\n{}",
            describe_run(&cmd, &out)
        );
        // A sub-program that qemu cannot load exits 1 without a word, and
        // gcc adds none: rerun with -v so the failing command shows.
        if !is_clang {
            let mut verbose = cmd.clone();
            verbose.insert(4, "-v".into());
            if let Ok(v) = run_cmd(&verbose, &env, SOURCE) {
                let text = String::from_utf8_lossy(&v.stderr);
                let _ = write!(
                    why,
                    "\nrerun with -v, stderr:\n  {}",
                    text.trim_end().replace('\n', "\n  ")
                );
            }
        }
        Err(why)
    } else {
        judge_object(&object_path, arch).map_err(|e| {
            format!(
                "{shown}: the compile-to-object smoke: {e}\n{}",
                describe_run(&cmd, &out)
            )
        })
    };
    Ok(SmokeOutcome {
        compiler: Some(shown),
        dumpmachine,
        object,
    })
}

/// The object must be a relocatable ELF file of the target.
fn judge_object(path: &Path, arch: TargetArch) -> std::result::Result<String, String> {
    let mut head = Vec::new();
    let f = fs::File::open(path).map_err(|e| format!("no object written ({e})"))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(f, crate::elf::HEADER_LEN as u64),
        &mut head,
    )
    .map_err(|e| format!("reading the object: {e}"))?;
    match crate::elf::parse(&head) {
        Ok(Some(info)) if info.matches(arch) => Ok(info.describe()),
        Ok(Some(info)) => Err(format!("the object is {}, not {arch}", info.describe())),
        Ok(None) => Err("the object is not an ELF file".into()),
        Err(e) => Err(format!("the object: {e}")),
    }
}

/// Resolves `path` inside `root` as if `root` were `/`: absolute symlink
/// targets restart at `root`, `..` never climbs above it. Returns the
/// resolved path in the image.
pub fn resolve_in_root(root: &Path, path: &Path) -> std::result::Result<ImagePath, String> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let meta = fs::symlink_metadata(root.join(&next)).map_err(|_| {
            format!(
                "{} does not exist in the image",
                ImagePath::from(next.as_path())
            )
        })?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err("too many levels of symbolic links".into());
            }
            let target = fs::read_link(root.join(&next)).map_err(|e| e.to_string())?;
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(p) => pending.push(p.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
        } else {
            cur = next;
        }
    }
    Ok(ImagePath::from(cur.as_path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_chains_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        fs::create_dir_all(r.join("opt/gcc/bin")).unwrap();
        fs::write(r.join("opt/gcc/bin/gcc"), b"x").unwrap();
        symlink("/etc/alternatives/cc", r.join("usr/bin/cc")).unwrap();
        symlink("../../opt/gcc/bin/gcc", r.join("etc/alternatives/cc")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/usr/bin/cc")).unwrap(),
            "/opt/gcc/bin/gcc"
        );
        // `..` cannot climb out of the root.
        symlink(
            "../../../../../../etc/alternatives/cc",
            r.join("usr/bin/up"),
        )
        .unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/usr/bin/up")).unwrap(),
            "/opt/gcc/bin/gcc"
        );
        symlink("loop", r.join("usr/bin/loop")).unwrap();
        assert!(resolve_in_root(r, Path::new("/usr/bin/loop"))
            .unwrap_err()
            .contains("too many"));
        assert!(resolve_in_root(r, Path::new("/usr/bin/none"))
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn absolute_and_escaping_symlinks_become_relative() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        symlink("/etc/alternatives/cc", r.join("usr/bin/cc")).unwrap();
        symlink("../../../../usr/bin/gcc", r.join("etc/alternatives/x")).unwrap();
        symlink("gcc-12", r.join("usr/bin/gcc")).unwrap();
        symlink("/", r.join("usr/bin/top")).unwrap();
        assert_eq!(relativize_symlinks(r).unwrap(), 3);
        let rl = |p: &str| fs::read_link(r.join(p)).unwrap();
        assert_eq!(rl("usr/bin/cc"), PathBuf::from("../../etc/alternatives/cc"));
        assert_eq!(rl("etc/alternatives/x"), PathBuf::from("../../usr/bin/gcc"));
        assert_eq!(rl("usr/bin/gcc"), PathBuf::from("gcc-12"));
        assert_eq!(rl("usr/bin/top"), PathBuf::from("../.."));
    }

    #[test]
    fn env_from_the_config_and_failure_text() {
        let cfg = serde_json::json!({"config": {"Env": [
            "PATH=/opt/gcc/bin:/usr/bin", "LD_LIBRARY_PATH=/opt/gcc/lib64", "X=1"]}});
        let env = SmokeEnv::from_config(&cfg);
        assert_eq!(env.path.as_deref(), Some("/opt/gcc/bin:/usr/bin"));
        assert_eq!(env.ld_library_path.as_deref(), Some("/opt/gcc/lib64"));
        assert_eq!(
            SmokeEnv::from_config(&serde_json::json!({})),
            SmokeEnv::default()
        );
        let words = shell_words(&["qemu".into(), "a b".into(), "it's".into()]);
        assert_eq!(words, r"qemu 'a b' 'it'\''s'");
        let o = SmokeOutcome::failed_before_running(None, "no qemu".into());
        let [a, c] = o.guards("/usr/bin/cc");
        assert_eq!(
            (a.guard.as_str(), c.guard.as_str()),
            ("dumpmachine", "smoke")
        );
        assert!(!a.passed() && !c.passed());
        assert!(matches!(o.report(), SmokeReport::Failed { reason, .. } if reason == "no qemu"));
    }
}
