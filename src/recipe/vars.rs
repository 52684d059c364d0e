//! Recipe variables: `${NAME}` in any string value.
//!
//! Precedence, lowest first: the recipe's `[variables]` defaults, the
//! `--versions FILE` pins (`KEY=VALUE` lines, as the pipeline keeps them),
//! `--set K=V`. Built-ins derived from the target (`TARGET_ARCH`,
//! `TARGET_TRIPLE`...) cannot be overridden, so a recipe can't lie about
//! the arch it builds for.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::platform::TargetArch;

/// Variables given from outside the recipe.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// From `--versions FILE`, in file order.
    pub versions: BTreeMap<String, String>,
    /// From `--set K=V`.
    pub sets: BTreeMap<String, String>,
    /// Facts of the run the command knows (e.g. `CREATED`, the image's
    /// creation time); they behave like built-ins.
    pub run: BTreeMap<String, String>,
}

impl VarInputs {
    /// Adds one `--set K=V`.
    pub fn set(&mut self, kv: &str) -> Result<()> {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::invalid("--set", format!("{kv:?} is not KEY=VALUE")))?;
        check_name(k).map_err(|r| Error::invalid("--set", r))?;
        self.sets.insert(k.to_string(), v.to_string());
        Ok(())
    }

    /// Reads a versions file.
    pub fn load_versions(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (k, v) in parse_versions(path, &text)? {
            self.versions.insert(k, v);
        }
        Ok(())
    }
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, an optional
/// `export ` prefix and one level of matching quotes are accepted; anything
/// else is an error naming the line (a silently ignored pin is a stale pin).
pub fn parse_versions(path: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let err = |message: String| Error::Recipe {
            file: path.to_path_buf(),
            line: i + 1,
            column: 1,
            message,
        };
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| err(format!("expected KEY=VALUE, found {raw:?}")))?;
        let k = k.trim();
        check_name(k).map_err(err)?;
        let v = v.trim();
        let v = match (v.chars().next(), v.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(e)) if v.len() >= 2 && q == e => &v[1..v.len() - 1],
            (Some('"' | '\''), _) => return Err(err(format!("unterminated quote in {raw:?}"))),
            _ => v,
        };
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// A valid variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_name(k: &str) -> std::result::Result<(), String> {
    let mut chars = k.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid variable name {k:?}"))
    }
}

/// The built-in variables for a target.
pub fn builtins(arch: TargetArch, build_arch: TargetArch) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        m.insert(k.to_string(), v.to_string());
    };
    put("TARGET_ARCH", arch.oci_name());
    put("TARGET_CPU", arch.gnu_cpu());
    put("TARGET_TRIPLE", arch.gnu_triple());
    put("GNU_TRIPLE", arch.gnu_triple());
    put("BUILD_ARCH", build_arch.oci_name());
    put("BUILD_TRIPLE", build_arch.gnu_triple());
    m
}

