//! Registry authentication: `WWW-Authenticate` challenges, the bearer token
//! flow (realm, service, scope) and a per-scope token cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use super::creds::Credentials;
use super::retry::{classify, is_transient_status, retry_after, Backoff, Failure, RetryPolicy};
use crate::error::{Error, Result};

/// What a registry asked for on a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value. A header may carry several
/// challenges; bearer is preferred over basic.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut found_basic = false;
    let mut bearer: Option<Challenge> = None;
    // Split into challenges: a new one starts at a token followed by a space
    // that is not inside a quoted string.
    for (scheme, params) in split_challenges(header) {
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => found_basic = true,
            "bearer" if bearer.is_none() => {
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                if let Some(realm) = get("realm") {
                    bearer = Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            }
            _ => {}
        }
    }
    bearer.or(if found_basic {
        Some(Challenge::Basic)
    } else {
        None
    })
}

type Params = Vec<(String, String)>;

fn split_challenges(header: &str) -> Vec<(String, Params)> {
    let mut out: Vec<(String, Params)> = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        // Skip separators.
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        // A token: a scheme (followed by space or end) or a parameter name
        // (followed by '=').
        let mut tok = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            tok.push(c);
            chars.next();
        }
        if tok.is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut val = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                val.push(n)
                            }
                        }
                        '"' => break,
                        c => val.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
                val = val.trim().to_string();
            }
            if let Some(last) = out.last_mut() {
                last.1.push((tok, val));
            }
        } else {
            out.push((tok, Vec::new()));
        }
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// Bearer tokens by scope set.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Token>>,
}

impl TokenCache {
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let map = self.tokens.lock().ok()?;
        map.get(key)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone())
    }

    fn put(&self, key: &str, token: Token) {
        if let Ok(mut m) = self.tokens.lock() {
            m.insert(key.to_string(), token);
        }
    }

    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut m) = self.tokens.lock() {
            m.remove(key);
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The cache key of a scope set (order-independent).
pub(crate) fn scope_key(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

/// Everything needed to ask a token service for a token.
pub(crate) struct TokenRequest<'a> {
    pub http: &'a reqwest::Client,
    pub registry: &'a str,
    pub realm: &'a str,
    pub service: Option<&'a str>,
    pub scopes: &'a [String],
    pub creds: Option<&'a Credentials>,
    pub policy: &'a RetryPolicy,
    pub allow_http: bool,
}

/// Returns a cached token for the scopes, or fetches one (with retries on
/// transient failures) and caches it.
pub(crate) async fn bearer_token(cache: &TokenCache, req: TokenRequest<'_>) -> Result<String> {
    let key = scope_key(req.scopes);
    if let Some(t) = cache.get(&key) {
        return Ok(t);
    }
    let realm = reqwest::Url::parse(req.realm).map_err(|e| Error::Auth {
        registry: req.registry.to_string(),
        reason: format!("token realm {:?} is not a URL: {e}", req.realm),
    })?;
    if realm.scheme() != "https"
        && !(req.allow_http || super::hosts::is_loopback(realm.host_str().unwrap_or("")))
    {
        return Err(Error::Auth {
            registry: req.registry.to_string(),
            reason: format!(
                "token realm {realm} is not HTTPS; refusing to send credentials in clear (use --insecure to allow)"
            ),
        });
    }
    let mut backoff = Backoff::new(req.policy, req.registry, format!("token from {realm}"));
    loop {
        match fetch_once(&realm, &req).await {
            Ok(t) => {
                cache.put(&key, t.clone());
                return Ok(t.value);
            }
            Err(f) => backoff.fail(f).await?,
        }
    }
}

async fn fetch_once(
    realm: &reqwest::Url,
    req: &TokenRequest<'_>,
) -> std::result::Result<Token, Failure> {
    let identity = req.creds.and_then(|c| c.identity_token.as_deref());
    let rb = if let Some(refresh) = identity {
        // OAuth2 refresh-token grant, as Docker does for identity tokens.
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh)
            .append_pair("client_id", "ocipack")
            .append_pair("scope", &req.scopes.join(" "));
        if let Some(s) = req.service {
            form.append_pair("service", s);
        }
        req.http
            .post(realm.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.finish())
    } else {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = req.service {
                q.append_pair("service", s);
            }
            for s in req.scopes {
                q.append_pair("scope", s);
            }
        }
        let mut rb = req.http.get(url);
        if let Some(c) = req.creds {
            rb = rb.header(AUTHORIZATION, c.basic_header());
        }
        rb
    };
    let resp = rb
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let status = resp.status();
    if is_transient_status(status) {
        return Err(Failure::Transient {
            reason: format!("token service answered {status}"),
            retry_after: retry_after(resp.headers()),
        });
    }
    // A token answer is a small JSON object; bound what a hostile or broken
    // token service can make us hold.
    const MAX_TOKEN_ANSWER: usize = 1 << 20;
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_ANSWER {
            return Err(Failure::Fatal(Error::Auth {
                registry: req.registry.to_string(),
                reason: format!(
                    "token service {realm} answered more than {MAX_TOKEN_ANSWER} bytes"
                ),
            }));
        }
    }
    if !status.is_success() {
        let hint = if req.creds.is_none() {
            " (no credentials found: pass --creds USER:PASS, or log in with docker/podman)"
        } else {
            " (credentials rejected)"
        };
        return Err(Failure::Fatal(Error::Auth {
            registry: req.registry.to_string(),
            reason: format!(
                "token service {realm} answered {status}: {}{hint}",
                String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
            ),
        }));
    }
    let ans: TokenAnswer =
        serde_json::from_slice(&body).map_err(|e| Error::json(format!("token from {realm}"), e))?;
    let value = ans
        .token
        .or(ans.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Auth {
            registry: req.registry.to_string(),
            reason: format!("token service {realm} answered without a token"),
        })?;
    // The spec's default lifetime is 60 s; renew a little early.
    let life = Duration::from_secs(ans.expires_in.unwrap_or(60).max(10));
    Ok(Token {
        value,
        expires: Instant::now() + life - Duration::from_secs(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        // Several challenges: bearer wins; unquoted values work.
        let c = parse_challenge(r#"Basic realm="x", Bearer realm=https://t/token,service=reg"#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://t/token".into(),
                service: Some("reg".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn scope_keys_ignore_order() {
        let a = vec![
            "repository:a:pull".to_string(),
            "repository:b:pull,push".into(),
        ];
        let b = vec![
            "repository:b:pull,push".to_string(),
            "repository:a:pull".into(),
        ];
        assert_eq!(scope_key(&a), scope_key(&b));
    }
}
