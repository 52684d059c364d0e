//! Manifest requests: fetch by tag or digest (verified), store by digest or
//! tag (the digest the registry computes must equal ours).

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::client::{RegistryClient, Req};
use super::retry::Failure;
use crate::digest::sha256;
use crate::error::{Error, Result};
use crate::manifest::{RawManifest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_METADATA_SIZE};

const DIGEST_HEADER: &str = "docker-content-digest";

/// Every manifest kind ocipack reads, OCI first.
fn accept() -> String {
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
    ]
    .join(", ")
}

fn fatal(f: Failure) -> Error {
    match f {
        Failure::Fatal(e) => e,
        Failure::Transient { reason, .. } => Error::Unsupported(reason),
    }
}

/// Fetches a manifest by tag or digest. By digest, the bytes must hash to
/// it; by tag, to the `Docker-Content-Digest` the registry sends, if any.
pub(crate) async fn get(
    client: &RegistryClient,
    repo: &str,
    reference: &str,
) -> Result<RawManifest> {
    let what = format!("GET manifest {repo}:{reference}");
    let url = client
        .url(&format!("/v2/{repo}/manifests/{reference}"))
        .await
        .map_err(fatal)?;
    let req = Req::new(Method::GET, url).header(ACCEPT, &accept());
    let mut backoff = client.backoff(&what);
    loop {
        let resp = client.send(&req, &what).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::not_found(
                    format!("manifest {reference}"),
                    format!("{}/{repo}", client.registry()),
                ))
            }
            _ => return Err(client.unexpected(&what, resp).await),
        }
        if resp.content_length().is_some_and(|n| n > MAX_METADATA_SIZE) {
            return Err(Error::invalid(
                &what,
                format!("manifest larger than {MAX_METADATA_SIZE} bytes"),
            ));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let header_digest = resp
            .headers()
            .get(DIGEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string());
        let mut resp = resp;
        let mut body = Vec::new();
        let mut cut = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c);
                    if body.len() as u64 > MAX_METADATA_SIZE {
                        return Err(Error::invalid(
                            &what,
                            format!("manifest larger than {MAX_METADATA_SIZE} bytes"),
                        ));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = cut {
            backoff.fail(super::retry::classify(&e)).await?;
            continue;
        }
        let actual = sha256(&body);
        let expected = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            header_digest.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(exp) = expected {
            if exp != actual.as_ref() {
                return Err(Error::DigestMismatch {
                    expected: exp,
                    actual: actual.to_string(),
                    location: None,
                });
            }
        }
        return RawManifest::from_bytes(body, content_type.as_deref());
    }
}

/// Stores a manifest under `reference` (its digest or a tag) and checks the
/// digest the registry reports. Returns whether the answer carried an
/// `OCI-Subject` header (the registry indexes referrers itself).
pub(crate) async fn put(
    client: &RegistryClient,
    repo: &str,
    reference: &str,
    raw: &RawManifest,
) -> Result<bool> {
    let what = format!("PUT manifest {} as {repo}:{reference}", raw.digest());
    let url = client
        .url(&format!("/v2/{repo}/manifests/{reference}"))
        .await
        .map_err(fatal)?;
    let req = Req::new(Method::PUT, url)
        .header(CONTENT_TYPE, raw.kind().media_type().as_ref())
        .body(bytes::Bytes::copy_from_slice(raw.bytes()));
    let resp = client.send(&req, &what).await?;
    if !resp.status().is_success() {
        return Err(client.unexpected(&what, resp).await);
    }
    let subject = resp.headers().contains_key("oci-subject");
    let reported = resp
        .headers()
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    match reported {
        Some(d) if d == raw.digest().as_ref() => Ok(subject),
        Some(d) => Err(Error::Registry {
            registry: client.registry().to_string(),
            what,
            reason: format!(
                "registry stored it as {d}, not {}; it rewrote the manifest (digests would not be preserved)",
                raw.digest()
            ),
        }),
        None => {
            // No header: confirm the registry serves our digest.
            let url = client
                .url(&format!("/v2/{repo}/manifests/{}", raw.digest()))
                .await
                .map_err(fatal)?;
            let head = Req::new(Method::HEAD, url).header(ACCEPT, &accept());
            let r = client.send(&head, &what).await?;
            if r.status().is_success() {
                Ok(subject)
            } else {
                Err(Error::Registry {
                    registry: client.registry().to_string(),
                    what,
                    reason: format!(
                        "registry did not report a digest and does not serve {} ({})",
                        raw.digest(),
                        r.status()
                    ),
                })
            }
        }
    }
}
