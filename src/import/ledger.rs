//! The result files and the checkpoint that counts them: a batch's lines are appended and
//! made durable, then the checkpoint that counts them replaces the old one atomically, in
//! that order, so a crash anywhere leaves result files a resume can cut back.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use super::checkpoint::{Checkpoint, Counts};
use crate::run_dir::{self, RunDir, atomic};

/// A batch's lines for the result files, each ending in a newline.
pub struct Materialized {
    pub seq: u64,
    pub created: Vec<u8>,
    pub failed: Vec<u8>,
    pub rejected: Vec<u8>,
    pub counts: Counts,
}

/// The result files, appended in batch-completion order, each made durable before the
/// checkpoint that counts it.
pub struct Results {
    created: File,
    failed: File,
    rejected: File,
    /// Which of them were written since the last sync.
    unsynced: [bool; 3],
}

/// The result files and the checkpoint that counts them. Commits run on a blocking thread,
/// off the scheduler loop, which never waits on the disk; batches answered while a commit
/// runs wait and go into the next one together (one fsync per file and one checkpoint for
/// all of them).
pub struct Ledger {
    pub results: Results,
    pub checkpoint: Checkpoint,
    pub checkpoint_path: PathBuf,
    pub durable: bool,
}

impl Ledger {
    /// Append the batches' lines, make them durable, then replace the checkpoint that
    /// counts them. A failure leaves the checkpoint as it was on disk: the run must stop.
    pub fn commit(&mut self, batches: &[Materialized]) -> std::io::Result<()> {
        for m in batches {
            // Counted per batch, so that `before_results:N` is the N-th batch's.
            crate::failpoint_io!("before_results");
            self.results.write(m, &mut self.checkpoint)?;
        }
        self.results.sync(self.durable)?;
        for m in batches {
            crate::failpoint!("before_checkpoint");
            self.checkpoint.mark_done(m.seq);
            self.checkpoint.counts.add(&m.counts);
        }
        run_dir::write_versioned(&self.checkpoint_path, &self.checkpoint)
    }
}

impl Results {
    pub fn open(dir: &RunDir, cp: &Checkpoint) -> std::io::Result<Results> {
        Ok(Results {
            created: atomic::open_at_length(&dir.file(run_dir::CREATED), cp.created_len)?,
            failed: atomic::open_at_length(&dir.file(run_dir::FAILED), cp.failed_len)?,
            rejected: atomic::open_at_length(&dir.file(run_dir::REJECTED), cp.rejected_len)?,
            unsynced: [false; 3],
        })
    }

    /// Append a batch's lines (not yet durable: see `sync`).
    fn write(&mut self, m: &Materialized, cp: &mut Checkpoint) -> std::io::Result<()> {
        let [c, f, r] = &mut self.unsynced;
        for (file, lines, len, unsynced) in [
            (&mut self.created, &m.created, &mut cp.created_len, c),
            (&mut self.failed, &m.failed, &mut cp.failed_len, f),
            (&mut self.rejected, &m.rejected, &mut cp.rejected_len, r),
        ] {
            if lines.is_empty() {
                continue;
            }
            file.write_all(lines)?;
            *len += lines.len() as u64;
            *unsynced = true;
        }
        Ok(())
    }

    fn sync(&mut self, durable: bool) -> std::io::Result<()> {
        for (file, unsynced) in [&self.created, &self.failed, &self.rejected]
            .into_iter()
            .zip(&mut self.unsynced)
        {
            if durable && *unsynced {
                file.sync_data()?;
            }
            *unsynced = false;
        }
        Ok(())
    }
}
