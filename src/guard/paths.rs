//! Path guards: no dangling symlinks in configured trees ("Fix 3":
//! Python's `lib-dynload`), required paths present, and the config's
//! platform matching the target.

use serde_json::Value;

use super::GuardOutcome;
use crate::error::{Error, Result};
use crate::layer::glob::Glob;
use crate::platform::TargetArch;
use crate::tree::{FileKind, ImagePath, ImageTree};

/// Every symlink below a directory matching one of `trees` must resolve
/// inside the image (`find -xtype l` in a chroot, statically).
pub fn dangling_symlinks(tree: &dyn ImageTree, trees: &[String]) -> Result<GuardOutcome> {
    let mut out = GuardOutcome::new("symlinks");
    let mut matchers = Vec::new();
    for t in trees {
        let g = Glob::new(t)
            .map_err(|e| Error::invalid(format!("symlink guard tree {t}"), e.to_string()))?;
        matchers.push(g);
    }
    let paths = tree.paths();
    let roots: Vec<&ImagePath> = paths
        .iter()
        .filter(|p| matchers.iter().any(|m| m.matches(p.rel())))
        .filter(|p| tree.node(p).is_some_and(|n| n.kind == FileKind::Dir))
        .collect();
    for root in &roots {
        out.checked += 1;
        for p in paths.iter().filter(|p| p != root && p.starts_with(root)) {
            let Some(node) = tree.node(p) else { continue };
            if node.kind != FileKind::Symlink {
                continue;
            }
            if let Err(e) = tree.resolve(p) {
                out.offend(
                    p.to_string(),
                    format!("-> {}: {e}", node.link.unwrap_or_default()),
                );
            }
        }
    }
    out.notes.push(format!(
        "{} tree(s) matched {}",
        roots.len(),
        trees.join(", ")
    ));
    Ok(out)
}

/// Each path must exist (through symlinks, inside the image).
pub fn required(tree: &dyn ImageTree, paths: &[String]) -> GuardOutcome {
    let mut out = GuardOutcome::new("required");
    for p in paths {
        out.checked += 1;
        if let Err(e) = tree.resolve(&ImagePath::from(p)) {
            out.offend(p.as_str(), format!("required path missing: {e}"));
        }
    }
    out
}

