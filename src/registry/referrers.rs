//! Referrers in a registry (OCI distribution spec 1.1): the referrers API
//! where the registry has it, else the referrers tag schema, an index
//! tagged `sha256-<hex>` that clients maintain (distribution 2.8, Debian's
//! `docker-registry`, has no API).

use oci_spec::image::Descriptor;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client::{RegistryClient, Req};
use super::manifests;
use crate::error::{Error, Result};
use crate::manifest::{canonical_json, RawManifest, MAX_METADATA_SIZE};
use crate::referrers::{add_to_index, empty_index, schema_tag};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Lists the referrers of `subject`: the API's answer when it answers 200
/// with an index, else the tag schema's index (none when the tag is absent).
pub(crate) async fn list(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
) -> Result<Vec<Descriptor>> {
    if let Some(v) = api(client, repo, subject).await? {
        return entries(&v, &format!("referrers of {subject} in {repo}"));
    }
    match manifests::get(client, repo, &schema_tag(subject)).await {
        Ok(raw) => Ok(raw.index()?.manifests().clone()),
        Err(Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `GET /v2/NAME/referrers/DIGEST`: the index when the registry serves the
/// API, None when it does not (404 or any non-index answer: the spec's
/// fallback to the tag schema).
async fn api(client: &RegistryClient, repo: &str, subject: &str) -> Result<Option<Value>> {
    let what = format!("GET referrers of {repo}@{subject}");
    let url = client
        .url(&format!("/v2/{repo}/referrers/{subject}"))
        .await
        .map_err(|f| Error::Unsupported(format!("{what}: {f:?}")))?;
    let req = Req::new(Method::GET, url).header(ACCEPT, INDEX);
    let resp = client.send(&req, &what).await?;
    if resp.status() != StatusCode::OK {
        return Ok(None);
    }
    let is_index = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(INDEX));
    if !is_index {
        return Ok(None);
    }
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(c) = resp
        .chunk()
        .await
        .map_err(|e| Error::Unsupported(format!("{what}: {e}")))?
    {
        body.extend_from_slice(&c);
        if body.len() as u64 > MAX_METADATA_SIZE {
            return Err(Error::invalid(&what, "referrers index too large"));
        }
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| Error::json(&what, e))?;
    Ok(Some(v))
}

fn entries(v: &Value, what: &str) -> Result<Vec<Descriptor>> {
    let list = v.get("manifests").cloned().unwrap_or(Value::Array(vec![]));
    serde_json::from_value(list).map_err(|e| Error::json(what, e))
}

/// Stores the artifact manifest `raw` (blobs already pushed) by digest.
/// A registry that answers with `OCI-Subject`, or serves the referrers API,
/// lists it itself; otherwise `desc` is added to the subject's tag schema
/// index: read, add, write, then read back, again if a concurrent writer
/// replaced it meanwhile (a registry offers no compare-and-swap on tags;
/// this is as atomic as one allows).
pub(crate) async fn push(
    client: &RegistryClient,
    repo: &str,
    raw: &RawManifest,
    desc: &Descriptor,
    subject: &Descriptor,
) -> Result<()> {
    if manifests::put(client, repo, raw.digest().as_ref(), raw).await? {
        return Ok(());
    }
    let subject = subject.digest().to_string();
    if api(client, repo, &subject).await?.is_some() {
        return Ok(());
    }
    let tag = schema_tag(&subject);
    for _ in 0..5 {
        let mut index = match manifests::get(client, repo, &tag).await {
            Ok(raw) => serde_json::from_slice(raw.bytes())
                .map_err(|e| Error::json(format!("{repo}:{tag}"), e))?,
            Err(Error::NotFound { .. }) => empty_index(),
            Err(e) => return Err(e),
        };
        if !add_to_index(&mut index, desc)? {
            return Ok(());
        }
        let bytes = canonical_json(&index)?;
        let new = RawManifest::from_bytes(bytes, Some(INDEX))?;
        manifests::put(client, repo, &tag, &new).await?;
        // Read back: another writer may have replaced the index between
        // our read and write; then our entry is missing and we go again.
        let now = manifests::get(client, repo, &tag).await?;
        if now
            .index()?
            .manifests()
            .iter()
            .any(|d| d.digest() == desc.digest())
        {
            return Ok(());
        }
    }
    Err(Error::Registry {
        registry: client.registry().to_string(),
        what: format!("referrers tag {repo}:{tag}"),
        reason: format!(
            "{} kept disappearing from the index: concurrent writers",
            desc.digest()
        ),
    })
}
