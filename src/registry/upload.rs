//! Blob uploads (distribution spec "push"): existence check, cross-repository
//! mount, one-request upload for small blobs, chunked upload for large ones,
//! resume from the offset the registry reports, restart when it lost the
//! session, and retries within a budget.
//!
//! Large blobs stream in one `PATCH` by default (read, verified and sent
//! at once, a few blocks in flight); with a chunk size they go in chunks.
//! Memory stays bounded: a few blocks, or one chunk held to be resent after
//! a failure; everything else is re-read from the source.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use oci_spec::image::Descriptor;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode, Url};

use super::client::{describe, RegistryClient, Req};
use super::progress::BlobBar;
use super::retry::{Backoff, Failure};
use crate::error::{Error, Result};

/// Opens the blob's content from its first byte; called again when an
/// upload must restart from an offset no longer in memory.
pub(crate) type Opener<'a> = dyn FnMut() -> Result<Box<dyn Read + 'a>> + 'a;

/// What happened to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pushed {
    Existed,
    Mounted(String),
    Uploaded,
}

const DIGEST_HEADER: &str = "docker-content-digest";
/// Blobs up to this size go up in one `PUT` when no chunk size is set.
const SMALL_BLOB: u64 = super::DEFAULT_CHUNK_SIZE;
/// A streamed upload reads the source in blocks of this size…
const STREAM_BLOCK: u64 = 1 << 20;
/// …with at most this many queued for sending (bounded memory).
const STREAM_DEPTH: usize = 4;
const CHUNK_MIN_HEADER: &str = "oci-chunk-min-length";
/// Largest `OCI-Chunk-Min-Length` honoured: a chunk is held in memory (to
/// resend it), so the registry must not be able to make it a whole layer.
const MAX_CHUNK_MIN: u64 = 64 * 1024 * 1024;

/// Whether the repository has the blob (`HEAD`).
pub(crate) async fn blob_exists(
    client: &RegistryClient,
    repo: &str,
    desc: &Descriptor,
) -> Result<bool> {
    let what = format!("HEAD blob {} in {repo}", desc.digest());
    let url = client
        .url(&format!("/v2/{repo}/blobs/{}", desc.digest()))
        .await
        .or_else(fatal)?;
    let resp = client.send(&Req::new(Method::HEAD, url), &what).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(client.unexpected(&what, resp).await),
    }
}

fn fatal<T>(f: Failure) -> Result<T> {
    match f {
        Failure::Fatal(e) => Err(e),
        Failure::Transient { reason, .. } => Err(Error::Unsupported(reason)),
    }
}

/// An open upload session.
struct Session {
    url: Url,
    /// Bytes the registry has confirmed.
    offset: u64,
    /// The registry's `OCI-Chunk-Min-Length`.
    min_chunk: u64,
}

/// Pushes one blob: skip if present (when `check` is set), mount from a
/// sibling repository if one of `mount_from` has it, else upload.
pub(crate) async fn push_blob(
    client: &RegistryClient,
    repo: &str,
    desc: &Descriptor,
    check: bool,
    opener: &mut Opener<'_>,
    bar: &BlobBar,
) -> Result<Pushed> {
    if check && blob_exists(client, repo, desc).await? {
        return Ok(Pushed::Existed);
    }
    let mut session = None;
    for from in &client.options().mount_from {
        if from == repo {
            continue;
        }
        match try_mount(client, repo, from, desc).await? {
            MountResult::Mounted => return Ok(Pushed::Mounted(from.clone())),
            MountResult::Session(s) => {
                session = Some(s);
                break;
            }
            MountResult::NotThere => {}
        }
    }
    let mut src = ChunkSource::new(opener, desc);
    let mut backoff = client.backoff(format!("pushing blob {} to {repo}", desc.digest()));
    loop {
        let failure = match attempt(
            client,
            repo,
            desc,
            &mut session,
            &mut src,
            &mut backoff,
            bar,
        )
        .await
        {
            Ok(()) => return Ok(Pushed::Uploaded),
            Err(f) => f,
        };
        if let Err(e) = backoff.fail(failure).await {
            if let Some(s) = session.take() {
                cancel(client, &s).await;
            }
            return Err(e);
        }
        // The lost answer may have been the one that completed the upload.
        if session.as_ref().is_none_or(|s| s.offset >= desc.size())
            && blob_exists(client, repo, desc).await?
        {
            return Ok(Pushed::Uploaded);
        }
    }
}

enum MountResult {
    Mounted,
    Session(Session),
    NotThere,
}

