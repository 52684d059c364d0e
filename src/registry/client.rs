//! One HTTP client per registry host: scheme discovery, authentication on
//! every request, transient-failure classification, and the bridge from the
//! synchronous transport traits to async I/O.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::OnceCell;

use super::auth::{bearer_token, parse_challenge, scope_key, Challenge, TokenCache, TokenRequest};
use super::creds::Credentials;
use super::hosts::{api_host, schemes};
use super::retry::{classify, is_transient_status, retry_after, Backoff, Failure};
use super::RegistryOptions;
use crate::error::{Error, Result};

/// The process-wide runtime the registry transport runs on. Two workers
/// drive the sockets; callers block on their own threads, so the runtime
/// never needs more.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ocipack-net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| Error::Unsupported(format!("cannot start the network runtime: {e}")))
}

/// Runs a future to completion from synchronous code. Must not be called
/// from inside an async context (the transport traits are synchronous and
/// are called from plain threads).
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
}

/// A request that can be sent again as is: the body is in memory (at most
/// one chunk).
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    pub timeout: Option<Duration>,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }
}

struct Inner {
    /// The host as the user wrote it (for messages and credentials).
    registry: String,
    opts: RegistryOptions,
    http: reqwest::Client,
    creds: Option<Credentials>,
    base: OnceCell<Url>,
    /// Set when pinging exhausted its budget: the registry is unreachable.
    unreachable: Mutex<Option<String>>,
    challenge: Mutex<Option<Challenge>>,
    scopes: Mutex<Vec<String>>,
    tokens: TokenCache,
    /// One token fetch at a time: parallel requests wait for it and then
    /// find the token in the cache.
    token_lock: tokio::sync::Mutex<()>,
}

