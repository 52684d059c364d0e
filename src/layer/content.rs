//! Streaming the selected file contents out of source layers, in the
//! canonical order the new layer needs them.
//!
//! One reader thread per source layer decompresses it front to back and
//! sends only the entries the new layer uses, in the layer's own order,
//! through a bounded channel. The writer asks for contents in canonical
//! (path) order. Layers written in path order (umoci, BuildKit, GNU tar
//! `--sort=name`, ocipack) therefore stream straight through: a k-way merge
//! with no copy. When a layer delivers an entry before it is wanted (a
//! relocated tree, an unsorted tar) or an entry is wanted twice, it is
//! spilled to an unnamed temp file in the output layout and read back from
//! there.
//!
//! Memory bound: per source layer, `QUEUE` chunks of `CHUNK` bytes plus the
//! decoder state (32 KiB window for gzip, the frame window for zstd, 1 MiB
//! of read buffer), i.e. about 5 MiB per layer in use; out-of-order data
//! goes to disk, never to memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use oci_spec::image::Descriptor;

use super::canon::{Body, OutEntry};
use super::entry::ContentRef;
use super::merged::LayerInfo;
use super::scan::{walk_layer, Check};
use crate::error::{Error, Result};
use crate::transport::ImageSource;

/// Bytes per message from a reader thread.
pub const CHUNK: usize = 256 * 1024;
/// Messages buffered per reader thread.
pub const QUEUE: usize = 16;

enum Msg {
    Begin(u64),
    Data(Vec<u8>),
    End,
    Done,
    Err(Error),
}

/// Writes entry bodies into the layer being built.
pub trait Contents {
    fn write_body(&mut self, e: &OutEntry, w: &mut dyn Write) -> Result<()>;
}

/// Bodies held in memory or read from files on disk.
pub struct LocalContents;

impl Contents for LocalContents {
    fn write_body(&mut self, e: &OutEntry, w: &mut dyn Write) -> Result<()> {
        local_body(e, w)
    }
}

fn local_body(e: &OutEntry, w: &mut dyn Write) -> Result<()> {
    match &e.body {
        Body::None => Ok(()),
        Body::Bytes(b) => w
            .write_all(b)
            .map_err(|er| Error::io(e.path.to_string(), er)),
        Body::File(p) => {
            // Never follow a symlink swapped in since the walk.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)
                .map_err(|er| Error::io(p, er))?;
            let n = io::copy(&mut f.take(e.size), w).map_err(|er| Error::io(p, er))?;
            if n != e.size {
                return Err(Error::invalid(
                    p.display().to_string(),
                    format!("file shrank from {} to {n} bytes while being read", e.size),
                ));
            }
            Ok(())
        }
        Body::Image(_) => Err(Error::invalid(
            e.path.to_string(),
            "image content without an image source",
        )),
    }
}

struct Feed {
    name: String,
    rx: Receiver<Msg>,
    spilled: HashMap<u64, (u64, u64)>,
}

/// Contents streamed from an image's layers (see the module docs).
pub struct ImageContents {
    feeds: HashMap<u32, Feed>,
    uses: HashMap<ContentRef, u32>,
    spill: Option<File>,
    spill_len: u64,
    spill_dir: std::path::PathBuf,
}

impl ImageContents {
    fn spill_file(&mut self) -> Result<&File> {
        if self.spill.is_none() {
            let f = tempfile::tempfile_in(&self.spill_dir)
                .map_err(|e| Error::io(&self.spill_dir, e))?;
            self.spill = Some(f);
        }
        self.spill
            .as_ref()
            .ok_or_else(|| Error::invalid("spill file", "missing"))
    }

    fn copy_from_spill(&mut self, off: u64, len: u64, w: &mut dyn Write) -> Result<()> {
        let dir = self.spill_dir.clone();
        let f = self.spill_file()?;
        let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
        let mut done = 0;
        while done < len {
            let n = ((len - done) as usize).min(buf.len());
            f.read_exact_at(&mut buf[..n], off + done)
                .map_err(|e| Error::io(&dir, e))?;
            w.write_all(&buf[..n]).map_err(|e| Error::io(&dir, e))?;
            done += n as u64;
        }
        Ok(())
    }

