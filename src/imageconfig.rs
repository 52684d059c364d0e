//! Editing an image config as JSON: the base's config is kept and extended,
//! never re-declared, so fields oci-spec does not model (`Healthcheck`,
//! `Shell`, `OnBuild`...) survive. Serialised with
//! [`crate::manifest::canonical_json`] so equal edits give equal digests.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::labels::{BASE_DIGEST, BASE_NAME};
use crate::manifest::canonical_json;
use crate::platform::TargetArch;
use crate::provenance::Provenance;
use crate::recipe::{ConfigEdit, Healthcheck};

/// The PATH Docker and BuildKit give a Linux container whose config sets
/// none (moby `oci.DefaultPathEnv`, BuildKit `system.DefaultPathEnvUnix`).
/// A recipe prepending to PATH on such a base starts from this, or the
/// result would hold only the prepended directories.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("image config", reason)
}

/// The `config` object inside an image config, created when missing.
fn inner(cfg: &mut Value) -> Result<&mut Map<String, Value>> {
    let top = cfg
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object"))?;
    let c = top
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if c.is_null() {
        *c = Value::Object(Map::new());
    }
    c.as_object_mut()
        .ok_or_else(|| invalid("\"config\" is not an object"))
}

fn env_list(c: &mut Map<String, Value>) -> Result<&mut Vec<Value>> {
    let e = c.entry("Env").or_insert_with(|| Value::Array(Vec::new()));
    if e.is_null() {
        *e = Value::Array(Vec::new());
    }
    e.as_array_mut()
        .ok_or_else(|| invalid("\"Env\" is not an array"))
}

/// The value of an env variable.
pub fn get_env(cfg: &Value, key: &str) -> Option<String> {
    cfg.get("config")?
        .get("Env")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
}

/// Sets `key=value`, in place when the variable exists (order kept).
pub fn set_env(cfg: &mut Value, key: &str, value: &str) -> Result<()> {
    let env = env_list(inner(cfg)?)?;
    let entry = Value::String(format!("{key}={value}"));
    let pos = env.iter().position(|v| {
        v.as_str()
            .and_then(|s| s.split_once('='))
            .is_some_and(|(k, _)| k == key)
    });
    match pos {
        Some(i) => env[i] = entry,
        None => env.push(entry),
    }
    Ok(())
}

/// PATH-like edit: `items` go in front (or at the end), copies of them are
/// removed from the old value, empty components dropped (an empty
/// component in `LD_LIBRARY_PATH` means the current directory).
pub fn edit_path_list(old: Option<&str>, items: &[String], prepend: bool) -> String {
    let rest: Vec<&str> = old
        .unwrap_or("")
        .split(':')
        .filter(|c| !c.is_empty() && !items.iter().any(|i| i == c))
        .collect();
    let mut out: Vec<&str> = Vec::new();
    if prepend {
        out.extend(items.iter().map(String::as_str));
        out.extend(rest);
    } else {
        out.extend(rest);
        out.extend(items.iter().map(String::as_str));
    }
    let mut seen = Vec::new();
    out.retain(|c| {
        if seen.contains(c) {
            false
        } else {
            seen.push(*c);
            true
        }
    });
    out.join(":")
}

fn set_str(c: &mut Map<String, Value>, key: &str, v: &str) {
    c.insert(key.to_string(), Value::String(v.to_string()));
}

fn set_list(c: &mut Map<String, Value>, key: &str, v: &[String]) {
    c.insert(
        key.to_string(),
        Value::Array(v.iter().cloned().map(Value::String).collect()),
    );
}

/// Adds keys to a `{ "key": {} }` set object (Volumes, ExposedPorts).
fn add_set(c: &mut Map<String, Value>, key: &str, items: &[String]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let s = c.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if s.is_null() {
        *s = Value::Object(Map::new());
    }
    let obj = s
        .as_object_mut()
        .ok_or_else(|| invalid(format!("\"{key}\" is not an object")))?;
    for i in items {
        obj.insert(i.clone(), json!({}));
    }
    Ok(())
}

