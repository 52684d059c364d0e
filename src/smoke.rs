//! `verify --exec-smoke`: the pipeline's guards (a) and (c) done for real,
//! without root or binfmt. The image's own compiler runs under
//! `qemu-<arch>-static -L <rootfs>`: `cc -dumpmachine` must name the target,
//! and a compile-to-object smoke must produce an object for the target.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::platform::TargetArch;
use crate::transport::ImageSource;
use crate::unpack::{unpack_image, UnpackOptions};

/// The outcome of the smoke test.
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
    /// qemu-user is not installed: nothing was run.
    Skipped { reason: String },
}

impl SmokeReport {
    pub fn failed(&self) -> bool {
        matches!(self, SmokeReport::Failed { .. })
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

/// Unpacks `img` into a temp dir and runs the smoke with `compiler` (a path
/// inside the image, e.g. `/usr/bin/cc`).
pub fn exec_smoke(
    src: &dyn ImageSource,
    img: &ResolvedImage,
    arch: TargetArch,
    compiler: &str,
) -> Result<SmokeReport> {
    let Some(qemu) = qemu_for(arch) else {
        return Ok(SmokeReport::Skipped {
            reason: format!(
                "qemu-{}-static is not installed (apt-get install qemu-user-static); exec smoke not run",
                arch.qemu_name()
            ),
        });
    };
    let tmp = tempfile::Builder::new()
        .prefix("ocipack-smoke-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let root = tmp.path().join("rootfs");
    let opts = UnpackOptions {
        preserve_ownership: false,
        devices: false,
    };
    unpack_image(src, img, &root, &opts)?;
    run_smoke(&qemu, &root, arch, compiler, tmp.path())
}

/// Runs the smoke against an unpacked rootfs.
pub fn run_smoke(
    qemu: &Path,
    root: &Path,
    arch: TargetArch,
    compiler: &str,
    scratch: &Path,
) -> Result<SmokeReport> {
    let resolved = match resolve_in_root(root, Path::new(compiler)) {
        Ok(p) => p,
        Err(reason) => {
            return Ok(SmokeReport::Failed {
                compiler: None,
                reason: format!("{compiler}: {reason}"),
            })
        }
    };
    // A shell-script wrapper cannot run without the target's shell; run the
    // `.real` binary it wraps, as the static compiler guard reads it.
    let mut exe = resolved.clone();
    if fs::read(root.join(&exe))
        .map(|b| b.starts_with(b"#!"))
        .unwrap_or(false)
    {
        let mut real = exe.clone().into_os_string();
        real.push(".real");
        exe = PathBuf::from(real);
    }
    let shown = format!("/{}", exe.display());
    let host_exe = root.join(&exe);
    let fail = |reason: String| {
        Ok(SmokeReport::Failed {
            compiler: Some(shown.clone()),
            reason,
        })
    };
    let out = Command::new(qemu)
        .arg("-L")
        .arg(root)
        .arg(&host_exe)
        .arg("-dumpmachine")
        .output()
        .map_err(|e| Error::io(qemu, e))?;
    let dumpmachine = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return fail(format!(
            "{shown} -dumpmachine failed under {}: {}",
            qemu.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !dumpmachine.starts_with(arch.gnu_cpu()) {
        return fail(format!(
            "{shown} -dumpmachine printed {dumpmachine:?}, expected a {} triple",
            arch.gnu_cpu()
        ));
    }
    let object = scratch.join("smoke.o");
    let mut child = Command::new(qemu)
        .arg("-L")
        .arg(root)
        .arg(&host_exe)
        .args(["-x", "c", "-", "-c", "-o"])
        .arg(&object)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(qemu, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"int ocipack_smoke(void) { return 42; }\n");
    }
    let out = child.wait_with_output().map_err(|e| Error::io(qemu, e))?;
    if !out.status.success() {
        return fail(format!(
            "{shown}: compile-to-object smoke failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bytes = match fs::read(&object) {
        Ok(b) => b,
        Err(e) => return fail(format!("{shown}: no object written: {e}")),
    };
    let head = &bytes[..bytes.len().min(64)];
    match crate::elf::parse(head) {
        Ok(Some(info)) if info.matches(arch) => Ok(SmokeReport::Passed {
            compiler: shown,
            dumpmachine,
            object: info.describe(),
        }),
        Ok(Some(info)) => fail(format!(
            "the smoke object is {}, not {arch}",
            info.describe()
        )),
        Ok(None) => fail("the smoke object is not an ELF file".into()),
        Err(e) => fail(format!("the smoke object: {e}")),
    }
}

/// Resolves `path` inside `root` as if `root` were `/`: absolute symlink
/// targets restart at `root`, `..` never climbs above it. Returns the
/// resolved path relative to `root`.
pub fn resolve_in_root(root: &Path, path: &Path) -> std::result::Result<PathBuf, String> {
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
        let meta = fs::symlink_metadata(root.join(&next))
            .map_err(|_| format!("/{} does not exist in the image", next.display()))?;
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
    Ok(cur)
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
            PathBuf::from("opt/gcc/bin/gcc")
        );
        // `..` cannot climb out of the root.
        symlink(
            "../../../../../../etc/alternatives/cc",
            r.join("usr/bin/up"),
        )
        .unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/usr/bin/up")).unwrap(),
            PathBuf::from("opt/gcc/bin/gcc")
        );
        symlink("loop", r.join("usr/bin/loop")).unwrap();
        assert!(resolve_in_root(r, Path::new("/usr/bin/loop"))
            .unwrap_err()
            .contains("too many"));
        assert!(resolve_in_root(r, Path::new("/usr/bin/none"))
            .unwrap_err()
            .contains("does not exist"));
    }
}