/// `POST …/blobs/uploads/?mount=D&from=R`: 201 means mounted; 202 means the
/// registry declined and opened an upload session instead.
async fn try_mount(
    client: &RegistryClient,
    repo: &str,
    from: &str,
    desc: &Descriptor,
) -> Result<MountResult> {
    let what = format!("mounting blob {} from {from} into {repo}", desc.digest());
    let mut url = client
        .url(&format!("/v2/{repo}/blobs/uploads/"))
        .await
        .or_else(fatal)?;
    url.query_pairs_mut()
        .append_pair("mount", desc.digest().as_ref())
        .append_pair("from", from);
    let req = Req::new(Method::POST, url).header(CONTENT_LENGTH, "0");
    let resp = match client.send(&req, &what).await {
        Ok(r) => r,
        // No pull access to `from` is a reason not to mount, not to fail.
        Err(Error::Auth { reason, .. }) => {
            tracing::debug!("{what}: {reason}");
            return Ok(MountResult::NotThere);
        }
        Err(e) => return Err(e),
    };
    match resp.status() {
        StatusCode::CREATED => {
            check_digest_header(client, &resp, desc, &what)?;
            Ok(MountResult::Mounted)
        }
        StatusCode::ACCEPTED => Ok(MountResult::Session(session_from(client, &resp).await?)),
        _ => {
            tracing::debug!("{what}: {}", describe(resp).await);
            Ok(MountResult::NotThere)
        }
    }
}

async fn session_from(client: &RegistryClient, resp: &Response) -> Result<Session> {
    let url = client.location(resp).await.or_else(fatal)?;
    let min_chunk = min_chunk(resp.headers());
    Ok(Session {
        url,
        offset: 0,
        min_chunk,
    })
}

/// The registry's minimum chunk size, capped at [`MAX_CHUNK_MIN`].
fn min_chunk(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get(CHUNK_MIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |n| n.min(MAX_CHUNK_MIN))
}

/// Opens an upload session (`POST …/blobs/uploads/`).
async fn start_session(
    client: &RegistryClient,
    repo: &str,
) -> std::result::Result<Session, Failure> {
    let url = client.url(&format!("/v2/{repo}/blobs/uploads/")).await?;
    let req = Req::new(Method::POST, url).header(CONTENT_LENGTH, "0");
    let resp = client.send_once(&req).await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(Failure::Fatal(
            client
                .unexpected(&format!("starting an upload to {repo}"), resp)
                .await,
        ));
    }
    Ok(session_from(client, &resp).await?)
}

/// One try at finishing the upload from wherever the session stands.
async fn attempt(
    client: &RegistryClient,
    repo: &str,
    desc: &Descriptor,
    session: &mut Option<Session>,
    src: &mut ChunkSource<'_, '_>,
    backoff: &mut Backoff,
    bar: &BlobBar,
) -> std::result::Result<(), Failure> {
    let s = match session {
        Some(s) => s,
        None => session.insert(start_session(client, repo).await?),
    };
    let size = desc.size();
    let opts = client.options();
    // Without a chunk size the blob streams in one PATCH; the small-blob
    // threshold is then the default chunk size.
    // (A registry's minimum chunk length does not ask for chunks: one
    // stream is one chunk over any minimum.)
    let chunked = opts.chunk_size.is_some();
    let chunk = opts
        .chunk_size
        .unwrap_or(SMALL_BLOB)
        .max(s.min_chunk)
        .max(1);
    bar.set(s.offset);

    if s.offset == 0 && size <= chunk {
        // Small blob: the whole content with the closing PUT.
        let body = src.read(0, size)?;
        let req = closing_put(&s.url, desc, body, opts.stall_timeout);
        return match client.send_once(&req).await {
            Ok(resp) => finish(client, resp, desc, bar).await,
            Err(f) => {
                // A half-sent PUT leaves the session in an unknown state.
                *session = None;
                Err(f)
            }
        };
    }

    if !chunked && s.offset < size {
        stream_rest(client, desc, session, src, backoff, bar).await?;
    }
    let Some(s) = session.as_mut() else {
        return Err(Failure::transient("upload session lost"));
    };

    while s.offset < size {
        let len = chunk.min(size - s.offset);
        let body = src.read(s.offset, len)?;
        let end = s.offset + len - 1;
        let mut req = Req::new(Method::PATCH, s.url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(
                reqwest::header::CONTENT_RANGE,
                &format!("{}-{end}", s.offset),
            )
            .body(body);
        req.timeout = Some(request_timeout(opts.stall_timeout, len));
        match client.send_once(&req).await {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED || resp.status().is_success() => {
                s.url = client
                    .location(&resp)
                    .await
                    .unwrap_or_else(|_| s.url.clone());
                s.offset = range_end(&resp).map(|e| e + 1).unwrap_or(end + 1);
                bar.set(s.offset);
                backoff.progressed();
            }
            Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                // We and the registry disagree on the offset: ask it.
                let reason = format!("chunk at {} refused: {}", s.offset, describe(resp).await);
                resync(client, session).await;
                return Err(Failure::transient(reason));
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                let reason = format!("upload session lost: {}", describe(resp).await);
                *session = None;
                return Err(Failure::transient(reason));
            }
            Ok(resp) => {
                return Err(Failure::Fatal(
                    client
                        .unexpected(&format!("uploading blob {}", desc.digest()), resp)
                        .await,
                ))
            }
            Err(Failure::Transient {
                reason,
                retry_after,
            }) => {
                resync(client, session).await;
                return Err(Failure::Transient {
                    reason,
                    retry_after,
                });
            }
            Err(f) => return Err(f),
        }
    }

    let req = closing_put(&s.url, desc, Bytes::new(), opts.stall_timeout);
    match client.send_once(&req).await {
        Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
            // Maybe an earlier closing PUT did succeed; the caller checks.
            let reason = format!("closing the upload: {}", describe(resp).await);
            *session = None;
            Err(Failure::transient(reason))
        }
        Ok(resp) => finish(client, resp, desc, bar).await,
        Err(f) => Err(f),
    }
}

