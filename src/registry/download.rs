//! Blob downloads as a synchronous `Read`: the response streams chunk by
//! chunk (never the whole blob in memory); a cut or stalled connection is
//! resumed with `Range: bytes=N-` within the retry budget. The caller wraps
//! it in a `VerifyingReader`, so what comes out is checked as it streams.

use std::io::{self, Read};

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
        }
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
        match resp.status() {
            StatusCode::OK => {
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
                    // Never hand out more than the descriptor's size.
                    let room = (size - self.offset) as usize;
                    if b.len() > room {
                        b.truncate(room);
                    }
                    if b.is_empty() && self.offset < size {
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
