//! Retries with exponential backoff and jitter, within a bounded budget.
//!
//! What is transient: connection errors and timeouts, 408, 429 (its
//! `Retry-After` is honoured) and 5xx other than 501/505. Everything else is
//! an answer, and the caller decides what it means. A host name that does
//! not resolve is final: the resolver answered, retrying cannot help.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::error::{Error, Result};

/// How hard to try before giving up on one operation.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay after `failures` consecutive failures (1-based): exponential
    /// with "equal jitter" (half fixed, half random), so many clients that
    /// failed together do not come back together. A server's `Retry-After`
    /// wins when it asks for longer.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        let jitter = half.mul_f64(fastrand::f64());
        let computed = half + jitter;
        match retry_after {
            Some(ra) => ra
                .min(self.max_delay.max(Duration::from_secs(1)))
                .max(computed),
            None => computed,
        }
    }
}

/// Why an attempt failed, when it may be worth trying again.
#[derive(Debug)]
pub(crate) enum Failure {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(Error),
}

impl Failure {
    pub(crate) fn transient(reason: impl Into<String>) -> Failure {
        Failure::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// Counts failures of one operation and sleeps between attempts.
pub(crate) struct Backoff {
    policy: RetryPolicy,
    registry: String,
    what: String,
    failures: u32,
    total: u32,
}

impl Backoff {
    pub(crate) fn new(policy: &RetryPolicy, registry: &str, what: impl Into<String>) -> Backoff {
        Backoff {
            policy: policy.clone(),
            registry: registry.to_string(),
            what: what.into(),
            failures: 0,
            total: 0,
        }
    }

    /// Handles a failed attempt: a fatal error is returned as is; a
    /// transient one sleeps, or becomes [`Error::RetriesExhausted`] once the
    /// budget is spent.
    pub(crate) async fn fail(&mut self, failure: Failure) -> Result<()> {
        let (reason, retry_after) = match failure {
            Failure::Fatal(e) => return Err(e),
            Failure::Transient {
                reason,
                retry_after,
            } => (reason, retry_after),
        };
        self.failures += 1;
        self.total += 1;
        if self.failures >= self.policy.max_attempts.max(1) {
            return Err(Error::RetriesExhausted {
                registry: self.registry.clone(),
                what: self.what.clone(),
                attempts: self.total,
                last: reason,
            });
        }
        let delay = self.policy.delay(self.failures, retry_after);
        tracing::warn!(
            "{}: {}: {reason}; retrying in {:.1}s (attempt {} of {})",
            self.registry,
            self.what,
            delay.as_secs_f64(),
            self.failures + 1,
            self.policy.max_attempts
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Progress was made since the last failure: a long transfer over a
    /// flaky link gets a fresh budget after each stretch that worked.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
    }
}

/// Whether a status is worth retrying.
pub(crate) fn is_transient_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT
        || s == StatusCode::TOO_MANY_REQUESTS
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Describes a request error for messages and decides whether it is
/// transient. Errors of the request itself (a bad URL, a redirect loop) are
/// not.
pub(crate) fn classify(e: &reqwest::Error) -> Failure {
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_builder() || e.is_redirect() {
        return Failure::Fatal(Error::Unsupported(reason));
    }
    if e.is_connect() && is_unknown_host(&reason) {
        let host = e
            .url()
            .map(|u| match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => u.to_string(),
            })
            .unwrap_or_default();
        return Failure::Fatal(Error::Registry {
            registry: host.clone(),
            what: "resolving the host name".into(),
            reason: format!("unknown host {host:?} (name resolution failed: {reason})"),
        });
    }
    Failure::transient(reason)
}

/// Whether an error chain says the resolver answered "no such name"
/// (glibc's EAI_NONAME and EAI_NODATA, musl's and macOS's wording). A
/// temporary failure ("Temporary failure in name resolution", EAI_AGAIN)
/// stays transient.
pub(crate) fn is_unknown_host(chain: &str) -> bool {
    const FINAL: &[&str] = &[
        "Name or service not known",
        "No address associated with hostname",
        "Name does not resolve",
        "nodename nor servname provided, or not known",
        "No such host is known",
    ];
    chain.contains("dns error") && FINAL.iter().any(|m| chain.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_secs(2));
        }
        // Retry-After wins when longer, but is capped.
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn statuses_and_retry_after() {
        assert!(is_transient_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_transient_status(StatusCode::BAD_GATEWAY));
        assert!(is_transient_status(StatusCode::REQUEST_TIMEOUT));
        assert!(!is_transient_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!is_transient_status(StatusCode::NOT_FOUND));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn unknown_host_is_final_temporary_dns_is_not() {
        // reqwest's chain for a name the resolver does not know.
        let nx = "error sending request for url (https://r.invalid/v2/): client error (Connect): \
                  dns error: failed to lookup address information: Name or service not known";
        assert!(is_unknown_host(nx));
        assert!(is_unknown_host(
            "client error (Connect): dns error: failed to lookup address information: No address associated with hostname"
        ));
        assert!(!is_unknown_host(
            "client error (Connect): dns error: failed to lookup address information: Temporary failure in name resolution"
        ));
        assert!(!is_unknown_host(
            "client error (Connect): tcp connect error: Connection refused (os error 111)"
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unresolvable_name_is_classified_final() {
        // RFC 2606: `.invalid` never resolves; glibc answers without traffic
        // when no resolver knows it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().build().unwrap();
        let e = client
            .get("http://ocipack-test.invalid:5000/v2/")
            .send()
            .await
            .unwrap_err();
        match classify(&e) {
            Failure::Fatal(Error::Registry {
                registry, reason, ..
            }) => {
                assert_eq!(registry, "ocipack-test.invalid:5000");
                assert!(reason.contains("unknown host"), "{reason}");
            }
            other => panic!("expected a final DNS failure, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn budget_is_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut b = Backoff::new(&p, "reg", "GET x");
        b.fail(Failure::transient("500")).await.unwrap();
        b.fail(Failure::transient("500")).await.unwrap();
        let e = b.fail(Failure::transient("503")).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("gave up after 3 attempts"), "{msg}");
        assert!(msg.contains("503"), "{msg}");
        // A fatal failure passes through untouched.
        let mut b = Backoff::new(&p, "reg", "GET x");
        let e = b
            .fail(Failure::Fatal(Error::Unsupported("no".into())))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)));
    }
}
