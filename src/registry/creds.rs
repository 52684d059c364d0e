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

/// One file credentials may be read from. `legacy` is Docker's old
/// `~/.dockercfg`: a bare map of keys to entries, keys naming hosts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFile {
    pub path: PathBuf,
    pub legacy: bool,
}

impl AuthFile {
    fn new(path: PathBuf) -> AuthFile {
        AuthFile {
            path,
            legacy: false,
        }
    }
}

/// The files searched for credentials, in containers/image's order
/// (containers-auth.json(5), `pkg/docker/config`): a file named by
/// `--authfile` or `$REGISTRY_AUTH_FILE` is the only one read; else
/// `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/$UID/auth.json`
/// without it), `$XDG_CONFIG_HOME/containers/auth.json`
/// (`~/.config/containers/auth.json`), Docker's `$DOCKER_CONFIG/config.json`
/// (`~/.docker/config.json`), and the legacy `~/.dockercfg`.
pub fn auth_files(authfile: Option<&Path>) -> Vec<AuthFile> {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    auth_files_from(authfile, &|k| std::env::var_os(k), uid)
}

fn auth_files_from(
    authfile: Option<&Path>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    uid: u32,
) -> Vec<AuthFile> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(f) = authfile
        .map(Path::to_path_buf)
        .or_else(|| set("REGISTRY_AUTH_FILE"))
    {
        return vec![AuthFile::new(f)];
    }
    let home = set("HOME");
    let mut files = vec![AuthFile::new(match set("XDG_RUNTIME_DIR") {
        Some(d) => d.join("containers/auth.json"),
        None => PathBuf::from(format!("/run/containers/{uid}/auth.json")),
    })];
    if let Some(d) = set("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config"))) {
        files.push(AuthFile::new(d.join("containers/auth.json")));
    }
    if let Some(d) = set("DOCKER_CONFIG") {
        files.push(AuthFile::new(d.join("config.json")));
    } else if let Some(h) = &home {
        files.push(AuthFile::new(h.join(".docker/config.json")));
    }
    if let Some(h) = &home {
        files.push(AuthFile {
            path: h.join(".dockercfg"),
            legacy: true,
        });
    }
    files
}