    fn fetch(&mut self, c: ContentRef, size: u64, w: &mut dyn Write) -> Result<()> {
        let uses = self.uses.get(&c).copied().unwrap_or(1);
        if let Some(u) = self.uses.get_mut(&c) {
            *u = u.saturating_sub(1);
        }
        let feed = self.feeds.get(&c.layer).ok_or_else(|| {
            Error::invalid("layer contents", format!("no reader for layer {}", c.layer))
        })?;
        if let Some(&(off, len)) = feed.spilled.get(&c.ordinal) {
            return self.copy_from_spill(off, len, w);
        }
        loop {
            let feed = self.feeds.get(&c.layer).ok_or_else(|| {
                Error::invalid("layer contents", format!("no reader for layer {}", c.layer))
            })?;
            let name = feed.name.clone();
            let o = match feed.rx.recv() {
                Ok(Msg::Begin(o)) => o,
                Ok(Msg::Err(e)) => return Err(e),
                Ok(Msg::Done) => {
                    return Err(Error::invalid(
                        &name,
                        format!("layer ended before entry #{} it was asked for", c.ordinal),
                    ))
                }
                Ok(_) => return Err(Error::invalid(&name, "layer reader protocol error")),
                Err(_) => return Err(Error::invalid(&name, "layer reader stopped")),
            };
            if o == c.ordinal && uses <= 1 {
                let n = self.pipe(c.layer, w)?;
                if n != size {
                    return Err(Error::invalid(
                        &name,
                        format!("entry #{o}: {n} bytes, the merged view said {size}"),
                    ));
                }
                return Ok(());
            }
            // Early or wanted again later: keep it on disk.
            let off = self.spill_len;
            let mut sw = SpillWriter {
                file: self
                    .spill_file()?
                    .try_clone()
                    .map_err(|e| Error::io("spill file", e))?,
                pos: off,
            };
            let n = self.pipe(c.layer, &mut sw)?;
            self.spill_len += n;
            if let Some(f) = self.feeds.get_mut(&c.layer) {
                f.spilled.insert(o, (off, n));
            }
            if o == c.ordinal {
                return self.copy_from_spill(off, n, w);
            }
        }
    }

    /// Copies one entry's data messages into `w`; returns the byte count.
    fn pipe(&mut self, layer: u32, w: &mut dyn Write) -> Result<u64> {
        let feed = self
            .feeds
            .get(&layer)
            .ok_or_else(|| Error::invalid("layer contents", "no reader"))?;
        let mut n = 0u64;
        loop {
            match feed.rx.recv() {
                Ok(Msg::Data(b)) => {
                    w.write_all(&b)
                        .map_err(|e| Error::from_io("writing layer", e))?;
                    n += b.len() as u64;
                }
                Ok(Msg::End) => return Ok(n),
                Ok(Msg::Err(e)) => return Err(e),
                Ok(_) => return Err(Error::invalid(&feed.name, "layer reader protocol error")),
                Err(_) => return Err(Error::invalid(&feed.name, "layer reader stopped")),
            }
        }
    }

    /// Waits until every reader verified its blob to the end.
    fn finish(&mut self) -> Result<()> {
        for feed in self.feeds.values() {
            loop {
                match feed.rx.recv() {
                    Ok(Msg::Done) => break,
                    Ok(Msg::Err(e)) => return Err(e),
                    Ok(_) => continue,
                    Err(_) => return Err(Error::invalid(&feed.name, "layer reader stopped")),
                }
            }
        }
        Ok(())
    }
}

struct SpillWriter {
    file: File,
    pos: u64,
}

