//! `cdpjob status` of an import: where its rows are, which batches are done and which are
//! in doubt (sent, never answered: a resume sends them again), from its files alone.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{Checkpoint, Counts, ImportDetail};
use crate::error::Result;
use crate::run_dir::events::{Event, Part};
use crate::run_dir::{self, Manifest};
use crate::runner::RunStatus;
use crate::runner::status::{self, StatusHead};

#[derive(Debug, Clone, Serialize)]
pub struct ImportStatus {
    #[serde(flatten)]
    pub head: StatusHead,
    pub counts: Counts,
    pub batches_done: u64,
    pub batches_in_doubt: Vec<u64>,
    pub requests: u64,
    pub retries: u64,
}

pub fn read(dir: &Path, manifest: &Manifest) -> Result<ImportStatus> {
    let (checkpoint, events): (Checkpoint, _) =
        status::read_files(dir, &dir.join(run_dir::CHECKPOINT))?;
    let mut head = StatusHead::read::<ImportDetail>(dir, manifest);
    // Parts sent and not answered, in journal order (a part may be sent again on resume).
    let mut open: HashSet<Part> = HashSet::new();
    let (mut retries, mut requests) = (0u64, 0u64);
    // Whether the last invocation ended in a guard's stop: a resume after it that was
    // killed left the guard's summary behind, and is merely interrupted.
    let mut guard_stopped = false;
    for e in &events {
        match e {
            Event::RunStarted { .. } | Event::Resumed { .. } => guard_stopped = false,
            Event::Intent { part, .. } => {
                open.insert(*part);
                requests += 1;
            }
            Event::Outcome { part, .. } => {
                open.remove(part);
            }
            Event::Withdrawn { part, .. } => {
                open.remove(part);
                requests = requests.saturating_sub(1);
            }
            Event::Retry { reason, .. } => {
                retries += 1;
                head.last_error = Some(reason.clone());
            }
            Event::Stopped { reason, guard, .. } => {
                head.last_error = Some(reason.clone());
                guard_stopped = guard.is_some();
            }
            _ => {}
        }
        head.last_event_at = Some(e.at());
    }
    if head.status == RunStatus::StoppedByGuard && !guard_stopped {
        head.status = RunStatus::Interrupted;
    }
    let mut in_doubt: Vec<u64> = open
        .iter()
        .filter(|p| !checkpoint.is_done(p.seq))
        .map(|p| p.seq)
        .collect();
    in_doubt.sort_unstable();
    in_doubt.dedup();
    Ok(ImportStatus {
        head,
        counts: checkpoint.counts,
        batches_done: checkpoint.done_below + checkpoint.done_above.len() as u64,
        batches_in_doubt: in_doubt,
        requests,
        retries,
    })
}

impl fmt::Display for ImportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(f, "{}", self.head.title())?;
        writeln!(
            f,
            "rows {}: created {}, failed {}, rejected {}, skipped {}, unchanged {}",
            c.rows, c.created, c.failed, c.rejected, c.skipped, c.unchanged
        )?;
        let in_doubt = if self.batches_in_doubt.is_empty() {
            "none".to_string()
        } else {
            let seqs: Vec<String> = self.batches_in_doubt.iter().map(u64::to_string).collect();
            seqs.join(", ")
        };
        writeln!(
            f,
            "batches done {}, in doubt: {in_doubt}; requests {}, retries {}",
            self.batches_done, self.requests, self.retries
        )?;
        if let Some(e) = &self.head.last_error {
            writeln!(f, "last error: {e}")?;
        }
        writeln!(f, "{}", self.head.times())
    }
}
