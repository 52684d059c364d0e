//! `ocipack bench`: hashing, layer reading and layer building speed on this
//! machine. Figures on stdout, progress on stderr.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ocipack::bench::{self, Budget};
use ocipack::platform::PlatformSpec;
use ocipack::reference::Reference;
use ocipack::registry::Progress;
use ocipack::transport::open_source_with;

use super::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// Limits shared by every benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Time budget of each measurement (hash: per implementation and
    /// thread count, default 2; layers: per layer, default 50; dir: per
    /// compression setting, default 3, so the 13 settings and the floor
    /// of a 1 GB tree finish within a minute).
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Stop each measurement after this many input bytes (K/M/G suffixes;
    /// dir: the tar bytes each setting compresses, default 128 MiB).
    #[arg(long, value_name = "SIZE", value_parser = super::registry_args::parse_size)]
    pub bytes: Option<u64>,
    /// Threads for "all cores" and for compression (default: all cores).
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl Limits {
    fn budget(&self, default_seconds: f64) -> Budget {
        Budget {
            seconds: self.seconds.unwrap_or(default_seconds),
            bytes: self.bytes,
        }
    }
    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// SHA-256 speed of the implementation ocipack uses, on one core and on
    /// all, and whether the CPU's SHA extensions are there.
    Hash {
        /// Also time ring's SHA-256 (the TLS stack's) the same way.
        #[arg(long)]
        compare: bool,
        #[command(flatten)]
        limits: Limits,
    },
    /// Read, decompress and hash each layer of an image (layout, archive or
    /// registry): which of I/O, codec or hash bounds it.
    Layers {
        #[arg(value_parser = super::reference_arg)]
        reference: Reference,
        /// Pick one platform of an index.
        #[arg(long, visible_alias = "platform", value_parser = super::platform_arg)]
        arch: Option<PlatformSpec>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        registry: Box<RegistryArgs>,
    },
    /// Build a layer from DIR uncompressed (the floor), then time gzip at
    /// levels 1-9 and zstd at 1, 3, 9, 19 on its tar: pick --level here.
    Dir {
        dir: PathBuf,
        #[command(flatten)]
        limits: Limits,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        What::Hash { compare, limits } => hash(compare, &limits),
        What::Layers {
            reference,
            arch,
            limits,
            registry,
        } => layers(&reference, arch.as_ref(), &limits, &registry),
        What::Dir { dir, limits } => dir_cmd(&dir, &limits),
    }
}

fn hash(compare: bool, l: &Limits) -> anyhow::Result<()> {
    let budget = l.budget(2.0);
    eprintln!("bench hash: {} s per measurement", budget.seconds);
    let r = bench::bench_hash(budget, l.threads(), compare);
    if l.json {
        return super::print_json(&r);
    }
    println!(
        "cpu        {} ({})",
        r.features.arch,
        r.features.cpu_features.join(" ")
    );
    println!(
        "sha ext    {}",
        if r.features.sha_extensions {
            "yes (used)"
        } else {
            "no"
        }
    );
    println!(
        "{:<64} {:>10} {:>10} {:>14}",
        "implementation", "1 core", "1 core cpu", "all cores"
    );
    for s in std::iter::once(&r.in_use).chain(&r.others) {
        println!(
            "{:<64} {:>7.0} MB/s {:>5.0} MB/s {:>7.0} MB/s x{}",
            s.implementation, s.per_core_mb_s, s.per_core_cpu_mb_s, s.all_cores_mb_s, s.threads
        );
    }
    Ok(())
}

fn layers(
    reference: &Reference,
    arch: Option<&PlatformSpec>,
    l: &Limits,
    registry: &RegistryArgs,
) -> anyhow::Result<()> {
    registry.prepare()?;
    let opts = registry.source_options(&Progress::hidden())?;
    let src = open_source_with(reference, &opts).with_context(|| format!("opening {reference}"))?;
    let r = bench::bench_layers(src.as_ref(), arch, l.budget(50.0), &mut |i, n, d| {
        eprintln!("layer {}/{n}: {} ({} bytes)", i + 1, d.digest(), d.size())
    })?;
    if l.json {
        return super::print_json(&r);
    }
    println!("{} ({})", r.reference, r.platform);
    println!("raw sha256: {:.0} MB/s on one core", r.hash_mb_s);
    println!(
        "{:<19} {:>10} {:>10} {:>9} {:>11} {:>11} {:>8} {:>6}",
        "layer", "size", "tar", "MB/s", "read MB/s", "codec MB/s", "/hash", "bound"
    );
    for row in &r.layers {
        println!(
            "{:<19} {:>10} {:>10} {:>9.0} {:>11.0} {:>11.0} {:>7.2}x {:>6}{}",
            &row.digest[..row.digest.len().min(19)],
            row.size,
            row.bytes_uncompressed,
            row.mb_s,
            row.read_mb_s,
            row.decompress_mb_s,
            row.ratio_to_hash,
            format!("{:?}", row.bound).to_lowercase(),
            if row.complete { "" } else { " (partial)" }
        );
    }
    Ok(())
}

fn dir_cmd(dir: &std::path::Path, l: &Limits) -> anyhow::Result<()> {
    let r = bench::bench_dir(dir, l.threads(), l.budget(3.0), &mut |s| {
        eprintln!("bench dir: {s}")
    })
    .with_context(|| format!("benchmarking a layer from {}", dir.display()))?;
    if l.json {
        return super::print_json(&r);
    }
    println!(
        "{}: {} entries, {} byte tar, {} threads",
        r.dir, r.entries, r.tar_bytes, r.threads
    );
    println!(
        "{:<10} {:>9} {:>9} {:>13} {:>7} {:>9}",
        "setting", "seconds", "MB/s", "size", "ratio", "/floor"
    );
    for row in &r.rows {
        let name = match row.level {
            Some(l) => format!("{} {l}", row.compression),
            None => row.compression.to_string(),
        };
        println!(
            "{:<10} {:>9.2} {:>9.0} {:>13} {:>7.3} {:>8.2}x",
            name, row.seconds, row.mb_s, row.size, row.size_ratio, row.ratio_to_floor
        );
    }
    Ok(())
}
