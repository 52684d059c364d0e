//! Registry transport (OCI distribution API): `docker://HOST/REPO[:TAG|@DIGEST]`
//! as an [`ImageSource`] and an [`ImageSink`].
//!
//! Why not the `oci-client` crate: it holds whole layers in memory
//! (`Vec<u8>` blobs), has no existing-blob check before pushing, no retries,
//! no resumable downloads and no progress; those are exactly the failures
//! this transport exists to avoid on 30 GB images and flaky registries. Its
//! good idea, 4 MiB chunks because some registries reject larger requests,
//! is the default here.
//!
//! One file per protocol step:
//! - `client`: scheme discovery, auth on every request, sync→async bridge;
//! - `auth`, `creds`: challenges and bearer tokens; credential files and helpers;
//! - `retry`: backoff with jitter and a bounded budget;
//! - `upload`: HEAD, mount, single-request or chunked upload with resume;
//! - `download`: streaming, resumable blob reads;
//! - `manifests`: manifest GET/PUT with digest checks;
//! - `source`, `sink`: the transport traits; `progress`: terminal bars.
//!
//! The traits are synchronous; a small process-wide tokio runtime drives the
//! sockets, and each call blocks its own thread (copy runs several).

mod auth;
mod client;
mod creds;
mod download;
mod manifests;
mod progress;
mod retry;
mod sink;
mod source;
mod tls;
mod upload;

use std::time::Duration;

pub use client::{is_loopback, RegistryClient};
pub use creds::{auth_files, AuthFile, Credentials};
pub use progress::Progress;
pub use retry::RetryPolicy;
pub use sink::{MountedBlob, RegistrySink, TransferLog};
pub use source::RegistrySource;

use crate::error::Result;
use crate::reference::RegistryRef;
use crate::transport::{ImageSink, ImageSource};

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

/// Opens a registry reference for reading, with default options.
pub fn open_source(r: &RegistryRef) -> Result<Box<dyn ImageSource>> {
    Ok(Box::new(RegistrySource::open(
        r,
        &RegistryOptions::default(),
    )?))
}

/// Opens a registry reference for writing, with default options.
pub fn open_sink(r: &RegistryRef) -> Result<Box<dyn ImageSink>> {
    Ok(Box::new(RegistrySink::open(
        r,
        &RegistryOptions::default(),
    )?))
}