impl Write for SpillWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Contents for ImageContents {
    fn write_body(&mut self, e: &OutEntry, w: &mut dyn Write) -> Result<()> {
        match e.body {
            Body::Image(c) => self.fetch(c, e.size, w),
            _ => local_body(e, w),
        }
    }
}

/// Runs `f` with contents streamed from the layers `entries` need. The
/// result stands only if every source blob then verified to its end.
pub fn with_image_contents<T>(
    src: &dyn ImageSource,
    layers: &[LayerInfo],
    entries: &[OutEntry],
    spill_dir: &Path,
    f: impl FnOnce(&mut ImageContents) -> Result<T>,
) -> Result<T> {
    let mut needs: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut uses: HashMap<ContentRef, u32> = HashMap::new();
    for e in entries {
        if let Body::Image(c) = e.body {
            needs.entry(c.layer).or_default().insert(c.ordinal);
            *uses.entry(c).or_default() += 1;
        }
    }
    let cancel = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut feeds = HashMap::new();
        for (layer, ords) in needs {
            let desc = layers
                .get(layer as usize)
                .map(|l| l.descriptor.clone())
                .ok_or_else(|| Error::invalid("merged tree", format!("no layer {layer}")))?;
            let (tx, rx) = sync_channel(QUEUE);
            let cancel = &cancel;
            let name = desc.digest().to_string();
            std::thread::Builder::new()
                .name(format!("layer-{layer}"))
                .spawn_scoped(s, move || produce(src, &desc, ords, &tx, cancel))
                .map_err(|e| Error::io("spawning a layer reader", e))?;
            feeds.insert(
                layer,
                Feed {
                    name,
                    rx,
                    spilled: HashMap::new(),
                },
            );
        }
        let mut contents = ImageContents {
            feeds,
            uses,
            spill: None,
            spill_len: 0,
            spill_dir: spill_dir.to_path_buf(),
        };
        let r = f(&mut contents).and_then(|t| contents.finish().map(|()| t));
        cancel.store(true, Ordering::SeqCst);
        // Dropping the receivers unblocks readers still sending.
        drop(contents);
        r
    })
}

/// The reader thread: sends the `wanted` entries of one layer, then
/// drains the blob so its digest is checked.
fn produce(
    src: &dyn ImageSource,
    desc: &Descriptor,
    wanted: BTreeSet<u64>,
    tx: &SyncSender<Msg>,
    cancel: &AtomicBool,
) {
    let name = desc.digest().to_string();
    let r = (|| -> Result<bool> {
        let mut it = wanted.iter().peekable();
        let mut stopped = false;
        // The tree these layers come from verified each blob's diff_id when
        // it was loaded; the blob digest check suffices here.
        walk_layer(src, desc, Check::Blob, |ordinal, entry| {
            if cancel.load(Ordering::Relaxed) {
                stopped = true;
                return Ok(false);
            }
            let Some(&&want) = it.peek() else {
                return Ok(false);
            };
            if ordinal != want {
                return Ok(true);
            }
            it.next();
            if tx.send(Msg::Begin(want)).is_err() {
                stopped = true;
                return Ok(false);
            }
            let mut body = super::scan::entry_body(entry).map_err(|e| Error::from_io(&name, e))?;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = fill(&mut body, &mut buf).map_err(|e| Error::from_io(&name, e))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                if tx.send(Msg::Data(buf)).is_err() {
                    stopped = true;
                    return Ok(false);
                }
            }
            if tx.send(Msg::End).is_err() {
                stopped = true;
                return Ok(false);
            }
            Ok(it.peek().is_some())
        })?;
        if stopped {
            return Ok(false);
        }
        if let Some(missing) = it.next() {
            return Err(Error::invalid(
                &name,
                format!("layer ended before entry #{missing}"),
            ));
        }
        Ok(true)
    })();
    let _ = match r {
        Ok(true) => tx.send(Msg::Done),
        Ok(false) => Ok(()),
        Err(e) => tx.send(Msg::Err(e)),
    };
}

/// Reads until `buf` is full or the entry ends.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
