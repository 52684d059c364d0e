//! Micro-benchmarks of the layer engine's hot loops: hashing, deflate and
//! zstd throughput, the parallel gzip writer, canonical tar headers.
//!
//! `cargo bench --bench layer` (figures in BENCHMARKS.md). The input is a
//! mix of real system files (binaries, text) read from /usr, so ratios and
//! speeds resemble a real layer; 16 MiB keeps a run short.

use std::io::Write;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocipack::layer::canon::{encode_header, OutEntry};
use ocipack::layer::gzip::{ParallelGzip, DEFAULT_LEVEL};
use sha2::{Digest, Sha256};

const SIZE: usize = 16 << 20;

/// 16 MiB of real files from /usr (falls back to synthetic text).
fn sample() -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    for dir in ["/usr/bin", "/usr/share/doc", "/usr/lib/x86_64-linux-gnu"] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            if out.len() >= SIZE {
                return out;
            }
            if let Ok(b) = std::fs::read(&p) {
                let take = b.len().min(SIZE - out.len()).min(2 << 20);
                out.extend_from_slice(&b[..take]);
            }
        }
    }
    while out.len() < SIZE {
        out.extend_from_slice(b"some synthetic filler text for the benchmark; ");
    }
    out.truncate(SIZE);
    out
}

fn hashing(c: &mut Criterion) {
    let data = sample();
    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("16MiB", |b| b.iter(|| Sha256::digest(&data)));
    g.finish();
}

fn compression(c: &mut Criterion) {
    let data = sample();
    let mut g = c.benchmark_group("compress");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for level in [1, 2, 4, 6] {
        g.bench_with_input(
            BenchmarkId::new("libdeflate-1MiB-blocks", level),
            &level,
            |b, &l| {
                b.iter(|| {
                    let mut c =
                        libdeflater::Compressor::new(libdeflater::CompressionLvl::new(l).unwrap());
                    let mut out = vec![0u8; c.gzip_compress_bound(1 << 20)];
                    let mut n = 0;
                    for chunk in data.chunks(1 << 20) {
                        n += c.gzip_compress(chunk, &mut out).unwrap();
                    }
                    n
                })
            },
        );
    }
    for level in [1, 6] {
        g.bench_with_input(BenchmarkId::new("zlib-rs-gzip", level), &level, |b, &l| {
            b.iter(|| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(l));
                e.write_all(&data).unwrap();
                e.finish().unwrap().len()
            })
        });
    }
    for threads in [1usize, 2] {
        g.bench_with_input(
            BenchmarkId::new("ocipack-gzip-threads", threads),
            &threads,
            |b, &t| {
                b.iter(|| {
                    let mut w = ParallelGzip::new(Vec::new(), DEFAULT_LEVEL, t).unwrap();
                    w.write_all(&data).unwrap();
                    w.finish().unwrap().len()
                })
            },
        );
    }
    for threads in [1u32, 2] {
        g.bench_with_input(
            BenchmarkId::new("zstd3-workers", threads),
            &threads,
            |b, &t| {
                b.iter(|| {
                    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                    z.multithread(t).unwrap();
                    z.write_all(&data).unwrap();
                    z.finish().unwrap().len()
                })
            },
        );
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let entries: Vec<OutEntry> = (0..10_000)
        .map(|i| {
            let mut e = OutEntry::parent_dir(
                format!("usr/share/doc/pkg{i}/changelog.Debian.gz").into(),
                None,
            );
            e.kind = ocipack::layer::FileKind::File;
            e.size = 1234;
            e
        })
        .collect();
    let mut g = c.benchmark_group("tar");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.sample_size(10);
    g.bench_function("encode-10k-headers", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(entries.len() * 512);
            for e in &entries {
                encode_header(e, &mut out);
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, hashing, compression, headers);
criterion_main!(benches);