/// Sends everything from the session's offset to the end in one PATCH
/// whose body is read from the source as it goes out: reading and verifying
/// the source (this thread) overlaps with sending (the runtime's threads),
/// with a few blocks in flight. On failure the session is resynced and the
/// next attempt resumes at the registry's offset, reading the source again
/// only up to there.
async fn stream_rest(
    client: &RegistryClient,
    desc: &Descriptor,
    session: &mut Option<Session>,
    src: &mut ChunkSource<'_, '_>,
    backoff: &mut Backoff,
    bar: &BlobBar,
) -> std::result::Result<(), Failure> {
    let Some(s) = session.as_mut() else {
        return Ok(());
    };
    let size = desc.size();
    let start = s.offset;
    let len = size - start;
    src.seek(start)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STREAM_DEPTH);
    let body = reqwest::Body::wrap(ChannelBody { rx, remaining: len });
    let mut req = Req::new(Method::PATCH, s.url.clone())
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(
            reqwest::header::CONTENT_RANGE,
            &format!("{start}-{}", size - 1),
        )
        .header(CONTENT_LENGTH, &len.to_string());
    req.timeout = Some(request_timeout(client.options().stall_timeout, len));
    let feed = async {
        let mut sent = start;
        while sent < size {
            let want = STREAM_BLOCK.min(size - sent);
            let block = match src.next_block(want) {
                Ok(b) => b,
                Err(e) => {
                    // Abort the request: the registry must not take a
                    // corrupt or short blob.
                    let _ = tx
                        .send(Err(std::io::Error::other("source read failed")))
                        .await;
                    return Err(e);
                }
            };
            sent += block.len() as u64;
            if tx.send(Ok(block)).await.is_err() {
                // The request ended early; its outcome says why.
                break;
            }
            bar.set(sent);
        }
        drop(tx);
        Ok(())
    };
    let (sent, fed) = tokio::join!(client.send_stream(&req, body), feed);
    fed?;
    match sent {
        Ok(resp) if resp.status() == StatusCode::ACCEPTED || resp.status().is_success() => {
            s.url = client
                .location(&resp)
                .await
                .unwrap_or_else(|_| s.url.clone());
            s.offset = range_end(&resp).map(|e| e + 1).unwrap_or(size);
            bar.set(s.offset);
            backoff.progressed();
            Ok(())
        }
        Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
            let reason = format!("upload at {start} refused: {}", describe(resp).await);
            resync(client, session).await;
            Err(Failure::transient(reason))
        }
        Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
            let reason = format!("upload session lost: {}", describe(resp).await);
            *session = None;
            Err(Failure::transient(reason))
        }
        Ok(resp) => Err(Failure::Fatal(
            client
                .unexpected(&format!("uploading blob {}", desc.digest()), resp)
                .await,
        )),
        Err(Failure::Transient {
            reason,
            retry_after,
        }) => {
            resync(client, session).await;
            Err(Failure::Transient {
                reason,
                retry_after,
            })
        }
        Err(f) => Err(f),
    }
}

