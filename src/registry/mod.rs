//! Registry transport (OCI distribution API): `docker://HOST/REPO[:TAG|@DIGEST]`
//! as an [`ImageSource`] and an [`ImageSink`].
//!
//! Why not the `oci-client` crate: its API is async, and what this transport
//! guarantees on 30 GB images and flaky registries would have to be built
//! around it anyway:
//! - retries with resume: transient failures (connection errors, 408, 429,
//!   5xx, `Retry-After`) are retried with backoff and jitter within a budget
//!   (`retry`); a cut or stalled download resumes with `Range: bytes=N-`
//!   (`download`), an upload from the offset the registry reports, or
//!   restarts when the registry lost the session (`upload`);
//! - bounded memory: blobs stream through `Read`, verified as they go; an
//!   upload holds at most one chunk (to resend it), whatever the blob's size;
//! - a sync API: [`ImageSource`]/[`ImageSink`] are synchronous so the layer
//!   engine, copy and unpack are plain threads over `Read`; one
//!   process-wide tokio runtime drives the sockets underneath (`client`);
//! - the credential-origin guard: credentials go only to the registry's own
//!   origin, never to an upload location or redirect on another host; a
//!   401 challenge from another origin is not answered, and a token realm
//!   must be HTTPS (loopback aside, or `--insecure`) (`client`, `auth`).
//!
//! Besides: existing blobs are skipped (`HEAD`) and mounted from sibling
//! repositories, and 4 MiB chunks are the default because some registries
//! reject larger requests.
//!
//! One file per protocol step:
//! - `client`: scheme discovery, auth on every request, sync→async bridge;
//! - `auth`, `creds`: challenges and bearer tokens; credential files and helpers;
//! - `retry`: backoff with jitter and a bounded budget;
//! - `upload`: HEAD, mount, single-request or chunked upload with resume;
//! - `download`: streaming, resumable blob reads;
//! - `manifests`: manifest GET/PUT with digest checks;
//! - `referrers`: the referrers API and tag schema;
//! - `source`, `sink`: the transport traits; `progress`: terminal bars.
//!
//! Each call blocks its own thread (copy runs several).

mod auth;
mod client;
mod creds;
mod download;
mod hosts;
mod manifests;
mod progress;
mod referrers;
mod retry;
mod sink;
mod source;
mod tls;
mod upload;

use std::time::Duration;

pub use client::RegistryClient;
pub use creds::{auth_files, AuthFile, Credentials};
pub use hosts::is_loopback;
pub use progress::Progress;
pub use retry::RetryPolicy;
pub use sink::{MountedBlob, RegistrySink, TransferLog};
pub use source::RegistrySource;

/// Chunk size used with a registry that asks for chunks without a minimum,
/// and the size up to which a blob goes up in one `PUT`.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;

/// Default minimum download rate (bytes/s averaged over the stall
/// timeout): a 1 byte/s drip is not progress.
pub const DEFAULT_MIN_RATE: u64 = 1024;

/// How to talk to a registry.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Credentials to use instead of looking them up in the usual files.
    pub creds: Option<Credentials>,
    /// Never look credentials up (`--no-creds`): anonymous access.
    pub anonymous: bool,
    /// The one auth file to read (`--authfile`; else `$REGISTRY_AUTH_FILE`
    /// and the default files, see [`auth_files`]).
    pub authfile: Option<std::path::PathBuf>,
    /// A directory of CAs and client certificates (skopeo's `--cert-dir`);
    /// else the per-host `certs.d` directories.
    pub cert_dir: Option<std::path::PathBuf>,
    /// Allow plain HTTP and unverified TLS for hosts that are not loopback.
    pub insecure: bool,
    /// Blobs up to this size go up in one request; larger ones in chunks of
    /// this size (raised to the registry's `OCI-Chunk-Min-Length`). None:
    /// blobs over [`DEFAULT_CHUNK_SIZE`] stream in one request (what docker,
    /// containerd and skopeo do), unless the registry asks for chunks.
    pub chunk_size: Option<u64>,
    /// Blobs transferred at once.
    pub jobs: usize,
    pub retry: RetryPolicy,
    /// A connection that moves no byte for this long is given up (and the
    /// transfer retried).
    pub stall_timeout: Duration,
    /// A download averaging fewer bytes/s than this over a `stall_timeout`
    /// window is dropped and resumed (0: no minimum).
    pub min_rate: u64,
    /// Repositories of the same registry that may hold the blobs, to mount
    /// from instead of uploading.
    pub mount_from: Vec<String>,
    pub progress: Progress,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            creds: None,
            anonymous: false,
            authfile: None,
            cert_dir: None,
            insecure: false,
            chunk_size: None,
            jobs: 4,
            retry: RetryPolicy::default(),
            stall_timeout: Duration::from_secs(60),
            min_rate: DEFAULT_MIN_RATE,
            mount_from: Vec::new(),
            progress: Progress::hidden(),
        }
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("creds", &self.creds)
            .field("anonymous", &self.anonymous)
            .field("authfile", &self.authfile)
            .field("cert_dir", &self.cert_dir)
            .field("insecure", &self.insecure)
            .field("chunk_size", &self.chunk_size)
            .field("jobs", &self.jobs)
            .field("retry", &self.retry)
            .field("stall_timeout", &self.stall_timeout)
            .field("min_rate", &self.min_rate)
            .field("mount_from", &self.mount_from)
            .finish_non_exhaustive()
    }
}
