//! A real registry (Debian's `docker-registry`, i.e. distribution 2.8) for
//! one test: free 127.0.0.1 port, its own temp storage, optional htpasswd
//! basic auth or a custom `auth:` section; stopped (killed) on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How the registry authenticates clients.
pub enum Auth {
    None,
    /// htpasswd (bcrypt) with one user.
    Basic {
        user: String,
        password: String,
    },
    /// A raw YAML `auth:` section (e.g. token auth), indented by two spaces.
    Yaml(String),
}

pub struct Registry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    basic: Option<(String, String)>,
}

/// A free port on 127.0.0.1 (released before returning; a start that loses
/// the race retries with another).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry::start_with(Auth::None)
    }

    /// A registry with htpasswd basic auth for one user.
    pub fn start_basic(user: &str, password: &str) -> Registry {
        Registry::start_with(Auth::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    pub fn start_with(auth: Auth) -> Registry {
        Registry::start_full(auth, None)
    }

    /// An anonymous registry serving HTTPS only, with this PEM certificate
    /// (chain) and key (distribution's `http.tls`).
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Registry::start_tls_with(cert, key, None)
    }

    /// As [`Registry::start_tls`]; with `client_ca`, clients must present
    /// a certificate signed by it (`http.tls.clientcas`).
    pub fn start_tls_with(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Registry {
        let mut tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            tls.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        Registry::start_full(Auth::None, Some(tls))
    }

    fn start_full(auth: Auth, tls_yaml: Option<String>) -> Registry {
        let bin = super::require_tool("docker-registry", "docker-registry");
        let mut dir = tempfile::tempdir().expect("temp dir");
        let (auth_yaml, basic) = match auth {
            Auth::None => (String::new(), None),
            Auth::Basic { user, password } => {
                super::require_tool("htpasswd", "apache2-utils");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", &user, &password])
                    .output()
                    .expect("running htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("writing htpasswd");
                (
                    format!(
                        "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                        file.display()
                    ),
                    Some((user, password)),
                )
            }
            Auth::Yaml(y) => (format!("auth:\n{y}\n"), None),
        };
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            let storage = dir.path().join("storage");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n{}{auth_yaml}",
                    storage.display(),
                    tls_yaml.as_deref().unwrap_or("")
                ),
            )
            .expect("writing registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let mut reg = Registry {
                port,
                child,
                dir,
                basic: basic.clone(),
            };
            if reg.wait_ready() {
                return reg;
            }
            let log = reg.log();
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            if !log.contains("address already in use") {
                panic!("docker-registry did not start:\n{log}");
            }
            dir = std::mem::replace(&mut reg.dir, tempfile::tempdir().expect("temp dir"));
            drop(reg);
        }
        panic!("docker-registry: no free port after 5 tries");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = self.request("GET", "/v2/", &[], &[]) {
                // 400: a TLS registry refusing this plain HTTP request.
                if r.status == 200 || r.status == 401 || r.status == 400 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/REPO_AND_TAG`.
    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.host())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log (errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `USER:PASSWORD` of a basic-auth registry.
    pub fn creds(&self) -> Option<String> {
        self.basic.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// One HTTP/1.1 request straight to the registry (basic credentials
    /// added when the registry has them).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((u, p)) = &self.basic {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            h.push(("Authorization".into(), format!("Basic {b}")));
        }
        http_request(&self.host(), method, path, &h, body)
    }

    /// The manifest bytes a tag or digest resolves to (any media type), or
    /// None on 404.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let accept = "application/vnd.oci.image.index.v1+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";
        let r = self
            .request(
                "GET",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", accept)],
                &[],
            )
            .expect("GET manifest");
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("GET manifest {repo}:{reference}: {s}"),
        }
    }

    /// Deletes what `tag` points at through the registry API and returns
    /// its digest. Distribution 2.8 deletes manifests by digest only (a
    /// DELETE of a tag answers 400 DIGEST_INVALID, asserted here so a
    /// registry that changes this is noticed); deleting the digest removes
    /// every tag pointing at it. Needs `storage.delete.enabled` (set above).
    pub fn delete_manifest_of(&self, repo: &str, tag: &str) -> String {
        let bytes = self
            .manifest(repo, tag)
            .unwrap_or_else(|| panic!("{repo}:{tag} is not there to delete"));
        let digest = ocipack::digest::sha256(&bytes).to_string();
        let by_tag = self
            .request("DELETE", &format!("/v2/{repo}/manifests/{tag}"), &[], &[])
            .expect("DELETE by tag");
        assert_eq!(
            by_tag.status, 400,
            "distribution 2.8 refuses to delete by tag; got {by_tag:?}"
        );
        let r = self
            .request(
                "DELETE",
                &format!("/v2/{repo}/manifests/{digest}"),
                &[],
                &[],
            )
            .expect("DELETE manifest");
        assert_eq!(r.status, 202, "DELETE {repo}@{digest}: {r:?}");
        assert!(
            self.manifest(repo, tag).is_none(),
            "{repo}:{tag} still resolves after deleting {digest}"
        );
        digest
    }

    /// Whether the repository has a blob.
    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        let r = self
            .request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])
            .expect("HEAD blob");
        r.status == 200
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the answer to EOF.
pub fn http_request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<HttpResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if head_only {
        body.clear();
    }
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
