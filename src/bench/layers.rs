//! Per layer of an image: how fast it is read, decompressed and hashed
//! (digest and diff_id), and which of the three bounds it.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_spec::image::Descriptor;
use serde::Serialize;

use super::{hash, mb_s, r2, Budget};
use crate::digest::Hasher;
use crate::endpoint::ImageSource;
use crate::error::{Error, Result};
use crate::image::resolve_image;
use crate::manifest::Compression;
use crate::platform::PlatformSpec;

/// What limits a layer's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Reading the blob (disk, page cache or network).
    Io,
    /// The decompressor.
    Codec,
    /// SHA-256 (digest of the blob plus diff_id of the tar).
    Hash,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub digest: String,
    pub media_type: String,
    /// Blob size from the manifest.
    pub size: u64,
    /// Compressed bytes read in this run (less than `size` when the budget
    /// ran out).
    pub bytes_read: u64,
    /// Uncompressed bytes they gave.
    pub bytes_uncompressed: u64,
    /// The whole blob was read (and its digest verified).
    pub complete: bool,
    pub seconds: f64,
    /// Time in each stage: reading, hashing the blob (digest), decompressing,
    /// hashing the tar (diff_id).
    pub read_s: f64,
    pub digest_s: f64,
    pub decompress_s: f64,
    pub diff_id_s: f64,
    /// Uncompressed MB/s end to end (what unpacking or verifying sees).
    pub mb_s: f64,
    /// Compressed MB/s read.
    pub read_mb_s: f64,
    /// Decompressor output MB/s (its own time only).
    pub decompress_mb_s: f64,
    /// `mb_s` over one core's raw SHA-256 speed: 1.0 would mean the layer
    /// goes as fast as the diff_id hash alone can.
    pub ratio_to_hash: f64,
    pub bound: Bound,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayersReport {
    pub reference: String,
    pub platform: String,
    /// One core's raw SHA-256 speed (CPU time), the reference for ratios.
    pub hash_mb_s: f64,
    pub layers: Vec<LayerRow>,
}

/// Time spent inside a reader, and the bytes it gave.
#[derive(Default)]
struct Meter {
    nanos: AtomicU64,
    bytes: AtomicU64,
}

impl Meter {
    fn secs(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A reader that adds the time spent inside `inner.read` to a meter.
struct Timed<R> {
    inner: R,
    meter: Arc<Meter>,
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let t = Instant::now();
        let n = self.inner.read(buf)?;
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.meter.nanos.fetch_add(ns, Ordering::Relaxed);
        self.meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads, decompresses and hashes every layer of the image `src` names
/// (one platform of an index, by `arch`); `progress` hears each layer.
pub fn bench_layers(
    src: &dyn ImageSource,
    arch: Option<&PlatformSpec>,
    budget: Budget,
    progress: &mut dyn FnMut(usize, usize, &Descriptor),
) -> Result<LayersReport> {
    let img = resolve_image(src, arch)?;
    let hash_mb_s = hash::quick_per_core();
    let layers = img.layers().to_vec();
    let mut rows = Vec::new();
    for (i, desc) in layers.iter().enumerate() {
        progress(i, layers.len(), desc);
        rows.push(one_layer(src, desc, budget, hash_mb_s)?);
    }
    Ok(LayersReport {
        reference: src.name(),
        platform: img.platform_string(),
        hash_mb_s: r2(hash_mb_s),
        layers: rows,
    })
}

fn one_layer(
    src: &dyn ImageSource,
    desc: &Descriptor,
    budget: Budget,
    hash_mb_s: f64,
) -> Result<LayerRow> {
    let compression = Compression::of_media_type(desc.media_type())?;
    let raw = Arc::new(Meter::default());
    let dec = Arc::new(Meter::default());
    let started = Instant::now();
    // open_blob verifies: its reads include hashing the digest.
    let blob = Timed {
        inner: src.open_blob(desc)?,
        meter: raw.clone(),
    };
    let what = || format!("layer {}", desc.digest());
    let mut tar = Timed {
        inner: crate::layer::decompress(Box::new(blob), compression)?,
        meter: dec.clone(),
    };
    let mut diff_id = Hasher::new();
    let mut diff_time = Duration::ZERO;
    let mut buf = vec![0u8; 1 << 20];
    let mut complete = false;
    loop {
        if budget.exhausted(started, raw.bytes()) {
            break;
        }
        let n = tar.read(&mut buf).map_err(|e| Error::from_io(what(), e))?;
        if n == 0 {
            complete = true;
            break;
        }
        let t = Instant::now();
        diff_id.update(&buf[..n]);
        diff_time += t.elapsed();
    }
    std::hint::black_box(diff_id.finish());
    let seconds = started.elapsed().as_secs_f64();
    let raw_s = raw.secs();
    let read_bytes = raw.bytes();
    let out_bytes = dec.bytes();
    // The digest's share of the raw reads, from the measured hash speed.
    let digest_s = if hash_mb_s > 0.0 {
        (read_bytes as f64 / 1e6 / hash_mb_s).min(raw_s)
    } else {
        0.0
    };
    let read_s = raw_s - digest_s;
    let decompress_s = match compression {
        Compression::None => 0.0,
        _ => (dec.secs() - raw_s).max(0.0),
    };
    let diff_id_s = diff_time.as_secs_f64();
    let hash_s = digest_s + diff_id_s;
    let bound = if read_s >= decompress_s && read_s >= hash_s {
        Bound::Io
    } else if decompress_s >= hash_s {
        Bound::Codec
    } else {
        Bound::Hash
    };
    let mbs = mb_s(out_bytes, seconds);
    Ok(LayerRow {
        digest: desc.digest().to_string(),
        media_type: desc.media_type().to_string(),
        size: desc.size(),
        bytes_read: read_bytes,
        bytes_uncompressed: out_bytes,
        complete,
        seconds: r2(seconds),
        read_s: r2(read_s),
        digest_s: r2(digest_s),
        decompress_s: r2(decompress_s),
        diff_id_s: r2(diff_id_s),
        mb_s: r2(mbs),
        read_mb_s: r2(mb_s(read_bytes, read_s)),
        decompress_mb_s: r2(if decompress_s > 0.0 {
            mb_s(out_bytes, decompress_s)
        } else {
            0.0
        }),
        ratio_to_hash: if hash_mb_s > 0.0 {
            r2(mbs / hash_mb_s)
        } else {
            0.0
        },
        bound,
    })
}
