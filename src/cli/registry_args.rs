//! Registry flags, one set for every command that reads or writes an
//! image, and the opening of sources and sinks with them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ocipack::reference::Reference;
use ocipack::registry::{
    Credentials, Progress, RegistryOptions, RegistrySink, RetryPolicy, TransferLog,
};
use ocipack::transport::{open_sink_with, open_source_with, ImageSink, ImageSource};

/// A registry destination's record of what it did.
pub type SharedLog = Arc<Mutex<TransferLog>>;

#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Registry credentials for source and destination (else the auth
    /// files and credential helpers are used). With USER alone the password
    /// comes from --password-stdin, $OCIPACK_PASSWORD or a terminal prompt,
    /// which keeps it out of argv.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// Credentials for the source registry only.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub src_creds: Option<String>,
    /// Credentials for the destination registry only.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub dest_creds: Option<String>,
    /// The user name (as --creds USER); its password as for --creds USER.
    #[arg(long, env = "OCIPACK_USERNAME", value_name = "USER")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin (docker/oras login).
    #[arg(long)]
    pub password_stdin: bool,
    /// Anonymous access: no credentials are looked up or sent.
    #[arg(long, conflicts_with_all = ["creds", "password_stdin"])]
    pub no_creds: bool,
    /// Anonymous access to the source registry.
    #[arg(long, conflicts_with = "src_creds")]
    pub src_no_creds: bool,
    /// Anonymous access to the destination registry.
    #[arg(long, conflicts_with = "dest_creds")]
    pub dest_no_creds: bool,
    /// The one auth file to read (containers' auth.json format); default:
    /// $REGISTRY_AUTH_FILE, else the containers and Docker files (README).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<std::path::PathBuf>,
    /// CAs (*.crt) and a client certificate (NAME.cert + NAME.key) for the
    /// registries, added to the system trust store (skopeo's layout).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<std::path::PathBuf>,
    /// As --cert-dir, for the source registry only.
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<std::path::PathBuf>,
    /// As --cert-dir, for the destination registry only.
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<std::path::PathBuf>,
    /// Allow plain HTTP and unverified TLS for registries that are not on
    /// loopback (loopback registries may always use plain HTTP).
    #[arg(long)]
    pub insecure: bool,
    /// Upload in chunks of this size (K/M/G, KiB/MiB/GiB suffixes), for
    /// registries that cap the size of a request. Default: each blob over
    /// 4 MiB streams in one request.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Blobs transferred at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4)]
    pub jobs: usize,
    /// Retries of a request that failed transiently (connection errors,
    /// 408, 429, 5xx) before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// First retry delay in milliseconds; doubles each time, with jitter.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub retry_delay_ms: u64,
    /// Seconds without progress after which a connection is dropped and
    /// the transfer retried.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Minimum download rate in bytes/s, averaged over `--timeout`
    /// seconds: a slower connection (a drip) is dropped and the transfer
    /// resumed, within `--retries`. 0 disables.
    #[arg(long, value_name = "BYTES", default_value_t = ocipack::registry::DEFAULT_MIN_RATE)]
    pub min_rate: u64,
    /// Another repository of the destination registry that may hold the
    /// blobs: they are mounted from it instead of uploaded (repeatable).
    #[arg(long, value_name = "REPO")]
    pub mount_from: Vec<String>,
}

/// Terminal progress for a push that is cleared on every return path
/// (errors included), so no spinner is left on the screen.
pub struct ProgressScope(pub Progress);

impl ProgressScope {
    /// Bars on a terminal unless `quiet` (`--json`, `--dry-run`).
    pub fn new(verb: &'static str, quiet: bool) -> ProgressScope {
        ProgressScope(if quiet {
            Progress::hidden()
        } else {
            Progress::stderr(verb)
        })
    }
}

impl Drop for ProgressScope {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Parses `4MiB`, `512K`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?} (use K, M or G)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))?;
    if v == 0 {
        return Err("size must be positive".into());
    }
    Ok(v)
}