/// A client for one registry host, cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl RegistryClient {
    /// A client for `host` that will ask for `scopes` (e.g.
    /// `repository:team/app:pull,push`) when the registry wants tokens.
    pub fn new(host: &str, scopes: Vec<String>, opts: &RegistryOptions) -> Result<RegistryClient> {
        Self::for_repository(host, "", scopes, opts)
    }

    /// As [`RegistryClient::new`], looking credentials up for `repository`
    /// (a `host/repo` entry of an auth file beats a `host` one).
    pub fn for_repository(
        host: &str,
        repository: &str,
        scopes: Vec<String>,
        opts: &RegistryOptions,
    ) -> Result<RegistryClient> {
        // ring is the one TLS crypto provider compiled in; installing it
        // twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Private CAs are added to the system trust store (rustls-platform-
        // verifier, reqwest's default), as skopeo's --cert-dir does.
        let certs = super::tls::load(
            &super::tls::cert_dirs(host, opts.cert_dir.as_deref()),
            opts.cert_dir.is_some(),
        )?;
        let mut builder = reqwest::Client::builder();
        for root in certs.roots {
            builder = builder.add_root_certificate(root);
        }
        if let Some(id) = certs.identity {
            builder = builder.identity(id);
        }
        let http = builder
            .user_agent(concat!("ocipack/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(opts.stall_timeout)
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .tls_danger_accept_invalid_certs(opts.insecure)
            .build()
            .map_err(|e| Error::Unsupported(format!("cannot build an HTTP client: {e}")))?;
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None if opts.anonymous => None,
            None => super::creds::lookup(host, repository, opts.authfile.as_deref())?,
        };
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                registry: host.to_string(),
                opts: opts.clone(),
                http,
                creds,
                base: OnceCell::new(),
                unreachable: Mutex::new(None),
                challenge: Mutex::new(None),
                scopes: Mutex::new(scopes),
                tokens: TokenCache::default(),
                token_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    pub(crate) fn options(&self) -> &RegistryOptions {
        &self.inner.opts
    }

    pub(crate) fn backoff(&self, what: impl Into<String>) -> Backoff {
        Backoff::new(&self.inner.opts.retry, &self.inner.registry, what)
    }

    /// The URL of an API path (`/v2/...`); pings the registry on first use.
    pub(crate) async fn url(&self, path: &str) -> std::result::Result<Url, Failure> {
        let base = self.base().await?;
        base.join(path).map_err(|e| {
            Failure::Fatal(Error::invalid(
                format!("{}{path}", self.inner.registry),
                e.to_string(),
            ))
        })
    }

    /// Resolves a `Location` header against the registry's base URL.
    pub(crate) async fn location(&self, resp: &Response) -> std::result::Result<Url, Failure> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Failure::Fatal(Error::Registry {
                    registry: self.inner.registry.clone(),
                    what: format!("{} {}", resp.status(), resp.url().path()),
                    reason: "answer has no Location header".into(),
                })
            })?;
        resp.url().join(loc).map_err(|e| {
            Failure::Fatal(Error::Registry {
                registry: self.inner.registry.clone(),
                what: "upload location".into(),
                reason: format!("{loc:?} is not a URL: {e}"),
            })
        })
    }

    /// The registry's base URL, found by pinging it on first use (with its
    /// own retry budget).
    async fn base(&self) -> std::result::Result<Url, Failure> {
        let unreachable = || self.inner.unreachable.lock().ok().and_then(|u| u.clone());
        if let Some(msg) = unreachable() {
            return Err(Failure::Fatal(Error::Unsupported(msg)));
        }
        let r = self
            .inner
            .base
            .get_or_try_init(|| async {
                // Callers that waited on a ping that failed do not ping again.
                if let Some(msg) = unreachable() {
                    return Err(Error::Unsupported(msg));
                }
                let mut backoff = self.backoff("connecting (GET /v2/)");
                loop {
                    match self.ping().await {
                        Ok(u) => return Ok(u),
                        Err(f) => {
                            if let Err(e) = backoff.fail(f).await {
                                if let Ok(mut u) = self.inner.unreachable.lock() {
                                    *u = Some(e.to_string());
                                }
                                return Err(e);
                            }
                        }
                    }
                }
            })
            .await;
        r.cloned().map_err(Failure::Fatal)
    }

    /// Finds the scheme (HTTPS; plain HTTP only for loopback hosts or with
    /// `--insecure`) and the authentication the registry wants. A registry
    /// answers `GET /v2/` with 200 or 401; anything else is not one.
    async fn ping(&self) -> std::result::Result<Url, Failure> {
        let host = api_host(&self.inner.registry);
        let schemes = schemes(host, self.inner.opts.insecure);
        let mut last = String::new();
        let mut transient = true;
        let mut retry_after_hint = None;
        let mut tls_problem = None;
        for scheme in schemes {
            let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
                Failure::Fatal(Error::invalid(
                    format!("registry host {host:?}"),
                    e.to_string(),
                ))
            })?;
            let url = base.join("v2/").map_err(|e| {
                Failure::Fatal(Error::invalid(
                    format!("registry host {host:?}"),
                    e.to_string(),
                ))
            })?;
            let resp = self
                .inner
                .http
                .get(url.clone())
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match resp {
                Ok(r) if r.status() == StatusCode::OK => return Ok(base),
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    let ch = r
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    tracing::debug!("{host}: {url} wants {ch:?}");
                    if let Ok(mut c) = self.inner.challenge.lock() {
                        *c = ch;
                    }
                    return Ok(base);
                }
                Ok(r) => {
                    transient = is_transient_status(r.status());
                    retry_after_hint = retry_after(r.headers());
                    if !last.is_empty() {
                        last.push_str("; ");
                    }
                    last.push_str(&format!("GET {url} answered {}", r.status()));
                }
                Err(e) if super::tls::certificate_problem(&e).is_some() => {
                    transient = false;
                    tls_problem = super::tls::certificate_problem(&e);
                }
                Err(e) => {
                    transient = true;
                    let reason = match classify(&e) {
                        Failure::Transient { reason, .. } => reason,
                        // An unknown host is unknown in every scheme.
                        Failure::Fatal(f @ Error::Registry { .. }) => {
                            return Err(Failure::Fatal(f))
                        }
                        Failure::Fatal(e) => e.to_string(),
                    };
                    if !last.is_empty() {
                        last.push_str("; ");
                    }
                    last.push_str(&reason);
                }
            }
        }
        if let Some(problem) = tls_problem {
            return Err(Failure::Fatal(Error::Registry {
                registry: self.inner.registry.clone(),
                what: format!("https://{host}/v2/"),
                reason: format!(
                    "{problem}; trust the registry's CA with --cert-dir DIR (DIR/*.crt) or \
                     /etc/containers/certs.d/{host}/ca.crt, or use --insecure"
                ),
            }));
        }
        if transient {
            Err(Failure::Transient {
                reason: last,
                retry_after: retry_after_hint,
            })
        } else {
            Err(Failure::Fatal(Error::Registry {
                registry: self.inner.registry.clone(),
                what: "GET /v2/".into(),
                reason: format!("{last} (not a registry, or an unsupported API version)"),
            }))
        }
    }

    /// The `Authorization` value for the next request, if any.
    async fn authorization(&self) -> Result<Option<String>> {
        let challenge = self.inner.challenge.lock().ok().and_then(|c| c.clone());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.inner.creds.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let scopes = self
                    .inner
                    .scopes
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or_default();
                let _one = self.inner.token_lock.lock().await;
                let token = bearer_token(
                    &self.inner.tokens,
                    TokenRequest {
                        http: &self.inner.http,
                        registry: &self.inner.registry,
                        realm: &realm,
                        service: service.as_deref(),
                        scopes: &scopes,
                        creds: self.inner.creds.as_ref(),
                        policy: &self.inner.opts.retry,
                        allow_http: self.inner.opts.insecure,
                    },
                )
                .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Learns from a 401: a new challenge, or a scope the token lacked.
    /// Returns false when nothing changed (so retrying cannot help).
    fn learn(&self, headers: &HeaderMap) -> bool {
        let Some(ch) = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        else {
            return false;
        };
        let mut changed = false;
        if let Challenge::Bearer {
            scope: Some(scope), ..
        } = &ch
        {
            if let Ok(mut s) = self.inner.scopes.lock() {
                self.inner.tokens.forget(&scope_key(&s));
                for one in scope.split(' ') {
                    if !s.iter().any(|x| x == one) {
                        s.push(one.to_string());
                        changed = true;
                    }
                }
            }
        }
        if let Ok(mut c) = self.inner.challenge.lock() {
            if c.as_ref() != Some(&ch) {
                *c = Some(ch);
                changed = true;
            }
        }
        changed
    }

    /// Sends once. Authentication is handled here (a 401 is answered once
    /// with fresh credentials); transient failures are reported as such and
    /// every other answer is returned for the caller to interpret.
    pub(crate) async fn send_once(&self, req: &Req) -> std::result::Result<Response, Failure> {
        self.send_inner(req, None).await
    }

    /// Sends once with a streamed body (read as it is sent, so it cannot be
    /// replayed): a 401 that fresh credentials could answer is reported as
    /// transient, and the caller resends from the offset the registry holds.
    pub(crate) async fn send_stream(
        &self,
        req: &Req,
        body: reqwest::Body,
    ) -> std::result::Result<Response, Failure> {
        self.send_inner(req, Some(body)).await
    }

    async fn send_inner(
        &self,
        req: &Req,
        mut stream: Option<reqwest::Body>,
    ) -> std::result::Result<Response, Failure> {
        let streamed = stream.is_some();
        let base = self.base().await?;
        // Credentials go to the registry only, never to another host an
        // upload location points at.
        let same_origin = req.url.origin() == base.origin();
        let mut renewed = false;
        loop {
            let mut rb = self
                .inner
                .http
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if same_origin {
                if let Some(a) = self.authorization().await? {
                    rb = rb.header(AUTHORIZATION, a);
                }
            }
            if let Some(b) = stream.take() {
                rb = rb.body(b);
            } else if let Some(b) = &req.body {
                rb = rb.body(b.clone());
            }
            if let Some(t) = req.timeout {
                rb = rb.timeout(t);
            }
            let resp = rb.send().await.map_err(|e| classify(&e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                // Only the registry itself may say where tokens come from: a
                // challenge from another host (an upload location, a
                // redirect) would send our credentials to its realm.
                let from_registry = same_origin && resp.url().origin() == base.origin();
                if from_registry && !renewed && (self.learn(resp.headers()) || self.had_token()) {
                    if streamed {
                        return Err(Failure::transient(format!(
                            "{} {}: credentials renewed during a streamed upload",
                            req.method,
                            req.url.path()
                        )));
                    }
                    renewed = true;
                    continue;
                }
                return Err(Failure::Fatal(self.auth_error(&req.method, resp).await));
            }
            if is_transient_status(status) {
                let ra = retry_after(resp.headers());
                let reason = format!(
                    "{} {} answered {}",
                    req.method,
                    req.url.path(),
                    describe(resp).await
                );
                return Err(Failure::Transient {
                    reason,
                    retry_after: ra,
                });
            }
            return Ok(resp);
        }
    }

    /// Whether a bearer token was in use (it may have expired early: drop
    /// it and try once more).
    fn had_token(&self) -> bool {
        let bearer = matches!(
            self.inner.challenge.lock().ok().and_then(|c| c.clone()),
            Some(Challenge::Bearer { .. })
        );
        if bearer {
            if let Ok(s) = self.inner.scopes.lock() {
                self.inner.tokens.forget(&scope_key(&s));
            }
        }
        bearer
    }

    async fn auth_error(&self, method: &Method, resp: Response) -> Error {
        let hint = if self.inner.creds.is_some() {
            "credentials rejected"
        } else {
            "no credentials found: pass --creds USER:PASS, set $REGISTRY_AUTH_FILE, or log in with docker/podman"
        };
        let what = format!("{method} {}", resp.url().path());
        Error::Auth {
            registry: self.inner.registry.clone(),
            reason: format!("{what} answered {} ({hint})", describe(resp).await),
        }
    }

    /// Sends with retries on transient failures; returns any final answer.
    pub(crate) async fn send(&self, req: &Req, what: &str) -> Result<Response> {
        let mut backoff = self.backoff(what);
        loop {
            match self.send_once(req).await {
                Ok(r) => return Ok(r),
                Err(f) => backoff.fail(f).await?,
            }
        }
    }

    /// An error for an answer the caller did not expect.
    pub(crate) async fn unexpected(&self, what: &str, resp: Response) -> Error {
        Error::Registry {
            registry: self.inner.registry.clone(),
            what: what.to_string(),
            reason: format!("registry answered {}", describe(resp).await),
        }
    }
}

/// `STATUS: CODE: message` from a registry's error body (the distribution
/// spec's `{"errors":[{"code","message","detail"}]}`), or the start of the
/// body as text.
pub(crate) async fn describe(resp: Response) -> String {
    let status = resp.status();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<One>,
    }
    #[derive(serde::Deserialize)]
    struct One {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|o| {
                let mut s = format!("{}: {}", o.code, o.message);
                if let Some(d) = o.detail.as_ref().filter(|d| !d.is_null()) {
                    s.push_str(&format!(" ({d})"));
                }
                s
            })
            .collect();
        if !parts.is_empty() {
            return format!("{status}: {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::hosts::is_loopback;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.example.com"));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    /// Answers every connection with `answer` and counts the connections.
    fn one_answer_server(answer: String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = c.write_all(answer.as_bytes());
            }
        });
        (port, hits)
    }

    #[test]
    fn a_challenge_from_another_host_is_not_learned() {
        let (realm, realm_hits) = one_answer_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"token\":\"t\"}"
                .into(),
        );
        let (registry, _) = one_answer_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        );
        let (storage, _) = one_answer_server(format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{realm}/token\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        let opts = RegistryOptions {
            creds: Some(Credentials {
                username: "u".into(),
                password: "secret".into(),
                identity_token: None,
            }),
            ..RegistryOptions::default()
        };
        let client = RegistryClient::new(&format!("127.0.0.1:{registry}"), vec![], &opts).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let foreign = Url::parse(&format!("http://127.0.0.1:{storage}/blob")).unwrap();
            let _ = client.send_once(&Req::new(Method::GET, foreign)).await;
            let own = client.url("/v2/x/manifests/y").await.ok().unwrap();
            let _ = client.send_once(&Req::new(Method::GET, own)).await;
        });
        assert_eq!(
            realm_hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "credentials were sent to a realm named by another host"
        );
    }

    #[test]
    fn plain_http_only_for_loopback_or_insecure() {
        assert_eq!(schemes("ghcr.io", false), ["https"]);
        assert_eq!(schemes("10.1.2.3:5000", false), ["https"]);
        assert_eq!(schemes("ghcr.io", true), ["https", "http"]);
        assert_eq!(schemes("127.0.0.1:5000", false), ["http", "https"]);
        assert_eq!(schemes("localhost", false), ["http", "https"]);
    }
}
