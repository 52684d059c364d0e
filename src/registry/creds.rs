//! Where credentials come from: `--creds`, containers' `auth.json`
//! (`$REGISTRY_AUTH_FILE`), Docker's `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker`), including `credHelpers` and `credsStore`, which run
//! `docker-credential-<name> get` exactly as the Docker CLI does.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A user name and a secret, or an identity (OAuth refresh) token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Docker's `identitytoken`: exchanged at the token service instead of
    /// sending the password.
    pub identity_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets, even in debug logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    /// Parses `USER:PASS` (the password may contain ':').
    pub fn parse(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::new(u, p)),
            _ => Err(Error::invalid("--creds", "expected USER:PASSWORD")),
        }
    }

    /// The `Authorization: Basic …` value.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The host Docker's files use for a registry host (`docker.io` is stored
/// under its legacy index URL).
fn docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// Looks credentials for `host` up in the usual files, in the order
/// containers tools use: `$REGISTRY_AUTH_FILE`, then Docker's config.
pub fn lookup(host: &str) -> Result<Option<Credentials>> {
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        files.push(Path::new(&d).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME") {
        files.push(Path::new(&h).join(".docker").join("config.json"));
    }
    for f in files {
        if let Some(c) = lookup_in_file(&f, host)? {
            tracing::debug!("credentials for {host} from {}", f.display());
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The registry host a key of `auths`/`credHelpers` names: keys may be
/// `host`, `https://host`, `http://host/v1/`, ...
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn key_matches(key: &str, host: &str) -> bool {
    let kh = key_host(key);
    kh == host || (docker_hub(host) && docker_hub(kh))
}

fn lookup_in_file(path: &Path, host: &str) -> Result<Option<Credentials>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let cfg: ConfigFile =
        serde_json::from_slice(&bytes).map_err(|e| Error::json(path.display().to_string(), e))?;
    if let Some((_, helper)) = cfg.cred_helpers.iter().find(|(k, _)| key_matches(k, host)) {
        return run_helper(helper, host);
    }
    if let Some((_, entry)) = cfg.auths.iter().find(|(k, _)| key_matches(k, host)) {
        if let Some(c) = entry_credentials(entry, path)? {
            return Ok(Some(c));
        }
    }
    match &cfg.creds_store {
        Some(store) if !store.is_empty() => run_helper(store, host),
        _ => Ok(None),
    }
}

fn entry_credentials(e: &AuthEntry, path: &Path) -> Result<Option<Credentials>> {
    let what = || format!("{}: auths entry", path.display());
    let (user, pass) = if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|err| Error::invalid(what(), format!("auth is not base64: {err}")))?;
        let s = String::from_utf8(raw)
            .map_err(|_| Error::invalid(what(), "auth is not UTF-8 after base64 decoding"))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| Error::invalid(what(), "auth is not USER:PASSWORD"))?;
        (u.to_string(), p.to_string())
    } else {
        (
            e.username.clone().unwrap_or_default(),
            e.password.clone().unwrap_or_default(),
        )
    };
    let token = e.identitytoken.clone().filter(|t| !t.is_empty());
    if user.is_empty() && token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user,
        password: pass,
        identity_token: token,
    }))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-<name> get` with the server URL on stdin.
fn run_helper(name: &str, host: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{name}");
    let server = if docker_hub(host) {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    };
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            // As with a missing entry: go on anonymously, and say why if the
            // registry then asks for credentials.
            tracing::warn!("credential helper {program} for {host} could not run: {e}");
            return Ok(None);
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| Error::io(&program, e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(&program, e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if msg.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Auth {
            registry: host.to_string(),
            reason: format!("{program} get failed ({}): {}", out.status, msg.trim()),
        });
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::json(format!("output of {program} get"), e))?;
    if a.username == "<token>" {
        return Ok(Some(Credentials {
            username: String::new(),
            password: String::new(),
            identity_token: Some(a.secret),
        }));
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_creds_and_hides_secret() {
        let c = Credentials::parse("bob:pa:ss").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "pa:ss"));
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert!(Credentials::parse("nocolon").is_err());
        assert!(Credentials::parse(":x").is_err());
        assert_eq!(
            Credentials::new("a", "b").basic_header(),
            "Basic YTpi" // base64("a:b")
        );
    }

    #[test]
    fn reads_auths_in_every_key_form() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
                "http://127.0.0.1:5000/v2/":{"username":"u","password":"p"},
                "ghcr.io":{"auth":"","identitytoken":"tok"}
            }}"#,
        )
        .unwrap();
        let hub = lookup_in_file(&p, "docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        let local = lookup_in_file(&p, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(local, Credentials::new("u", "p"));
        let gh = lookup_in_file(&p, "ghcr.io").unwrap().unwrap();
        assert_eq!(gh.identity_token.as_deref(), Some("tok"));
        assert!(lookup_in_file(&p, "quay.io").unwrap().is_none());
        assert!(lookup_in_file(&dir.path().join("missing"), "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn runs_credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\nif [ \"$host\" = reg.example ]; then echo '{\"ServerURL\":\"reg.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"credsStore":"fake"}"#).unwrap();
        // The helper is found on PATH, as Docker finds it.
        let got = with_path(dir.path(), || lookup_in_file(&p, "reg.example"));
        assert_eq!(got.unwrap().unwrap(), Credentials::new("hu", "hs"));
        let none = with_path(dir.path(), || lookup_in_file(&p, "other.example"));
        assert!(none.unwrap().is_none());
    }

    /// Runs `f` with `dir` prepended to PATH (tests in this module are the
    /// only ones touching PATH).
    fn with_path<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap();
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&old));
        // SAFETY: serialised by LOCK; the old entries stay on PATH, so other
        // tests spawning commands meanwhile still find them.
        unsafe { std::env::set_var("PATH", std::env::join_paths(paths).unwrap()) };
        let out = f();
        unsafe { std::env::set_var("PATH", old) };
        out
    }
}
