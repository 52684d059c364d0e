//! Progress bars on a terminal: one bar per blob in flight (bytes, rate)
//! and a summary line (pushed, skipped, mounted). Off the terminal, or with
//! `--json`, nothing is drawn.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::Descriptor;

#[derive(Default)]
struct Counts {
    done: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
}

/// Where progress goes; cheap to clone, hidden by default.
#[derive(Clone, Default)]
pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar)>,
    counts: Arc<Counts>,
    verb: &'static str,
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Progress {
    /// Draws nothing.
    pub fn hidden() -> Progress {
        Progress::default()
    }

    /// No bars for the rest of the process (`-q/--quiet`).
    pub fn silence() {
        QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Draws on stderr if it is a terminal (never on stdout, which carries
    /// results and `--json`) and not silenced; `verb` is "pushed" or "pulled".
    pub fn stderr(verb: &'static str) -> Progress {
        if QUIET.load(std::sync::atomic::Ordering::Relaxed) || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let summary = multi.add(ProgressBar::new_spinner());
        summary.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        summary.enable_steady_tick(Duration::from_millis(200));
        let p = Progress {
            bars: Some((multi, summary)),
            counts: Arc::default(),
            verb,
        };
        p.refresh();
        p
    }

    fn refresh(&self) {
        if let Some((_, s)) = &self.bars {
            s.set_message(format!(
                "{} {}, {} already there, {} mounted",
                self.counts.done.load(Ordering::Relaxed),
                self.verb,
                self.counts.skipped.load(Ordering::Relaxed),
                self.counts.mounted.load(Ordering::Relaxed),
            ));
        }
    }

    /// A bar for one blob transfer.
    pub(crate) fn blob(&self, desc: &Descriptor) -> BlobBar {
        let Some((multi, _)) = &self.bars else {
            return BlobBar { bar: None };
        };
        let bar = multi.add(ProgressBar::new(desc.size()));
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let hex = desc.digest().digest();
        bar.set_prefix(hex[..hex.len().min(12)].to_string());
        BlobBar { bar: Some(bar) }
    }

    pub(crate) fn transferred(&self) {
        self.counts.done.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    pub(crate) fn skipped(&self) {
        self.counts.skipped.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    pub(crate) fn mounted(&self) {
        self.counts.mounted.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    /// Prints a line above the bars, or on stderr when nothing is drawn.
    pub fn note(&self, msg: &str) {
        match &self.bars {
            Some((m, _)) => {
                if m.println(msg).is_err() {
                    eprintln!("{msg}");
                }
            }
            None => eprintln!("{msg}"),
        }
    }

    /// Clears the bars (call once at the end).
    pub fn finish(&self) {
        if let Some((m, s)) = &self.bars {
            s.finish_and_clear();
            let _ = m.clear();
        }
    }
}

/// One blob's bar; removed when dropped.
pub(crate) struct BlobBar {
    bar: Option<ProgressBar>,
}

impl BlobBar {
    pub(crate) fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }
}

impl Drop for BlobBar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