/// Looks credentials for `repository` of `host` up in [`auth_files`]; the
/// first file with a matching entry wins, and within a file the most
/// specific key (`host/ns/repo`, then `host/ns`, then `host`).
pub fn lookup(
    host: &str,
    repository: &str,
    authfile: Option<&Path>,
) -> Result<Option<Credentials>> {
    for f in auth_files(authfile) {
        if let Some(c) = lookup_in_file(&f, host, repository)? {
            tracing::debug!(
                "credentials for {host}/{repository} from {}",
                f.path.display()
            );
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

/// The registry host a URL-form key names (`https://host/v1/` -> `host`);
/// other keys are kept whole, so `host/ns` stays a namespace key. Legacy
/// files name hosts only.
fn normalize_key(key: &str, legacy: bool) -> &str {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    match stripped {
        Some(k) => k.split('/').next().unwrap_or(k),
        None if legacy => key.split('/').next().unwrap_or(key),
        None => key,
    }
}

fn host_matches(key_host: &str, host: &str) -> bool {
    key_host == host || (docker_hub(host) && docker_hub(key_host))
}

/// The keys that may hold credentials for `host/repository`, most specific
/// first: `host/a/b`, `host/a`, `host`.
fn lookup_keys(host: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut key = if repository.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{repository}")
    };
    loop {
        keys.push(key.clone());
        match key.rfind('/') {
            Some(i) => key.truncate(i),
            None => break,
        }
    }
    keys
}

fn lookup_in_file(file: &AuthFile, host: &str, repository: &str) -> Result<Option<Credentials>> {
    let path = file.path.as_path();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let json_err = |e| Error::json(path.display().to_string(), e);
    let cfg: ConfigFile = if file.legacy {
        ConfigFile {
            auths: serde_json::from_slice(&bytes).map_err(json_err)?,
            ..ConfigFile::default()
        }
    } else {
        serde_json::from_slice(&bytes).map_err(json_err)?
    };
    // Helpers are per host, as in Docker and containers/image.
    if let Some((_, helper)) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| host_matches(normalize_key(k, true), host))
    {
        return run_helper(helper, host);
    }
    // Exact keys, most specific first (a `host/repo` key beats `host`)...
    let keys = if file.legacy {
        vec![host.to_string()]
    } else {
        lookup_keys(host, repository)
    };
    let exact = keys
        .iter()
        .find_map(|k| cfg.auths.get_key_value(k.as_str()));
    // ...then keys naming the host in another form (URLs, Docker Hub's).
    let entry = exact.or_else(|| {
        cfg.auths
            .iter()
            .find(|(k, _)| host_matches(normalize_key(k, file.legacy), host))
    });
    if let Some((_, entry)) = entry {
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
        let hub = lookup_in_file(&af(&p), "docker.io", "library/x")
            .unwrap()
            .unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        let local = lookup_in_file(&af(&p), "127.0.0.1:5000", "x")
            .unwrap()
            .unwrap();
        assert_eq!(local, Credentials::new("u", "p"));
        let gh = lookup_in_file(&af(&p), "ghcr.io", "x").unwrap().unwrap();
        assert_eq!(gh.identity_token.as_deref(), Some("tok"));
        assert!(lookup_in_file(&af(&p), "quay.io", "x").unwrap().is_none());
        assert!(lookup_in_file(&af(&dir.path().join("missing")), "x", "y")
            .unwrap()
            .is_none());
    }

    fn af(p: &Path) -> AuthFile {
        AuthFile::new(p.to_path_buf())
    }

    #[test]
    fn most_specific_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.json");
        // base64 of "host:h", "ns:n", "repo:r"
        std::fs::write(
            &p,
            r#"{"auths":{
                "reg.example":{"auth":"aG9zdDpo"},
                "reg.example/team":{"auth":"bnM6bg=="},
                "reg.example/team/app":{"auth":"cmVwbzpy"},
                "other.example/team":{"auth":"bnM6bg=="}
            }}"#,
        )
        .unwrap();
        let user = |host: &str, repo: &str| {
            lookup_in_file(&af(&p), host, repo)
                .unwrap()
                .map(|c| c.username)
        };
        assert_eq!(user("reg.example", "team/app").as_deref(), Some("repo"));
        assert_eq!(user("reg.example", "team/app/sub").as_deref(), Some("repo"));
        assert_eq!(user("reg.example", "team/db").as_deref(), Some("ns"));
        assert_eq!(user("reg.example", "teamx/app").as_deref(), Some("host"));
        assert_eq!(user("reg.example", "").as_deref(), Some("host"));
        // A namespace key never stands for its whole host.
        assert_eq!(user("other.example", "elsewhere/app"), None);
        assert_eq!(user("other.example", "team/app").as_deref(), Some("ns"));
    }

    #[test]
    fn legacy_dockercfg_is_a_bare_map() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".dockercfg");
        std::fs::write(&p, r#"{"https://reg.example/v1/":{"auth":"aG9zdDpo"}}"#).unwrap();
        let f = AuthFile {
            path: p,
            legacy: true,
        };
        let c = lookup_in_file(&f, "reg.example", "a/b").unwrap().unwrap();
        assert_eq!(c, Credentials::new("host", "h"));
    }

    #[test]
    fn auth_files_in_containers_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let paths = |files: Vec<AuthFile>| {
            files
                .into_iter()
                .map(|f| (f.path.display().to_string(), f.legacy))
                .collect::<Vec<_>>()
        };
        let own = |p: &str| (p.to_string(), false);
        let all = env(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            paths(auth_files_from(None, &all, 7)),
            [
                own("/run/user/7/containers/auth.json"),
                own("/h/.config/containers/auth.json"),
                own("/h/.docker/config.json"),
                ("/h/.dockercfg".to_string(), true),
            ]
        );
        let xdg = env(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("DOCKER_CONFIG", "/dc"),
        ]);
        assert_eq!(
            paths(auth_files_from(None, &xdg, 7)),
            [
                own("/run/containers/7/auth.json"),
                own("/cfg/containers/auth.json"),
                own("/dc/config.json"),
                ("/h/.dockercfg".to_string(), true),
            ]
        );
        // An explicit file is the only one read; --authfile beats the variable.
        let named = env(&[("HOME", "/h"), ("REGISTRY_AUTH_FILE", "/ra.json")]);
        assert_eq!(paths(auth_files_from(None, &named, 7)), [own("/ra.json")]);
        assert_eq!(
            paths(auth_files_from(Some(Path::new("/flag.json")), &named, 7)),
            [own("/flag.json")]
        );
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
        let got = with_path(dir.path(), || lookup_in_file(&af(&p), "reg.example", "x"));
        assert_eq!(got.unwrap().unwrap(), Credentials::new("hu", "hs"));
        let none = with_path(dir.path(), || lookup_in_file(&af(&p), "other.example", "x"));
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