/// A request body fed block by block through a bounded channel; its exact
/// length is announced so the request carries `Content-Length`.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Ready(None) if self.remaining > 0 => {
                std::task::Poll::Ready(Some(Err(std::io::Error::other("upload body ended early"))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

fn closing_put(session: &Url, desc: &Descriptor, body: Bytes, stall: Duration) -> Req {
    let mut url = session.clone();
    url.query_pairs_mut()
        .append_pair("digest", desc.digest().as_ref());
    let len = body.len() as u64;
    let mut req = Req::new(Method::PUT, url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body);
    req.timeout = Some(request_timeout(stall, len));
    req
}

/// Time allowed for one request carrying `len` bytes: the stall timeout plus
/// 64 KiB/s, so a slow but moving upload is not cut.
fn request_timeout(stall: Duration, len: u64) -> Duration {
    stall + Duration::from_secs(len / (64 * 1024))
}

async fn finish(
    client: &RegistryClient,
    resp: Response,
    desc: &Descriptor,
    bar: &BlobBar,
) -> std::result::Result<(), Failure> {
    if resp.status() == StatusCode::CREATED || resp.status().is_success() {
        check_digest_header(client, &resp, desc, "closing the upload")?;
        bar.set(desc.size());
        return Ok(());
    }
    Err(Failure::Fatal(
        client
            .unexpected(
                &format!("closing the upload of blob {}", desc.digest()),
                resp,
            )
            .await,
    ))
}

fn check_digest_header(
    client: &RegistryClient,
    resp: &Response,
    desc: &Descriptor,
    what: &str,
) -> Result<()> {
    if let Some(got) = resp
        .headers()
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        if got.trim() != desc.digest().as_ref() {
            return Err(Error::Registry {
                registry: client.registry().to_string(),
                what: format!("{what} of blob {}", desc.digest()),
                reason: format!("registry reports digest {got}"),
            });
        }
    }
    Ok(())
}

/// `Range: 0-N` (or `bytes=0-N`): the last byte the registry holds.
fn range_end(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(reqwest::header::RANGE)?.to_str().ok()?;
    parse_range_end(v)
}

fn parse_range_end(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    // `end + 1` is the next offset: a hostile u64::MAX must not overflow.
    end.trim().parse().ok().filter(|e| *e < u64::MAX)
}

/// After a failed chunk, asks the registry how much it holds (`GET` on the
/// session). If it no longer knows the session (some registries cancel an
/// upload whose offset moved unexpectedly), the upload restarts from zero.
async fn resync(client: &RegistryClient, session: &mut Option<Session>) {
    let Some(s) = session.as_mut() else { return };
    let req = Req::new(Method::GET, s.url.clone());
    match client.send_once(&req).await {
        Ok(resp) if resp.status() == StatusCode::NO_CONTENT || resp.status().is_success() => {
            if let Ok(u) = client.location(&resp).await {
                s.url = u;
            }
            // Distribution answers "0-0" for an empty upload.
            let held = range_end(&resp).map(|e| if e == 0 { 0 } else { e + 1 });
            match held {
                Some(o) => {
                    tracing::info!("resuming upload at byte {o}");
                    s.offset = o;
                }
                None => *session = None,
            }
        }
        Ok(resp) => {
            tracing::info!(
                "upload session gone ({}); restarting the blob",
                resp.status()
            );
            *session = None;
        }
        // The status query failed too: try the same session again later.
        Err(_) => {}
    }
}

/// Best-effort `DELETE` of an abandoned session, so the registry can free
/// what was uploaded.
async fn cancel(client: &RegistryClient, s: &Session) {
    let req = Req::new(Method::DELETE, s.url.clone());
    let _ = client.send_once(&req).await;
}

/// Hands out byte ranges of a blob, keeping the last chunk in memory so a
/// failed request can be resent, and reopening the source for anything
/// earlier. Source errors (a corrupt or truncated blob) are fatal.
struct ChunkSource<'o, 'a> {
    opener: &'o mut Opener<'a>,
    digest: String,
    reader: Option<Box<dyn Read + 'a>>,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
}

impl<'o, 'a> ChunkSource<'o, 'a> {
    fn new(opener: &'o mut Opener<'a>, desc: &Descriptor) -> Self {
        ChunkSource {
            opener,
            digest: desc.digest().to_string(),
            reader: None,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
        }
    }

    /// Positions the stream at `offset` for [`ChunkSource::next_block`]:
    /// skips forward, or reopens the source when `offset` is behind.
    fn seek(&mut self, offset: u64) -> Result<()> {
        self.buf = Bytes::new();
        self.reposition(offset)
    }

    /// Moves the reader to `offset`: reopens the source when there is none
    /// yet or `offset` is behind it, then skips forward. `buf` is left as is.
    fn reposition(&mut self, offset: u64) -> Result<()> {
        if self.reader.is_none() || self.pos > offset {
            if self.reader.is_some() {
                tracing::debug!(
                    "blob {}: reading the source again from the start",
                    self.digest
                );
            }
            self.reader = Some((self.opener)()?);
            self.pos = 0;
        }
        let Some(reader) = self.reader.as_mut() else {
            return Err(Error::Unsupported("blob source vanished".into()));
        };
        if offset > self.pos {
            let want = offset - self.pos;
            let skipped = std::io::copy(&mut reader.by_ref().take(want), &mut std::io::sink())
                .map_err(|e| Error::from_io(format!("blob {}", self.digest), e))?;
            self.pos += skipped;
            if skipped < want {
                return Err(truncated(&self.digest, self.pos));
            }
        }
        Ok(())
    }

    /// Fills `out` from where the reader stands; a short source is an error.
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(Error::Unsupported("blob source vanished".into()));
        };
        let mut filled = 0;
        while filled < out.len() {
            let n = reader
                .read(&mut out[filled..])
                .map_err(|e| Error::from_io(format!("blob {}", self.digest), e))?;
            if n == 0 {
                return Err(truncated(&self.digest, self.pos));
            }
            filled += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    /// The next `len` bytes from where the stream stands.
    fn next_block(&mut self, len: u64) -> Result<Bytes> {
        let mut out = vec![0u8; len as usize];
        self.fill(&mut out)?;
        Ok(Bytes::from(out))
    }

    fn read(&mut self, offset: u64, len: u64) -> Result<Bytes> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        let mut out: Vec<u8> = Vec::new();
        if offset >= self.buf_start && offset < buf_end {
            let from = (offset - self.buf_start) as usize;
            if offset + len <= buf_end {
                return Ok(self.buf.slice(from..from + len as usize));
            }
            out.reserve_exact(len as usize);
            out.extend_from_slice(&self.buf[from..]);
        } else {
            out.reserve_exact(len as usize);
        }
        let start = out.len();
        self.reposition(offset + start as u64)?;
        out.resize(len as usize, 0);
        self.fill(&mut out[start..])?;
        self.buf = Bytes::from(out);
        self.buf_start = offset;
        Ok(self.buf.clone())
    }
}