/// Sets labels (config `Labels`).
pub fn set_labels(cfg: &mut Value, labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let c = inner(cfg)?;
    let l = c
        .entry("Labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if l.is_null() {
        *l = Value::Object(Map::new());
    }
    let obj = l
        .as_object_mut()
        .ok_or_else(|| invalid("\"Labels\" is not an object"))?;
    for (k, v) in labels {
        obj.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(())
}

fn healthcheck(h: &Healthcheck) -> Value {
    let mut m = Map::new();
    m.insert("Test".into(), json!(h.test));
    for (k, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// Applies a recipe's config edit. As with Docker's `ENTRYPOINT`, setting
/// an entrypoint without a cmd clears the base's cmd (it was meant as
/// arguments for a different program).
pub fn apply_edit(cfg: &mut Value, edit: &ConfigEdit) -> Result<()> {
    for (k, v) in &edit.env.set {
        set_env(cfg, k, v)?;
    }
    for (prepend, map) in [(true, &edit.env.prepend), (false, &edit.env.append)] {
        for (k, items) in map {
            let old = get_env(cfg, k).or_else(|| (k == "PATH").then(|| DEFAULT_PATH.to_string()));
            let new = edit_path_list(old.as_deref(), items, prepend);
            set_env(cfg, k, &new)?;
        }
    }
    set_labels(cfg, &edit.labels)?;
    let c = inner(cfg)?;
    if let Some(u) = &edit.user {
        set_str(c, "User", u);
    }
    if let Some(w) = &edit.workdir {
        set_str(c, "WorkingDir", w);
    }
    add_set(c, "Volumes", &edit.volumes)?;
    add_set(c, "ExposedPorts", &edit.exposed_ports)?;
    if let Some(e) = &edit.entrypoint {
        set_list(c, "Entrypoint", e);
        if edit.cmd.is_none() {
            c.remove("Cmd");
        }
    }
    if let Some(cmd) = &edit.cmd {
        set_list(c, "Cmd", cmd);
    }
    if let Some(s) = &edit.stop_signal {
        set_str(c, "StopSignal", s);
    }
    if let Some(h) = &edit.healthcheck {
        c.insert("Healthcheck".into(), healthcheck(h));
    }
    Ok(())
}

/// Records provenance labels (run id, parent digest and stage; the fields
/// a step knows, see [`Provenance::stamp`]).
pub fn set_provenance(cfg: &mut Value, p: &Provenance) -> Result<()> {
    let mut labels = BTreeMap::new();
    for (name, value) in [
        (crate::labels::run_id(), &p.run_id),
        (crate::labels::parent_digest(), &p.parent_digest),
        (crate::labels::parent_stage(), &p.parent_stage),
    ] {
        if let Some(v) = value {
            labels.insert(name, v.clone());
        }
    }
    set_labels(cfg, &labels)
}

/// Sets `os`/`architecture`/`variant` for the target (the cross lane's
/// artifacts are amd64 images: the result must say what it really is).
pub fn set_platform(cfg: &mut Value, arch: TargetArch) -> Result<()> {
    let top = cfg
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object"))?;
    top.insert("os".into(), json!("linux"));
    top.insert("architecture".into(), json!(arch.oci_name()));
    match arch.default_variant() {
        Some(v) => top.insert("variant".into(), json!(v)),
        None => top.remove("variant"),
    };
    Ok(())
}

/// Sets `created`.
pub fn set_created(cfg: &mut Value, created: &str) -> Result<()> {
    cfg.as_object_mut()
        .ok_or_else(|| invalid("not a JSON object"))?
        .insert("created".into(), json!(created));
    Ok(())
}

/// Appends a layer: its diff_id to `rootfs.diff_ids` and one history entry.
pub fn add_layer(cfg: &mut Value, diff_id: &str, created: &str, created_by: &str) -> Result<()> {
    let top = cfg
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object"))?;
    let rootfs = top
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let ids = rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid("rootfs.diff_ids is not an array"))?;
    ids.push(json!(diff_id));
    let hist = top
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()));
    if hist.is_null() {
        *hist = Value::Array(Vec::new());
    }
    hist.as_array_mut()
        .ok_or_else(|| invalid("\"history\" is not an array"))?
        .push(json!({
            "created": created,
            "created_by": created_by,
            "comment": "ocipack",
        }));
    Ok(())
}