/// Expands `${NAME}` in `s`. `$${` stands for a literal `${`; any other `$`
/// is kept as is (so shell snippets like `$PATH` need no escaping).
pub fn expand(
    s: &str,
    lookup: &mut dyn FnMut(&str) -> std::result::Result<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unterminated ${{...}} in {s:?}"))?;
            let name = &t[..end];
            check_name(name)?;
            out.push_str(&lookup(name)?);
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The final variable set: built-ins, then defaults (which may refer to
/// other variables), overridden by versions and `--set`.
#[derive(Debug, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    /// Resolves everything. `defaults` are the recipe's `[variables]` with
    /// their unexpanded values; errors are `(name, message)` so the caller
    /// can point at the line.
    pub fn resolve(
        mut builtins: BTreeMap<String, String>,
        defaults: &BTreeMap<String, String>,
        inputs: &VarInputs,
    ) -> std::result::Result<Vars, (Option<String>, String)> {
        builtins.extend(inputs.run.clone());
        for (source, map) in [("--versions", &inputs.versions), ("--set", &inputs.sets)] {
            for k in map.keys() {
                if builtins.contains_key(k) {
                    return Err((
                        None,
                        format!(
                            "{source}: {k} is built in (derived from --arch) and cannot be set"
                        ),
                    ));
                }
            }
        }
        for k in defaults.keys() {
            if builtins.contains_key(k) {
                return Err((
                    Some(k.clone()),
                    format!("{k} is built in (derived from --arch) and cannot be set"),
                ));
            }
        }
        // Raw (unexpanded) values by precedence; only recipe defaults expand.
        let mut raw: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for (k, v) in defaults {
            raw.insert(k.clone(), (v.clone(), true));
        }
        for (k, v) in inputs.versions.iter().chain(inputs.sets.iter()) {
            raw.insert(k.clone(), (v.clone(), false));
        }
        let mut values = builtins;
        let names: Vec<String> = raw.keys().cloned().collect();
        for name in names {
            let mut stack = Vec::new();
            resolve_one(&name, &raw, &mut values, &mut stack).map_err(|m| (Some(name), m))?;
        }
        Ok(Vars { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Expands a string, naming the missing variable on error.
    pub fn expand(&self, s: &str) -> std::result::Result<String, String> {
        expand(s, &mut |name| {
            self.values.get(name).cloned().ok_or_else(|| {
                format!("undefined variable ${{{name}}} (define it in [variables], --versions or --set)")
            })
        })
    }

    pub fn all(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

fn resolve_one(
    name: &str,
    raw: &BTreeMap<String, (String, bool)>,
    values: &mut BTreeMap<String, String>,
    stack: &mut Vec<String>,
) -> std::result::Result<String, String> {
    if let Some(v) = values.get(name) {
        return Ok(v.clone());
    }
    let Some((value, expandable)) = raw.get(name) else {
        return Err(format!(
            "undefined variable ${{{name}}} (define it in [variables], --versions or --set)"
        ));
    };
    if stack.iter().any(|s| s == name) {
        stack.push(name.to_string());
        return Err(format!("variable cycle: {}", stack.join(" -> ")));
    }
    let v = if *expandable {
        stack.push(name.to_string());
        let v = expand(value, &mut |n| resolve_one(n, raw, values, stack))?;
        stack.pop();
        v
    } else {
        value.clone()
    };
    values.insert(name.to_string(), v.clone());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(defaults: &[(&str, &str)], sets: &[(&str, &str)]) -> Result<Vars, String> {
        let d = defaults
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut inputs = VarInputs::default();
        for (k, v) in sets {
            inputs.set(&format!("{k}={v}")).unwrap();
        }
        Vars::resolve(
            builtins(TargetArch::Riscv64, TargetArch::Amd64),
            &d,
            &inputs,
        )
        .map_err(|(_, m)| m)
    }

    #[test]
    fn expansion_and_escapes() {
        let v = vars(&[("GCC_VERSION", "16.1.0")], &[]).unwrap();
        assert_eq!(
            v.expand("/opt/gcc-${GCC_VERSION}/lib/gcc/${TARGET_TRIPLE}")
                .unwrap(),
            "/opt/gcc-16.1.0/lib/gcc/riscv64-linux-gnu"
        );
        assert_eq!(v.expand("$${HOME} $PATH $").unwrap(), "${HOME} $PATH $");
        let e = v.expand("${NOPE}").unwrap_err();
        assert!(e.contains("${NOPE}"), "{e}");
        assert!(v.expand("${BROKEN").is_err());
        assert!(v.expand("${not-a-name}").is_err());
    }

    #[test]
    fn precedence_and_references() {
        let v = vars(
            &[
                ("GCC_VERSION", "15.0.0"),
                ("GCC_PREFIX", "/opt/gcc-${GCC_VERSION}"),
            ],
            &[("GCC_VERSION", "16.1.0")],
        )
        .unwrap();
        assert_eq!(v.get("GCC_PREFIX"), Some("/opt/gcc-16.1.0"));
        // --set values are literal.
        let v = vars(&[], &[("X", "${Y}")]).unwrap();
        assert_eq!(v.get("X"), Some("${Y}"));
    }

    #[test]
    fn builtins_are_fixed_and_cycles_found() {
        let e = vars(&[], &[("TARGET_ARCH", "amd64")]).err().unwrap();
        assert!(e.contains("built in"), "{e}");
        let e = vars(&[("A", "${B}"), ("B", "${A}")], &[]).err().unwrap();
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn versions_file() {
        let text = "# pins\nGCC_VERSION=16.1.0\nexport LLVM_VERSION=\"22.1.6\"\n\n  Q='a b'\n";
        let got = parse_versions(Path::new("versions.env"), text).unwrap();
        assert_eq!(
            got,
            vec![
                ("GCC_VERSION".into(), "16.1.0".into()),
                ("LLVM_VERSION".into(), "22.1.6".into()),
                ("Q".into(), "a b".into())
            ]
        );
        let e = parse_versions(Path::new("v.env"), "A=1\nnonsense\n").unwrap_err();
        assert!(e.to_string().starts_with("v.env:2:1:"), "{e}");
        let e = parse_versions(Path::new("v.env"), "A=\"open\n").unwrap_err();
        assert!(e.to_string().contains("quote"), "{e}");
        let e = parse_versions(Path::new("v.env"), "1A=x\n").unwrap_err();
        assert!(e.to_string().contains("invalid variable name"), "{e}");
    }
}