fn truncated(digest: &str, at: u64) -> Error {
    Error::invalid(
        format!("blob {digest}"),
        format!("source ended after {at} bytes, before the size its descriptor declares"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use oci_spec::image::MediaType;

    #[test]
    fn ranges() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("5-9"), None);
        assert_eq!(parse_range_end("junk"), None);
        assert_eq!(parse_range_end("0-18446744073709551615"), None);
    }

    #[test]
    fn registry_min_chunk_is_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(min_chunk(&h), 0);
        h.insert(CHUNK_MIN_HEADER, "5242880".parse().unwrap());
        assert_eq!(min_chunk(&h), 5 * 1024 * 1024);
        h.insert(CHUNK_MIN_HEADER, "18446744073709551615".parse().unwrap());
        assert_eq!(min_chunk(&h), MAX_CHUNK_MIN);
    }

    #[test]
    fn chunk_source_resends_and_reopens() {
        let data: Vec<u8> = (0..100u8).collect();
        let desc = Descriptor::new(MediaType::ImageLayer, 100, sha256(&data));
        let mut opens = 0;
        let d2 = data.clone();
        let mut opener = move || -> Result<Box<dyn Read>> {
            opens += 1;
            assert!(opens <= 2, "opened too often");
            Ok(Box::new(std::io::Cursor::new(d2.clone())))
        };
        let mut src = ChunkSource::new(&mut opener, &desc);
        assert_eq!(&src.read(0, 40).unwrap()[..], &data[0..40]);
        // The same chunk again: from memory.
        assert_eq!(&src.read(0, 40).unwrap()[..], &data[0..40]);
        // Mid-chunk resume, extending past the buffer.
        assert_eq!(&src.read(30, 40).unwrap()[..], &data[30..70]);
        assert_eq!(&src.read(70, 30).unwrap()[..], &data[70..100]);
        // Restart from zero: reopens once.
        assert_eq!(&src.read(0, 10).unwrap()[..], &data[0..10]);
        // Skipping forward without reopening.
        assert_eq!(&src.read(50, 10).unwrap()[..], &data[50..60]);
        // Past the end: truncated.
        assert!(src.read(95, 10).is_err());
    }
}
