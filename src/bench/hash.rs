//! SHA-256 throughput of the implementation ocipack uses, on one core and
//! on all of them, and which CPU extensions it can use.

use std::time::Instant;

use serde::Serialize;

use super::{mb_s, r2, thread_cpu, Budget};
use crate::digest::Hasher;

/// What the CPU offers SHA-256.
#[derive(Debug, Clone, Serialize)]
pub struct HashFeatures {
    pub arch: &'static str,
    /// SHA extensions present (x86 SHA-NI, ARMv8 SHA2); the implementation
    /// in use picks them at run time when present.
    pub sha_extensions: bool,
    /// The other features that matter to hashing and codecs.
    pub cpu_features: Vec<&'static str>,
}

/// Detects the CPU features SHA-256 implementations use.
pub fn hash_features() -> HashFeatures {
    #[allow(unused_mut)]
    let mut cpu_features = Vec::new();
    #[allow(unused_mut, unused_assignments)]
    let mut sha = false;
    #[cfg(target_arch = "x86_64")]
    {
        sha = std::arch::is_x86_feature_detected!("sha");
        for (name, on) in [
            ("sha", sha),
            ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
            ("ssse3", std::arch::is_x86_feature_detected!("ssse3")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
        ] {
            if on {
                cpu_features.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        sha = std::arch::is_aarch64_feature_detected!("sha2");
        for (name, on) in [
            ("sha2", sha),
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("sha3", std::arch::is_aarch64_feature_detected!("sha3")),
        ] {
            if on {
                cpu_features.push(name);
            }
        }
    }
    HashFeatures {
        arch: std::env::consts::ARCH,
        sha_extensions: sha,
        cpu_features,
    }
}

/// One implementation's throughput.
#[derive(Debug, Clone, Serialize)]
pub struct HashSpeed {
    pub implementation: &'static str,
    /// One thread, wall clock.
    pub per_core_mb_s: f64,
    /// One thread, by its CPU time (what a busy machine does not inflate).
    pub per_core_cpu_mb_s: f64,
    /// `threads` threads at once, each hashing its own stream, wall clock.
    pub all_cores_mb_s: f64,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HashReport {
    #[serde(flatten)]
    pub features: HashFeatures,
    /// The implementation on every hot path.
    pub in_use: HashSpeed,
    /// Other maintained implementations measured the same way (`--compare`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<HashSpeed>,
    /// Bytes hashed per thread per measurement (at most).
    pub block_bytes: usize,
}

const BLOCK: usize = 1 << 20;

/// The implementations `bench hash` can time.
#[derive(Debug, Clone, Copy)]
enum Imp {
    InUse,
    Ring,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::InUse => crate::digest::IMPLEMENTATION,
            Imp::Ring => "ring 0.17 (BoringSSL assembly)",
        }
    }
}

/// Hashes 1 MiB blocks until the budget is spent: (bytes, wall s, cpu s).
fn run(imp: Imp, budget: Budget) -> (u64, f64, f64) {
    let block = vec![0x5au8; BLOCK];
    let started = Instant::now();
    let cpu0 = thread_cpu();
    let mut bytes = 0u64;
    match imp {
        Imp::InUse => {
            let mut h = Hasher::new();
            while bytes == 0 || !budget.exhausted(started, bytes) {
                h.update(&block);
                bytes += BLOCK as u64;
            }
            std::hint::black_box(h.finish());
        }
        Imp::Ring => {
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            while bytes == 0 || !budget.exhausted(started, bytes) {
                h.update(&block);
                bytes += BLOCK as u64;
            }
            std::hint::black_box(h.finish());
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (thread_cpu() - cpu0).as_secs_f64();
    (bytes, wall, cpu)
}

fn speed(imp: Imp, budget: Budget, threads: usize) -> HashSpeed {
    let (bytes, wall, cpu) = run(imp, budget);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || run(imp, budget).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let all_wall = started.elapsed().as_secs_f64();
    HashSpeed {
        implementation: imp.name(),
        per_core_mb_s: r2(mb_s(bytes, wall)),
        per_core_cpu_mb_s: r2(mb_s(bytes, cpu)),
        all_cores_mb_s: r2(mb_s(total, all_wall)),
        threads,
    }
}

/// Measures SHA-256 on one thread and on `threads`; with `compare`, also
/// the other maintained implementation already in the dependency tree.
pub fn bench_hash(budget: Budget, threads: usize, compare: bool) -> HashReport {
    let threads = threads.max(1);
    let in_use = speed(Imp::InUse, budget, threads);
    let others = if compare {
        vec![speed(Imp::Ring, budget, threads)]
    } else {
        Vec::new()
    };
    HashReport {
        features: hash_features(),
        in_use,
        others,
        block_bytes: BLOCK,
    }
}

/// The raw hash speed one core reaches, quickly (for ratios in the other
/// benchmarks): CPU-time based, so a busy machine does not skew it.
pub(crate) fn quick_per_core() -> f64 {
    let (bytes, _, cpu) = run(
        Imp::InUse,
        Budget {
            seconds: 0.3,
            bytes: Some(256 << 20),
        },
    );
    mb_s(bytes, cpu)
}
