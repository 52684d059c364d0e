//! Validators, one concern: whether a value is well-formed (paths, globs,
//! owners, modes, durations, ports, `when` conditions). The free functions
//! say what is wrong in words; the `Cx` methods pin that to the value's
//! line in the recipe.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::context::{Cx, R};
use super::schema::*;
use crate::error::Error;
use crate::layer::glob::Glob;
use crate::platform::TargetArch;

/// Values of a `when = { var = ... }` variable that switch the entry off
/// (compared case-insensitively); anything else switches it on.
pub const FALSE_VALUES: [&str; 5] = ["", "0", "false", "no", "off"];

/// Whether a variable's value switches a `when = { var = ... }` entry on.
pub fn truthy(value: &str) -> bool {
    let v = value.trim();
    !FALSE_VALUES.iter().any(|f| v.eq_ignore_ascii_case(f))
}

impl Cx<'_> {
    pub(super) fn at<T>(&self, s: &Spanned<T>, r: std::result::Result<(), String>) -> R<()> {
        r.map_err(|m| self.err(s.span(), m))
    }

    pub(super) fn abs_path(&self, s: &S) -> R<String> {
        self.at(s, check_abs_path(s.get_ref()))?;
        Ok(s.get_ref().clone())
    }

    /// An absolute path that may be a glob.
    pub(super) fn abs_glob(&self, s: &S) -> R<String> {
        let v = s.get_ref();
        self.at(s, check_abs_path(v))?;
        if is_glob(v) {
            self.at(s, check_glob(v))?;
        }
        Ok(v.clone())
    }

    pub(super) fn owner(&self, s: &Option<S>) -> R<Option<(u64, u64)>> {
        match s {
            None => Ok(None),
            Some(s) => parse_owner(s.get_ref())
                .map(Some)
                .map_err(|m| self.err(s.span(), m)),
        }
    }

    pub(super) fn mode(&self, s: &Option<S>, default: u32) -> R<u32> {
        match s {
            None => Ok(default),
            Some(s) => parse_mode(s.get_ref()).map_err(|m| self.err(s.span(), m)),
        }
    }

    pub(super) fn duration(&self, s: &Option<S>) -> R<Option<u64>> {
        match s {
            None => Ok(None),
            Some(s) => parse_duration(s.get_ref())
                .map(Some)
                .map_err(|m| self.err(s.span(), m)),
        }
    }

    /// Evaluates a `when` (every condition given must hold); errors for
    /// unknown arch names and undefined variables, whatever the target, so
    /// a typo fails on every arch.
    pub(super) fn applies(&self, w: &Option<RawWhen>) -> R<bool> {
        let Some(w) = w else { return Ok(true) };
        let var_on = match (&w.var, &w.equals) {
            (None, None) => true,
            (None, Some(e)) => {
                return Err(self.err(
                    e.span(),
                    "`equals` compares a variable: add `var = \"NAME\"`",
                ))
            }
            (Some(v), equals) => {
                let name = v.get_ref();
                self.at(v, super::vars::check_name(name))?;
                let value = self.vars.get(name).ok_or_else(|| {
                    self.err(
                        v.span(),
                        format!(
                            "when.var: undefined variable {name} (give it a default in \
                             [variables], then switch it with --versions or --set {name}=...)"
                        ),
                    )
                })?;
                match equals {
                    Some(e) => value == e.get_ref(),
                    None => truthy(value),
                }
            }
        };
        if let Some(list) = &w.arch {
            let mut hit = false;
            for a in list {
                let parsed: TargetArch = a
                    .get_ref()
                    .parse()
                    .map_err(|e: Error| self.err(a.span(), e.to_string()))?;
                hit |= parsed == self.arch;
            }
            if !hit {
                return Ok(false);
            }
        }
        if let Some(f) = w.foreign {
            if f != (self.arch != self.build_arch) {
                return Ok(false);
            }
        }
        Ok(var_on)
    }

    pub(super) fn rel_path(&self, s: &S) -> R<PathBuf> {
        let v = s.get_ref();
        let p = Path::new(v);
        let bad = v.is_empty()
            || p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if bad {
            return Err(self.err(
                s.span(),
                format!("{v:?}: expected a path relative to the recipe's directory, without '..'"),
            ));
        }
        Ok(self.base_dir.join(p))
    }
}

pub use crate::layer::glob::is_glob;

/// A normalised absolute path: `/`-rooted, no empty, `.` or `..`
/// components, no trailing slash.
pub fn check_abs_path(s: &str) -> std::result::Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?}: expected an absolute path (starting with '/')"
        ));
    }
    if s.contains(['\0', '\n']) {
        return Err(format!("{s:?}: control characters in a path"));
    }
    if s == "/" {
        return Ok(());
    }
    if s.ends_with('/') {
        return Err(format!("{s:?}: remove the trailing '/'"));
    }
    for part in s[1..].split('/') {
        match part {
            "" => return Err(format!("{s:?}: empty path component ('//')")),
            "." | ".." => return Err(format!("{s:?}: '.' and '..' are not allowed in paths")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a glob (`*` stays within a component, `**` crosses them).
/// The engine selection and the guards use too ([`Glob`]), so what passes
/// here selects what it says.
pub fn check_glob(s: &str) -> std::result::Result<(), String> {
    Glob::new(s)
        .map(|_| ())
        .map_err(|e| format!("{s:?}: bad glob: {e}"))
}

pub(super) fn check_alt_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.contains(['/', ' ', '\n', '\t']) {
        Err(format!("alternative name {s:?}: no '/' or whitespace"))
    } else {
        Ok(())
    }
}

pub(super) fn check_port(s: &str) -> std::result::Result<(), String> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let ok = port.parse::<u16>().is_ok_and(|p| p > 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?}: expected PORT or PORT/tcp|udp|sctp"))
    }
}

/// `UID[:GID]`, numeric (names would need the image's `/etc/passwd`).
pub fn parse_owner(s: &str) -> std::result::Result<(u64, u64), String> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    match (u.parse::<u64>(), g.parse::<u64>()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(format!(
            "owner {s:?}: expected numeric UID or UID:GID, e.g. \"1001:1001\""
        )),
    }
}

/// An octal mode string such as `"0755"` (strings only: a TOML integer
/// 755 would silently mean 0o1363).
pub fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!("mode {s:?}: expected octal like \"0755\"")),
    }
}

/// Go-style durations (`30s`, `1m30s`, `500ms`) to nanoseconds, as Docker's
/// `Healthcheck` stores them.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("duration {s:?}: expected e.g. \"30s\", \"1m30s\", \"500ms\"");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..u_end] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[u_end..];
    }
    Ok(total)
}
