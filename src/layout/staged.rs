//! Writing a copy into a layout through a staging directory.
//!
//! A copy writes its blobs into `DEST/.ocipack-tmp-….d` (a private layout)
//! and moves them into `DEST` only when everything arrived, together with
//! its tags, under the layout lock. So a failed copy leaves no orphan blobs,
//! a failed copy into a new destination leaves no layout at all, and a
//! killed one leaves only a staging directory that the next writer removes
//! (see [`crate::atomic`]). Blobs already in `DEST` are verified (once) and
//! not copied again.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use super::{DirLock, Layout};
use crate::atomic::{self, StagingDir, TEMP_PREFIX};
use crate::endpoint::ImageSink;
use crate::error::{Error, Result};
use crate::manifest::RawManifest;

/// A layout destination whose writes become visible at commit.
pub struct StagedLayout {
    dest: PathBuf,
    /// The destination, when it already is a layout.
    target: Option<Layout>,
    staging: Option<StagingDir>,
    stage: Layout,
    /// Tags (None: an untagged entry) to write at commit.
    pending: Mutex<Vec<(Option<String>, Descriptor)>>,
    /// `dest` did not exist before: removed again if nothing is committed.
    created_dest: bool,
}

impl StagedLayout {
    /// Prepares a copy into `dest`: an existing layout, an empty or absent
    /// directory, or what a crashed creator left. Anything else is refused
    /// before a byte is copied.
    pub fn open(dest: impl Into<PathBuf>) -> Result<StagedLayout> {
        let dest = dest.into();
        let created_dest = !dest.exists();
        let target = if dest.join("oci-layout").exists() {
            Some(Layout::open_writable(dest.clone())?)
        } else {
            atomic::create_dir_all(&dest)?;
            let _lock = DirLock::acquire(&dest)?;
            atomic::remove_stale_temp(&dest, TEMP_PREFIX)?;
            if let Err(e) = super::check_creatable(&dest) {
                if created_dest {
                    let _ = fs::remove_dir(&dest);
                }
                return Err(e);
            }
            None
        };
        let staging = StagingDir::new(&dest, TEMP_PREFIX)?;
        let stage = Layout::open_or_create(staging.path())?;
        Ok(StagedLayout {
            dest,
            target,
            staging: Some(staging),
            stage,
            pending: Mutex::new(Vec::new()),
            created_dest,
        })
    }

    fn pend(&self, tag: Option<String>, d: &Descriptor) -> Result<()> {
        self.pending
            .lock()
            .map_err(|_| Error::invalid(self.dest.display().to_string(), "writer poisoned"))?
            .push((tag, d.clone()));
        Ok(())
    }

    /// Moves the staged blobs into the destination and applies the tags,
    /// all under the destination's lock.
    fn commit_inner(&mut self) -> Result<()> {
        let _lock = DirLock::acquire(&self.dest)?;
        let target = Layout::create_locked(self.dest.clone())?;
        let from = self.stage.root().join("blobs").join("sha256");
        let to = target.root().join("blobs").join("sha256");
        for e in fs::read_dir(&from).map_err(|e| Error::io(&from, e))? {
            let e = e.map_err(|e| Error::io(&from, e))?;
            // Verified when written; replaces a corrupt file of that name.
            let dst = to.join(e.file_name());
            fs::rename(e.path(), &dst).map_err(|err| Error::io(&dst, err))?;
        }
        atomic::sync_dir(&to)?;
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| Error::invalid(self.dest.display().to_string(), "writer poisoned"))?,
        );
        if !pending.is_empty() {
            target.update_index_locked(|idx| {
                for (tag, d) in &pending {
                    match tag {
                        Some(t) => idx.set_tag(t, d)?,
                        None => idx.add_untagged(d)?,
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }
}

impl Drop for StagedLayout {
    fn drop(&mut self) {
        // Not committed (or committed: the staging directory is empty of
        // blobs by now); either way it goes.
        self.staging.take();
        if self.created_dest && !self.dest.join("oci-layout").exists() {
            // Only if empty: a concurrent writer may have started using it.
            let _ = fs::remove_dir(&self.dest);
        }
    }
}

impl ImageSink for StagedLayout {
    fn name(&self) -> String {
        format!("oci:{}", self.dest.display())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        if let Some(t) = &self.target {
            if t.has_blob(desc)? {
                return Ok(true);
            }
        }
        self.stage.has_blob(desc)
    }

    fn put_blob(&self, desc: &Descriptor, src: &mut dyn Read) -> Result<bool> {
        if self.has_blob(desc)? {
            return Ok(false);
        }
        self.stage.put_blob(desc, src)
    }

    fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        let desc = raw.descriptor();
        self.put_blob(&desc, &mut raw.bytes())?;
        Ok(())
    }

    fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        for (t, d) in tags {
            self.pend(Some(t.clone()), d)?;
        }
        Ok(())
    }

    fn record_untagged(&self, desc: &Descriptor) -> Result<()> {
        self.pend(None, desc)
    }

    fn put_referrer(
        &self,
        raw: &RawManifest,
        desc: &Descriptor,
        _subject: &Descriptor,
    ) -> Result<bool> {
        self.put_manifest(raw)?;
        self.record_untagged(desc)?;
        Ok(true)
    }

    fn max_parallel(&self) -> usize {
        2
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.commit_inner()
    }
}