/// The command the runtime will start must exist in the image: the config's
/// `Entrypoint[0]` (else `Cmd[0]`), resolved inside the image through its
/// symlinks, must be an executable file. A bare name is looked up in the
/// config's `PATH`, as the runtime does. Without either, nothing to check.
pub fn entrypoint(tree: &dyn ImageTree, config: &Value) -> GuardOutcome {
    let mut out = GuardOutcome::new("entrypoint");
    let c = config.get("config");
    let first = |k: &str| {
        c.and_then(|c| c.get(k))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let Some(exe) = first("Entrypoint").or_else(|| first("Cmd")) else {
        out.notes.push("no entrypoint or cmd".into());
        return out;
    };
    out.checked = 1;
    let candidates: Vec<String> = if exe.starts_with('/') {
        vec![exe.clone()]
    } else if exe.contains('/') {
        // Relative to the working directory.
        let wd = c
            .and_then(|c| c.get("WorkingDir"))
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/");
        vec![format!("{}/{exe}", wd.trim_end_matches('/'))]
    } else {
        let path = c
            .and_then(|c| c.get("Env"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{exe}", d.trim_end_matches('/')))
            .collect()
    };
    let mut problems = Vec::new();
    for cand in &candidates {
        match tree.resolve(&ImagePath::from(cand)) {
            Ok(r) if matches!(r.node.kind, FileKind::File | FileKind::HardLink) => {
                if r.node.mode & 0o111 == 0 {
                    problems.push(format!(
                        "{cand} is not executable (mode {:04o})",
                        r.node.mode & 0o7777
                    ));
                    continue;
                }
                out.notes.push(format!("{exe} -> {}", r.path));
                return out;
            }
            Ok(r) => problems.push(format!("{cand} resolves to {} which is not a file", r.path)),
            Err(e) => {
                if candidates.len() == 1 {
                    problems.push(format!("{cand}: {e}"));
                }
            }
        }
    }
    let found = if problems.is_empty() {
        format!(
            "not found in the image (searched PATH: {})",
            candidates.join(", ")
        )
    } else {
        problems.join("; ")
    };
    out.offend(
        exe.as_str(),
        format!("the command the runtime starts: {found}"),
    );
    out
}

/// The config's `os`/`architecture`/`variant` must be the target's.
pub fn platform(config: &Value, arch: TargetArch) -> GuardOutcome {
    let mut out = GuardOutcome::new("platform");
    out.checked = 1;
    let get = |k: &str| config.get(k).and_then(Value::as_str);
    let os = get("os").unwrap_or("");
    let a = get("architecture").unwrap_or("");
    let variant = get("variant");
    let mut bad = Vec::new();
    if os != "linux" {
        bad.push(format!("os {os:?} (expected \"linux\")"));
    }
    if a != arch.oci_name() {
        bad.push(format!(
            "architecture {a:?} (expected {:?})",
            arch.oci_name()
        ));
    }
    let variant_ok = matches!((arch, variant), (_, None) | (TargetArch::Arm64, Some("v8")));
    if !variant_ok {
        bad.push(format!("variant {variant:?}"));
    }
    if !bad.is_empty() {
        out.offend("config", bad.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn entrypoint_must_be_an_executable_file_in_the_image() {
        use crate::tree::{MemTree, Node};
        let mut t = MemTree::new("img");
        t.insert(
            "/usr/local/bin/entrypoint.sh",
            Node::file(0o755, 10),
            b"#!/bin/sh\n".to_vec(),
        );
        t.add_file("/usr/local/bin/data.txt", b"x")
            .add_symlink("/usr/bin/start", "/usr/local/bin/entrypoint.sh")
            .add_dir("/opt");
        let cfg = |ep: serde_json::Value, cmd: serde_json::Value| serde_json::json!({"config": {"Entrypoint": ep, "Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"]}});
        let ok = |c: &Value| entrypoint(&t, c).offenders.is_empty();
        assert!(ok(&cfg(
            serde_json::json!(["/usr/local/bin/entrypoint.sh"]),
            serde_json::json!(["/bin/sh"])
        )));
        // Through a symlink, and a bare name found in PATH.
        assert!(ok(&cfg(serde_json::json!(["/usr/bin/start"]), Value::Null)));
        assert!(ok(&cfg(Value::Null, serde_json::json!(["start", "-x"]))));
        // Nothing to run: nothing to check.
        let none = entrypoint(&t, &serde_json::json!({"config": {}}));
        assert_eq!((none.checked, none.offenders.len()), (0, 0));
        for (c, says) in [
            (
                cfg(
                    serde_json::json!(["/usr/local/bin/missing.sh"]),
                    Value::Null,
                ),
                "/usr/local/bin/missing.sh",
            ),
            (
                cfg(serde_json::json!(["/usr/local/bin/data.txt"]), Value::Null),
                "not executable",
            ),
            (cfg(serde_json::json!(["/opt"]), Value::Null), "not a file"),
            (
                cfg(Value::Null, serde_json::json!(["bash"])),
                "searched PATH: /usr/bin/bash, /bin/bash",
            ),
        ] {
            let o = entrypoint(&t, &c);
            assert_eq!(o.offenders.len(), 1, "{c}");
            let msg = format!("{}: {}", o.offenders[0].path, o.offenders[0].found);
            assert!(msg.contains(says), "{msg}");
        }
    }

    use super::*;
    use crate::recipe::DEFAULT_SYMLINK_TREES;
    use crate::tree::MemTree;
    use serde_json::json;

    #[test]
    fn dangling_links_in_lib_dynload() {
        let mut t = MemTree::new("t");
        t.add_file("/usr/local/lib/python3.14/lib-dynload/_struct.so", b"x")
            .add_symlink("/usr/local/lib/python3.14/lib-dynload/ok.so", "_struct.so")
            .add_symlink(
                "/usr/local/lib/python3.14/lib-dynload/bad.so",
                "/build/host/path/bad.so",
            )
            .add_symlink("/opt/venv/bin/python", "python3.14");
        let trees: Vec<String> = DEFAULT_SYMLINK_TREES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = dangling_symlinks(&t, &trees).unwrap();
        assert_eq!(out.checked, 1);
        assert_eq!(out.offenders.len(), 1, "{:?}", out.offenders);
        assert_eq!(
            out.offenders[0].path,
            "/usr/local/lib/python3.14/lib-dynload/bad.so"
        );
        assert!(out.offenders[0].found.contains("/build/host/path/bad.so"));
        // /opt/venv is not a configured tree; with it, its dangling link counts.
        let out = dangling_symlinks(&t, &["/opt/venv".to_string()]).unwrap();
        assert_eq!(out.offenders.len(), 1);
        assert_eq!(out.offenders[0].path, "/opt/venv/bin/python");
    }

    #[test]
    fn required_paths() {
        let mut t = MemTree::new("t");
        t.add_file("/opt/x", b"1")
            .add_symlink("/usr/bin/cc", "/nope");
        let out = required(&t, &["/opt/x".into(), "/usr/bin/cc".into(), "/y".into()]);
        assert_eq!(out.offenders.len(), 2);
        assert_eq!(out.checked, 3);
    }

    #[test]
    fn platform_matches() {
        let c = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert!(platform(&c, TargetArch::Arm64).passed());
        assert!(!platform(&c, TargetArch::Amd64).passed());
        let c = json!({"os": "linux", "architecture": "riscv64"});
        assert!(platform(&c, TargetArch::Riscv64).passed());
        let c = json!({"os": "linux", "architecture": "amd64", "variant": "v3"});
        let out = platform(&c, TargetArch::Amd64);
        assert!(out.offenders[0].found.contains("variant"));
    }
}
