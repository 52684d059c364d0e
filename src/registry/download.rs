//! Blob downloads as a synchronous `Read`: the response streams chunk by
//! chunk (never the whole blob in memory); a cut or stalled connection is
//! resumed with `Range: bytes=N-` within the retry budget. The caller wraps
//! it in a `VerifyingReader`, so what comes out is checked as it streams.

use std::io::{self, Read};
use std::time::Instant;

use bytes::{Buf, Bytes};
use oci_spec::image::Descriptor;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::client::{block_on, RegistryClient, Req};
use super::progress::{BlobBar, Progress};
use super::retry::{classify, Backoff, Failure};
use crate::error::{Error, Result};

/// A blob being downloaded. Nothing is requested until the first read, so
/// a reader that is never read (the sink mounted the blob) costs nothing.
pub(crate) struct BlobDownload {
    client: RegistryClient,
    repo: String,
    desc: Descriptor,
    resp: Option<Response>,
    buf: Bytes,
    /// Bytes of the blob received so far (including `buf`).
    offset: u64,
    /// Bytes to drop from the next response (a server that ignored Range).
    skip: u64,
    backoff: Backoff,
    bar: Option<BlobBar>,
    progress: Progress,
    /// Start and bytes of the current rate window (see `check_rate`).
    window: Option<(Instant, u64)>,
    /// Connections dropped for being too slow; progress does not reset
    /// this count (a drip always makes some).
    slow: u32,
}

impl BlobDownload {
    pub(crate) fn new(
        client: &RegistryClient,
        repo: &str,
        desc: &Descriptor,
        progress: &Progress,
    ) -> BlobDownload {
        BlobDownload {
            client: client.clone(),
            repo: repo.to_string(),
            desc: desc.clone(),
            resp: None,
            buf: Bytes::new(),
            offset: 0,
            skip: 0,
            backoff: client.backoff(format!("pulling blob {} from {repo}", desc.digest())),
            bar: None,
            progress: progress.clone(),
            window: None,
            slow: 0,
        }
    }

    /// A blob the server sends longer than its descriptor is an error, as
    /// from a layout (never silently truncated).
    fn too_long(&self, at_least: u64) -> Error {
        Error::SizeMismatch {
            digest: self.desc.digest().to_string(),
            expected: self.desc.size(),
            actual: at_least,
            location: None,
        }
    }

    /// `--timeout` alone never trips on a drip (a byte a second is
    /// progress): a connection averaging less than `min_rate` bytes/s over
    /// a `--timeout` window is dropped and the transfer resumed, within the
    /// retry budget.
    fn check_rate(&mut self, got: u64) -> std::result::Result<(), Failure> {
        let opts = self.client.options();
        let (min_rate, window) = (opts.min_rate, opts.stall_timeout);
        if min_rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let (start, bytes) = self.window.get_or_insert((now, 0));
        *bytes += got;
        let elapsed = now.duration_since(*start);
        if elapsed < window {
            return Ok(());
        }
        let rate = *bytes as f64 / elapsed.as_secs_f64();
        self.window = Some((now, 0));
        if rate >= min_rate as f64 {
            return Ok(());
        }
        Err(Failure::transient(format!(
            "transfer of blob {} below the minimum rate: {rate:.0} bytes/s over {}s (--min-rate {min_rate} bytes/s)",
            self.desc.digest(),
            elapsed.as_secs()
        )))
    }