impl RegistryArgs {
    /// Credentials given on the command line or in the environment for one
    /// side (`side_creds` is `--src-creds`/`--dest-creds`).
    fn explicit_creds(&self, side_creds: Option<&str>) -> anyhow::Result<Option<Credentials>> {
        let Some(given) = side_creds
            .or(self.creds.as_deref())
            .or(self.username.as_deref())
        else {
            let any_user = self.src_creds.is_some() || self.dest_creds.is_some();
            if self.password_stdin && !any_user {
                anyhow::bail!("--password-stdin needs --username USER or --creds USER");
            }
            return Ok(None);
        };
        match given.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Some(Credentials::new(u, p))),
            Some(_) => anyhow::bail!("--creds {given:?}: the user name is empty"),
            None if given.is_empty() => anyhow::bail!("--creds: the user name is empty"),
            None => {
                let pass = super::password::password(given, self.password_stdin)?;
                Ok(Some(Credentials::new(given, pass)))
            }
        }
    }

    /// Reads a password that must come from stdin or the terminal now,
    /// before any progress bar is drawn over the prompt.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if !self.no_creds {
            if !self.src_no_creds {
                self.explicit_creds(self.src_creds.as_deref())?;
            }
            if !self.dest_no_creds {
                self.explicit_creds(self.dest_creds.as_deref())?;
            }
        }
        Ok(())
    }

    fn options(
        &self,
        creds: Option<&str>,
        anonymous: bool,
        cert_dir: Option<&std::path::Path>,
        progress: &Progress,
    ) -> anyhow::Result<RegistryOptions> {
        let anonymous = anonymous || self.no_creds;
        let creds = if anonymous {
            None
        } else {
            self.explicit_creds(creds)?
        };
        Ok(RegistryOptions {
            creds,
            anonymous,
            authfile: self.authfile.clone(),
            cert_dir: cert_dir.or(self.cert_dir.as_deref()).map(Into::into),
            insecure: self.insecure,
            chunk_size: self.chunk_size,
            jobs: self.jobs.max(1),
            retry: RetryPolicy {
                max_attempts: self.retries.saturating_add(1),
                base_delay: Duration::from_millis(self.retry_delay_ms),
                ..RetryPolicy::default()
            },
            stall_timeout: Duration::from_secs(self.timeout.max(1)),
            min_rate: self.min_rate,
            mount_from: self.mount_from.clone(),
            progress: progress.clone(),
        })
    }

    /// Options for reading sources (`--src-creds`, else `--creds`).
    pub fn source_options(&self, progress: &Progress) -> anyhow::Result<RegistryOptions> {
        self.options(
            self.src_creds.as_deref(),
            self.src_no_creds,
            self.src_cert_dir.as_deref(),
            progress,
        )
    }

    /// Options for the destination (`--dest-creds`, else `--creds`).
    pub fn dest_options(&self, progress: &Progress) -> anyhow::Result<RegistryOptions> {
        self.options(
            self.dest_creds.as_deref(),
            self.dest_no_creds,
            self.dest_cert_dir.as_deref(),
            progress,
        )
    }

    /// Opens a source; registries get the source options.
    pub fn open_source(
        &self,
        r: &Reference,
        progress: &Progress,
    ) -> anyhow::Result<Box<dyn ImageSource>> {
        let opts = self.source_options(progress)?;
        open_source_with(r, &opts).with_context(|| format!("opening {r}"))
    }

    /// Opens a source quietly (no progress bars), for commands that read
    /// metadata or print their own summary.
    pub fn open_source_quiet(&self, r: &Reference) -> anyhow::Result<Box<dyn ImageSource>> {
        self.open_source(r, &Progress::hidden())
    }

    /// Opens the destination; for a registry also returns its transfer log.
    /// When the source is another repository of the same registry, blobs
    /// are mounted from it.
    pub fn open_sink(
        &self,
        dst: &Reference,
        src: &Reference,
        progress: &Progress,
    ) -> anyhow::Result<(Box<dyn ImageSink>, Option<SharedLog>)> {
        match dst {
            Reference::Registry(reg) => {
                let mut opts = self.options(
                    self.dest_creds.as_deref(),
                    self.dest_no_creds,
                    self.dest_cert_dir.as_deref(),
                    progress,
                )?;
                if let Reference::Registry(s) = src {
                    if s.host == reg.host && s.repository != reg.repository {
                        opts.mount_from.insert(0, s.repository.clone());
                    }
                }
                let sink =
                    RegistrySink::open(reg, &opts).with_context(|| format!("opening {dst}"))?;
                let log = sink.log();
                Ok((Box::new(sink), Some(log)))
            }
            other => {
                let opts = self.dest_options(progress)?;
                let sink =
                    open_sink_with(other, &opts).with_context(|| format!("opening {other}"))?;
                Ok((sink, None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4 parsecs").is_err());
    }
}
