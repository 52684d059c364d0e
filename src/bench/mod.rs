//! `ocipack bench`: how fast this machine hashes, reads and decompresses an
//! image's layers, and builds a layer from a directory at each compression
//! setting, like `openssl speed` or `zstd -b`. Figures only: nothing is
//! written into any layout (`dir` builds into a temporary one, removed).
//!
//! Every figure carries wall-clock time; hashing also carries thread CPU
//! time, which a busy machine does not inflate.

mod dir;
mod hash;
mod layers;

pub use dir::{bench_dir, DirReport, DirRow};
pub use hash::{bench_hash, hash_features, HashFeatures, HashReport, HashSpeed};
pub use layers::{bench_layers, Bound, LayerRow, LayersReport};

use std::time::{Duration, Instant};

/// How much work one measurement may do: whichever limit comes first.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub seconds: f64,
    pub bytes: Option<u64>,
}

impl Budget {
    fn exhausted(&self, started: Instant, bytes: u64) -> bool {
        started.elapsed() >= Duration::from_secs_f64(self.seconds)
            || self.bytes.is_some_and(|b| bytes >= b)
    }
}

/// Decimal megabytes per second (what `zstd -b` and `openssl speed`
/// print); 0 when nothing was timed.
pub fn mb_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Rounds to 2 decimals for reports (JSON stays readable).
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
