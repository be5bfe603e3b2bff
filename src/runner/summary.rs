//! What a run reports when it ends, the same for both kinds: `summary.json`, the `--json`
//! document and the text on stdout, and the exit code that follows from it (SPEC §3).

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::job::model::JobKind;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A live process holds the job's lock for it.
    Running,
    /// Its work is done and recorded.
    Finished,
    /// It stopped before its end (a signal, an error, a kill).
    Interrupted,
    /// A guard stopped it (SPEC §7: too many rows failed); resumable, but a person must
    /// look first: `cdpjob resume --no-guard` goes on past the guard.
    StoppedByGuard,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Interrupted => "interrupted",
            RunStatus::StoppedByGuard => "stopped_by_guard",
        }
    }
}

impl std::fmt::Display for RunStatus {
    /// The status in the text reports: the JSON name, except where a phrase reads better.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunStatus::StoppedByGuard => f.write_str("stopped by a guard"),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// How a command ended, and so its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done (rows skipped by the filter count as done).
    Done,
    /// The run finished, but some rows were rejected or failed: exit 1.
    RowsNotCreated,
    /// The run stopped early: exit 3 when `resume` can continue it, else 2.
    Stopped { resumable: bool },
    /// A guard stopped the run: exit 4, whatever a resume could do (someone must look).
    GuardStopped,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::RowsNotCreated => 1,
            Outcome::Stopped { resumable: true } => 3,
            Outcome::Stopped { resumable: false } => 2,
            Outcome::GuardStopped => 4,
        }
    }
}

/// What a kind of run adds to its summary.
pub trait Detail: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// Whether rows were rejected or failed (a finished run then exits 1).
    fn rows_not_created(&self) -> bool;
    /// The lines after the first: what was done, with the requests and retries.
    fn render_counts(&self, requests: u64, retries: u64) -> String;
    /// The lines after `run directory:`: the files a user opens next.
    fn render_files(&self) -> String;
    /// Rows by where they ended up (`cdpjob_rows{outcome}` of the metrics file).
    fn rows_by_outcome(&self) -> super::metrics::Rows;
}

/// `summary.json`, and what `run`/`resume` print.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary<D> {
    pub run_id: String,
    pub run_dir: String,
    pub kind: JobKind,
    pub status: RunStatus,
    /// Whether `cdpjob resume run_dir` can continue it.
    pub resumable: bool,
    /// Requests this invocation sent, and retries among them.
    pub requests: u64,
    pub retries: u64,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub elapsed_secs: f64,
    pub stopped_reason: Option<String>,
    #[serde(flatten)]
    pub detail: D,
}

impl<D: Detail> Summary<D> {
    pub fn outcome(&self) -> Outcome {
        match self.status {
            RunStatus::Finished if self.detail.rows_not_created() => Outcome::RowsNotCreated,
            RunStatus::Finished => Outcome::Done,
            RunStatus::StoppedByGuard => Outcome::GuardStopped,
            RunStatus::Running | RunStatus::Interrupted => Outcome::Stopped {
                resumable: self.resumable,
            },
        }
    }

    /// The text `run` and `resume` print on stdout.
    pub fn render(&self) -> String {
        let mut out = format!(
            "run {}: {} in {:.1}s\n",
            self.run_id, self.status, self.elapsed_secs
        );
        out.push_str(&self.detail.render_counts(self.requests, self.retries));
        if let Some(reason) = &self.stopped_reason {
            let _ = writeln!(out, "stopped: {reason}");
            if self.status == RunStatus::StoppedByGuard && self.resumable {
                let _ = writeln!(
                    out,
                    "look at the failed rows first; then `cdpjob resume {} --no-guard` goes on without the guard (a plain resume checks it again)",
                    self.run_dir
                );
            } else if self.resumable {
                let _ = writeln!(out, "resume with: cdpjob resume {}", self.run_dir);
            }
        }
        let _ = writeln!(out, "run directory: {}", self.run_dir);
        out.push_str(&self.detail.render_files());
        out
    }

    /// The `--json` document: the summary with `format_version` first.
    pub fn to_json(&self) -> serde_json::Value {
        crate::run_dir::versioned(self)
    }
}

pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