/// `org.opencontainers.image.base.*` manifest annotations (`base.name` only
/// when the base has a fully qualified name).
pub fn base_annotations(base_name: Option<&str>, base_digest: &str) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([(BASE_DIGEST.to_string(), base_digest.to_string())]);
    if let Some(name) = base_name {
        a.insert(BASE_NAME.to_string(), name.to_string());
    }
    a
}

/// The config's bytes (sorted keys, compact), ready to hash.
pub fn to_bytes(cfg: &Value) -> Result<Vec<u8>> {
    canonical_json(cfg)
}

pub use crate::timestamp::{parse_rfc3339, rfc3339, MAX_RFC3339_EPOCH};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::EnvEdit;

    fn base() -> Value {
        json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"],
                "Cmd": ["/bin/sh"],
                "Labels": {"org.opencontainers.image.title": "ocipack-fixture-base"},
                "Shell": ["/bin/sh", "-c"],
                "OnBuild": null
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "umoci"}],
            "x-unknown": {"kept": true}
        })
    }

    #[test]
    fn path_lists() {
        let items = vec!["/opt/gcc/bin".to_string(), "/usr/bin".to_string()];
        assert_eq!(
            edit_path_list(Some("/usr/local/bin:/usr/bin:/bin"), &items, true),
            "/opt/gcc/bin:/usr/bin:/usr/local/bin:/bin"
        );
        assert_eq!(
            edit_path_list(Some("/a::/b:"), &items, false),
            "/a:/b:/opt/gcc/bin:/usr/bin"
        );
        // No trailing ':' (= current directory) when the variable was unset.
        assert_eq!(edit_path_list(None, &items, true), "/opt/gcc/bin:/usr/bin");
    }

    #[test]
    fn edit_keeps_the_base_and_extends_it() {
        let mut c = base();
        let edit = ConfigEdit {
            user: Some("1001:1001".into()),
            workdir: Some("/workspace".into()),
            volumes: vec!["/workspace".into()],
            entrypoint: Some(vec!["/usr/local/bin/entrypoint.sh".into()]),
            cmd: None,
            exposed_ports: vec!["8080/tcp".into()],
            stop_signal: None,
            env: EnvEdit {
                set: BTreeMap::from([
                    ("TARGET_ARCH".to_string(), "riscv64".to_string()),
                    ("LANG".to_string(), "C.UTF-8".to_string()),
                ]),
                prepend: BTreeMap::from([
                    ("PATH".to_string(), vec!["/opt/gcc-16.1.0/bin".to_string()]),
                    (
                        "LD_LIBRARY_PATH".to_string(),
                        vec!["/opt/gcc-16.1.0/lib64".to_string()],
                    ),
                ]),
                append: BTreeMap::new(),
            },
            labels: BTreeMap::from([("a".to_string(), "b".to_string())]),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Some(30_000_000_000),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3),
            }),
        };
        apply_edit(&mut c, &edit).unwrap();
        let cc = &c["config"];
        assert_eq!(
            cc["Env"],
            json!([
                "PATH=/opt/gcc-16.1.0/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "TARGET_ARCH=riscv64",
                "LD_LIBRARY_PATH=/opt/gcc-16.1.0/lib64"
            ])
        );
        assert_eq!(cc["User"], "1001:1001");
        assert_eq!(cc["Volumes"], json!({"/workspace": {}}));
        assert_eq!(cc["ExposedPorts"], json!({"8080/tcp": {}}));
        assert!(cc.get("Cmd").is_none(), "entrypoint without cmd clears cmd");
        assert_eq!(
            cc["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000u64, "Retries": 3})
        );
        assert_eq!(
            cc["Labels"]["org.opencontainers.image.title"],
            "ocipack-fixture-base"
        );
        assert_eq!(cc["Labels"]["a"], "b");
        assert_eq!(cc["Shell"], json!(["/bin/sh", "-c"]));
        assert_eq!(c["x-unknown"], json!({"kept": true}));
    }

    #[test]
    fn layers_provenance_platform_and_bytes() {
        let mut c = base();
        add_layer(
            &mut c,
            "sha256:bb",
            "2024-01-01T00:00:00Z",
            "ocipack package: payload",
        )
        .unwrap();
        assert_eq!(c["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        assert_eq!(c["history"][1]["created_by"], "ocipack package: payload");
        set_provenance(
            &mut c,
            &Provenance::stamp("r1".into(), "sha256:cc".into(), Some("base".into())),
        )
        .unwrap();
        assert_eq!(
            c["config"]["Labels"][crate::labels::parent_stage().as_str()],
            "base"
        );
        set_platform(&mut c, TargetArch::Arm64).unwrap();
        assert_eq!(c["variant"], "v8");
        set_platform(&mut c, TargetArch::Riscv64).unwrap();
        assert!(c.get("variant").is_none());
        set_created(&mut c, &rfc3339(1_700_000_000)).unwrap();
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
        // Deterministic: the same value serialises to the same bytes
        // whatever order keys were inserted in.
        let a = to_bytes(&c).unwrap();
        let reparsed: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(to_bytes(&reparsed).unwrap(), a);
        let s = String::from_utf8(a).unwrap();
        assert!(s.find("\"architecture\"").unwrap() < s.find("\"config\"").unwrap());
        let ann = base_annotations(Some("ghcr.io/k/b:base-arm64"), "sha256:dd");
        assert_eq!(ann[BASE_DIGEST], "sha256:dd");
    }

    #[test]
    fn prepend_to_a_base_without_path_keeps_the_system_path() {
        let edit = ConfigEdit {
            env: EnvEdit {
                prepend: BTreeMap::from([
                    ("PATH".to_string(), vec!["/opt/gcc/bin".to_string()]),
                    (
                        "LD_LIBRARY_PATH".to_string(),
                        vec!["/opt/gcc/lib".to_string()],
                    ),
                ]),
                append: BTreeMap::from([("PATH".to_string(), vec!["/opt/x/bin".to_string()])]),
                ..EnvEdit::default()
            },
            ..ConfigEdit::default()
        };
        // No Env at all, and a null config (both written by real tools).
        for mut c in [
            json!({"architecture": "amd64", "os": "linux", "config": {}}),
            json!({"architecture": "amd64", "os": "linux", "config": null}),
        ] {
            apply_edit(&mut c, &edit).unwrap();
            assert_eq!(
                get_env(&c, "PATH").as_deref(),
                Some(
                    "/opt/gcc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/x/bin"
                )
            );
            // Only PATH has a system default.
            assert_eq!(
                get_env(&c, "LD_LIBRARY_PATH").as_deref(),
                Some("/opt/gcc/lib")
            );
        }
        // A base's own PATH is never replaced by the default.
        let mut c = json!({"config": {"Env": ["PATH=/bin"]}});
        apply_edit(&mut c, &edit).unwrap();
        assert_eq!(
            get_env(&c, "PATH").as_deref(),
            Some("/opt/gcc/bin:/bin:/opt/x/bin")
        );
    }

    #[test]
    fn configs_without_config_object() {
        let mut c = json!({"architecture": "amd64", "os": "linux", "config": null});
        set_env(&mut c, "A", "1").unwrap();
        assert_eq!(get_env(&c, "A").as_deref(), Some("1"));
        assert!(set_env(&mut json!([1]), "A", "1").is_err());
    }
}