    async fn open(&mut self) -> std::result::Result<Response, Failure> {
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/{}", self.repo, self.desc.digest()))
            .await?;
        let mut req = Req::new(Method::GET, url);
        if self.offset > 0 {
            req = req.header(RANGE, &format!("bytes={}-", self.offset));
        }
        let resp = self.client.send_once(&req).await?;
        self.window = None;
        match resp.status() {
            StatusCode::OK => {
                if let Some(len) = resp.content_length().filter(|l| *l > self.desc.size()) {
                    return Err(Failure::Fatal(self.too_long(len)));
                }
                // A full answer to a range request: drop what we have.
                self.skip = self.offset;
                Ok(resp)
            }
            StatusCode::PARTIAL_CONTENT => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(self.offset) {
                    return Err(Failure::transient(format!(
                        "asked for bytes from {}, got Content-Range starting at {start:?}",
                        self.offset
                    )));
                }
                self.skip = 0;
                let left = self.desc.size() - self.offset;
                if let Some(len) = resp.content_length().filter(|l| *l > left) {
                    return Err(Failure::Fatal(self.too_long(self.offset + len)));
                }
                Ok(resp)
            }
            StatusCode::NOT_FOUND => Err(Failure::Fatal(Error::not_found(
                format!("blob {}", self.desc.digest()),
                format!("{}/{}", self.client.registry(), self.repo),
            ))),
            _ => Err(Failure::Fatal(
                self.client
                    .unexpected(&format!("pulling blob {}", self.desc.digest()), resp)
                    .await,
            )),
        }
    }

    /// Gets the next piece of the blob into `buf`.
    async fn fill(&mut self) -> Result<()> {
        let size = self.desc.size();
        loop {
            if self.resp.is_none() {
                match self.open().await {
                    Ok(r) => self.resp = Some(r),
                    Err(f) => {
                        self.backoff.fail(f).await?;
                        continue;
                    }
                }
            }
            let Some(resp) = self.resp.as_mut() else {
                continue;
            };
            match resp.chunk().await {
                Ok(Some(mut b)) => {
                    if self.skip > 0 {
                        let drop = self.skip.min(b.len() as u64) as usize;
                        b.advance(drop);
                        self.skip -= drop as u64;
                    }
                    // Never more than the descriptor's size.
                    if b.len() as u64 > size - self.offset {
                        return Err(self.too_long(self.offset + b.len() as u64));
                    }
                    if b.is_empty() && self.offset < size {
                        continue;
                    }
                    if let Err(f) = self.check_rate(b.len() as u64) {
                        self.resp = None;
                        self.slow += 1;
                        let max = self.client.options().retry.max_attempts.max(1);
                        if self.slow >= max {
                            if let Failure::Transient { reason, .. } = f {
                                return Err(Error::RetriesExhausted {
                                    registry: self.client.registry().to_string(),
                                    what: format!("pulling blob {}", self.desc.digest()),
                                    attempts: self.slow,
                                    last: reason,
                                });
                            }
                        }
                        self.backoff.fail(f).await?;
                        continue;
                    }
                    self.offset += b.len() as u64;
                    self.buf = b;
                    self.backoff.progressed();
                    if let Some(bar) = &self.bar {
                        bar.set(self.offset);
                    }
                    return Ok(());
                }
                Ok(None) => {
                    self.resp = None;
                    if self.offset >= size {
                        return Ok(());
                    }
                    let f = Failure::transient(format!(
                        "connection closed at byte {} of {size}",
                        self.offset
                    ));
                    self.backoff.fail(f).await?;
                }
                Err(e) => {
                    self.resp = None;
                    self.backoff.fail(classify(&e)).await?;
                }
            }
        }
    }
}

impl BlobDownload {
    /// At the descriptor's size the answer must be over: more bytes mean
    /// the blob is not the one described.
    fn check_end(&mut self) -> Result<()> {
        let Some(mut resp) = self.resp.take() else {
            return Ok(());
        };
        let size = self.desc.size();
        loop {
            match block_on(resp.chunk())? {
                Ok(Some(b)) if b.is_empty() => continue,
                Ok(Some(b)) => return Err(self.too_long(size + b.len() as u64)),
                // The blob is complete; a connection error after it is moot.
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }
}

impl Read for BlobDownload {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.buf.is_empty() {
                let n = out.len().min(self.buf.len());
                out[..n].copy_from_slice(&self.buf[..n]);
                self.buf.advance(n);
                return Ok(n);
            }
            if self.offset >= self.desc.size() || out.is_empty() {
                if !out.is_empty() {
                    self.check_end().map_err(Error::into_io)?;
                }
                if self.bar.take().is_some() {
                    self.progress.transferred();
                }
                return Ok(0);
            }
            if self.bar.is_none() {
                self.bar = Some(self.progress.blob(&self.desc));
            }
            block_on(self.fill())
                .and_then(|r| r)
                .map_err(Error::into_io)?;
        }
    }
}
