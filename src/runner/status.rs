//! What `cdpjob status` says of any run, whatever its kind: where it is (running, finished,
//! interrupted — from the lock where the run took it, and its summary), when it started and
//! last did something, and the last error. Each kind adds its own counts.

use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::summary::{Detail, RunStatus, Summary};
use crate::error::{Again, Error, Result};
use crate::job::model::JobKind;
use crate::job::paths;
use crate::run_dir::events::Event;
use crate::run_dir::lock;
use crate::run_dir::{self, Manifest, journal};

/// The part of a status report that every kind shares.
#[derive(Debug, Clone, Serialize)]
pub struct StatusHead {
    pub run_id: String,
    pub kind: JobKind,
    pub status: RunStatus,
    /// Whether `cdpjob resume` can continue it now.
    pub resumable: bool,
    pub job: String,
    pub run_dir: String,
    pub started_at: Timestamp,
    pub last_event_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// What every status report reads first: the run's checkpoint (the kind's, or an empty
/// one before the first) and its journal. Either unreadable is reported, never guessed at.
pub fn read_files<C: Default + serde::de::DeserializeOwned>(
    dir: &Path,
    checkpoint: &Path,
) -> Result<(C, Vec<Event>)> {
    let cp = super::read_checkpoint_at(checkpoint)
        .map_err(|s| Error::stopped(s.reason, Again::Never(dir.to_path_buf())))?;
    let (events, _) = journal::read_all::<Event>(&dir.join(run_dir::EVENTS))
        .map_err(|e| Error::io("cannot read the journal", e))?;
    Ok((cp, events))
}

impl StatusHead {
    /// From the manifest, the summary (if the run wrote one) and the lock.
    pub fn read<D: Detail>(dir: &Path, manifest: &Manifest) -> StatusHead {
        let summary: Option<Summary<D>> = run_dir::read_versioned(&dir.join(run_dir::SUMMARY)).ok();
        let status = if lock::held_for(&manifest.lock, &paths::absolute(dir)) {
            RunStatus::Running
        } else if let Some(s @ (RunStatus::Finished | RunStatus::StoppedByGuard)) =
            summary.as_ref().map(|s| s.status)
        {
            s
        } else {
            RunStatus::Interrupted
        };
        StatusHead {
            run_id: manifest.run_id.clone(),
            kind: manifest.kind.job_kind(),
            status,
            // A run killed outright left no summary: it can be resumed.
            resumable: matches!(status, RunStatus::Interrupted | RunStatus::StoppedByGuard)
                && summary.as_ref().is_none_or(|s| s.resumable),
            job: manifest.job_path.clone(),
            run_dir: dir.display().to_string(),
            started_at: manifest.started_at,
            last_event_at: None,
            finished_at: summary
                .filter(|s| s.status == RunStatus::Finished)
                .map(|s| s.finished_at),
            last_error: None,
        }
    }

    /// The first line of the text report.
    pub fn title(&self) -> String {
        format!("run {} ({}): {}", self.run_id, self.job, self.status)
    }

    /// The last line of the text report.
    pub fn times(&self) -> String {
        format!(
            "started {}, last activity {}",
            self.started_at,
            self.last_event_at
                .map(|t| t.to_string())
                .unwrap_or_default()
        )
    }
}
