//! Host policy: which hosts count as local, where a registry's API really
//! is, and which schemes may be tried. The client and the token flow both
//! ask it (a token realm over plain HTTP is refused unless the host is
//! loopback), so it sits below both.

use std::net::IpAddr;

/// Whether a host (optionally with a port) is a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host the API is served from (Docker Hub's differs from its name).
pub(crate) fn api_host(host: &str) -> &str {
    if host == "docker.io" || host == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

/// The schemes to try, in order: HTTPS only, unless the host is loopback
/// or `--insecure` was given.
pub(crate) fn schemes(host: &str, insecure: bool) -> &'static [&'static str] {
    if is_loopback(host) {
        // Plain HTTP first: a TLS hello sent to a plain HTTP server may hang
        // until a timeout, while an HTTP request to a TLS server is refused
        // at once.
        &["http", "https"]
    } else if insecure {
        &["https", "http"]
    } else {
        &["https"]
    }
}
