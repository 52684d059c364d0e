//! Typed errors for the library. Every variant names what failed (a path,
//! a digest, a reference) so that a pipeline log is enough to act on it.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("blob {expected}: content has digest {actual} (corrupt or tampered blob{})", location_suffix(.location))]
    DigestMismatch {
        expected: String,
        actual: String,
        location: Option<PathBuf>,
    },

    #[error("blob {digest}: expected {expected} bytes, found {actual}{}{}", if *.actual < *.expected { " (truncated)" } else { "" }, location_suffix(.location))]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
        location: Option<PathBuf>,
    },

    /// A layer's uncompressed content is not what the config's
    /// `rootfs.diff_ids` says it is.
    #[error("layer {layer} of {input}: uncompressed content has digest {actual}, but the config's rootfs.diff_ids says {expected}")]
    DiffIdMismatch {
        layer: String,
        input: String,
        expected: String,
        actual: String,
    },

    #[error("{what}: malformed JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },

    #[error("{what}: invalid content: {reason}")]
    Invalid { what: String, reason: String },

    #[error("invalid reference {input:?}: {reason}")]
    Reference { input: String, reason: String },

    #[error("{what} not found in {location}")]
    NotFound { what: String, location: String },

    #[error("{reference}: no image for platform {wanted}; available: {available}")]
    PlatformNotFound {
        reference: String,
        wanted: String,
        available: String,
    },

    #[error(
        "unknown architecture {0:?} (expected amd64, arm64 or riscv64; aliases x86_64, aarch64)"
    )]
    UnknownArch(String),

    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    UnsafePath {
        layer: String,
        entry: String,
        reason: String,
    },

    #[error("{0}")]
    Unsupported(String),

    /// A failure reading one of a step's images (`base ...`, `input NAME
    /// (...)`): a layer digest alone does not say which image to fix.
    #[error("{input}: {error}")]
    InInput { input: String, error: Box<Error> },

    /// What a pipeline was doing when it failed (`package for arm64`,
    /// `publishing REF`); the cause stays reachable, so a failed guard or
    /// gate is still a failed check.
    #[error("{what}: {error}")]
    During {
        what: String,
        #[source]
        error: Box<Error>,
    },

    /// A publishing gate (completeness, coherence, freshness) refused.
    #[error("{gate} gate failed: {reason}")]
    Gate { gate: String, reason: String },

    /// A recipe problem, located in its file.
    #[error("{}:{line}:{column}: {message}", .file.display())]
    Recipe {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// One or more guards failed; the report lists every offender.
    #[error("guard failed: {0}")]
    Guard(String),

    /// A registry refused a request, or answered something unusable.
    #[error("{registry}: {what}: {reason}")]
    Registry {
        registry: String,
        what: String,
        reason: String,
    },

    /// Authentication with a registry (or its token service) failed.
    #[error("{registry}: authentication failed: {reason}")]
    Auth { registry: String, reason: String },

    /// A transient failure (connection error, 408, 429, 5xx) kept recurring.
    #[error("{registry}: {what}: gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        registry: String,
        what: String,
        attempts: u32,
        last: String,
    },
}

fn location_suffix(location: &Option<PathBuf>) -> String {
    match location {
        Some(p) => format!(" at {}", p.display()),
        None => String::new(),
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(what: impl Into<String>, location: impl Into<String>) -> Self {
        Error::NotFound {
            what: what.into(),
            location: location.into(),
        }
    }

    /// Recovers a typed error that travelled through an `io::Error`
    /// (verification failures surface from `Read` implementations).
    pub fn from_io(path: impl Into<PathBuf>, err: io::Error) -> Self {
        let path = path.into();
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = err.into_inner() {
                if let Ok(e) = inner.downcast::<Error>() {
                    return e.with_location(path);
                }
            }
            return Error::io(path, io::Error::other("verification failed"));
        }
        Error::io(path, err)
    }

    fn with_location(self, path: PathBuf) -> Self {
        match self {
            Error::DigestMismatch {
                expected,
                actual,
                location: None,
            } => Error::DigestMismatch {
                expected,
                actual,
                location: Some(path),
            },
            Error::SizeMismatch {
                digest,
                expected,
                actual,
                location: None,
            } => Error::SizeMismatch {
                digest,
                expected,
                actual,
                location: Some(path),
            },
            other => other,
        }
    }

    /// Names the image (`base REF`, `input NAME (REF)`) an error came from.
    pub fn in_input(self, input: impl Into<String>) -> Self {
        Error::InInput {
            input: input.into(),
            error: Box::new(self),
        }
    }

    /// Says what a pipeline was doing (`package for arm64`).
    pub fn during(self, what: impl Into<String>) -> Self {
        Error::During {
            what: what.into(),
            error: Box::new(self),
        }
    }

    /// Converts into an `io::Error` that keeps this error retrievable by
    /// [`Error::from_io`].
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => io::ErrorKind::InvalidData,
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}
