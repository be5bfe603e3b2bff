//! What a run is about, written once when it starts and checked on every resume: the job
//! (its text and the hash of what decides what is sent), the vars, the lock it holds, and
//! what its kind needs to continue exactly where it was.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The cdpjob that started the run (for messages about old run directories).
    pub cdpjob_version: String,
    pub run_id: String,
    pub job_path: String,
    pub job_text: String,
    /// SHA-256 of what decides what the run sends (SPEC §12 R3).
    pub job_sha256: String,
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// Whole seconds: templates see it as `run.started_at`, and an export's window ends
    /// there, so it must not lie in the future (rounding could).
    pub started_at: jiff::Timestamp,
    /// The same instant to the nanosecond: which of two runs began first (SPEC §12 R4).
    pub began_at: jiff::Timestamp,
    /// The job's lock, where this run took it (`status` looks there, wherever the run
    /// directory is).
    pub lock: PathBuf,
    /// The shard this run is, when it is one (`run --shard K/N`, SPEC §12 R19): a resume
    /// takes its rows and its lock again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardRun>,
    pub kind: KindRecord,
}

/// What each kind of run needs to be continued exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindRecord {
    BatchCreate {
        source: SourceFingerprint,
        /// Change detection, when the job has `sync: changed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sync: Option<SyncRecord>,
        /// The source's columns in its order: a CSV's header, so that `cdpjob rows --format
        /// csv` lays rows out as the source did after the source is gone (SPEC §12 R9).
        /// Null for JSON sources (their keys come from the records themselves), for a CSV
        /// read from standard input, and in manifests from before.
        #[serde(default)]
        columns: Option<Vec<String>>,
        /// Set when the run is a retry: its rows are another run's failed and rejected
        /// records, copied into this run's directory (`source` is that copy). Such a run
        /// covers a selection of rows, not a source: it never reports customers missing
        /// since the last sync.
        #[serde(default)]
        retry_of: Option<Box<RetryOf>>,
        /// The encoding the source is read in, as its name (`GBK`, `UTF-8`, `UTF-16BE`):
        /// what `encoding: auto` picked when the run started, which `resume` reads the
        /// source in rather than guessing again (SPEC §12 R13). Absent for standard input,
        /// a retry's copy, and in manifests from before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<String>,
        /// A sql source's spool (SPEC §12 R12): set when the run is made, complete once the
        /// query's rows are all in it and fsynced; `source` is then the spool's fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spool: Option<SpoolRecord>,
    },
    QueryExport(Box<ExportRecord>),
}

/// A sql source's rows, copied into the run directory before the first request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// Whether the spool holds every row of the query, fsynced. Until it does, the run has
    /// not really started: a resume runs the query again from scratch.
    pub complete: bool,
    /// The rows it holds (once complete).
    pub rows: u64,
}

/// Which rows of an earlier run a retry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryRows {
    Failed,
    Rejected,
    Both,
}

impl RetryRows {
    pub fn takes_failed(self) -> bool {
        self != RetryRows::Rejected
    }
    pub fn takes_rejected(self) -> bool {
        self != RetryRows::Failed
    }
}

/// The run a retry retries, and what it took of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryOf {
    /// The earlier run's directory (absolute) and id.
    pub run_dir: PathBuf,
    pub run_id: String,
    pub rows: RetryRows,
    /// Records copied: from its failed and from its rejected rows.
    pub failed: u64,
    pub rejected: u64,
    /// Rows of the kinds taken that are not retried: never read as records (SPEC §12 R9
    /// `"raw"`: nothing to map again), or rejected as a duplicate match key (R7: the earlier
    /// row's customer; the source needs fixing).
    pub not_retryable: u64,
}

impl Manifest {
    /// The run this one retries, if it is a retry (SPEC §7).
    pub fn retry_of(&self) -> Option<&RetryOf> {
        match &self.kind {
            KindRecord::BatchCreate { retry_of, .. } => retry_of.as_deref(),
            KindRecord::QueryExport(_) => None,
        }
    }
}

impl KindRecord {
    pub fn job_kind(&self) -> crate::job::model::JobKind {
        match self {
            KindRecord::BatchCreate { .. } => crate::job::model::JobKind::BatchCreate,
            KindRecord::QueryExport(_) => crate::job::model::JobKind::QueryExport,
        }
    }
}

/// How a run with `sync: changed` detects changes: fixed when it starts, so a resume
/// compares and records exactly as the first attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// `run --full`: every valid row is sent; the state is only refreshed.
    pub full: bool,
    /// The state this run compares with (as the run directory's snapshot holds it) and
    /// records its confirmed customers in.
    pub state: std::path::PathBuf,
    /// The API target the state belongs to (base_url, tenant, app key).
    pub target: String,
}

/// An export's query and output, rendered once when the run started: a resume continues
/// exactly this export, whatever `state.json` or the clock say by then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The request body of the first page (no cursor).
    pub request: serde_json::Value,
    /// Where the export lands when it is complete…
    pub output: String,
    /// …and where it grows until then.
    pub partial: String,
    pub format: crate::job::model::OutputFormat,
    /// The columns (CSV, xlsx) or keys (JSON Lines) in order; empty: each customer whole.
    pub columns: Vec<String>,
    /// CSV: a byte-order mark first, and the formula guard. Absent from the manifests of
    /// runs begun before these options: both off, as those runs wrote their first pages.
    #[serde(default)]
    pub bom: bool,
    #[serde(default)]
    pub formula_guard: bool,
    pub max_records: Option<u64>,
    /// The state file read at the start, and what it held.
    pub state_file: String,
    pub state_read: serde_json::Map<String, serde_json::Value>,
    /// The end of the window this export covers (the query's `end_time`): `last_end_time`
    /// in the next state. None for a query without an end.
    #[serde(default)]
    pub window_end: Option<String>,
    /// `query.parallel`: how many sub-windows are paged at once (1 in a manifest written
    /// before there were sub-windows).
    #[serde(default = "one")]
    pub parallel: usize,
    /// The sub-windows, in time order; empty when the query is paged as one.
    #[serde(default)]
    pub windows: Vec<SubWindow>,
}

fn one() -> usize {
    1
}

/// One sub-window of a parallel export, as rendered when the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubWindow {
    pub start_time: String,
    pub end_time: String,
}

/// Enough to tell that the source is not the one the run started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFingerprint {
    pub path: String,
    pub size: u64,
    /// Recorded as `xxh3` (or, in older manifests, `sha256`); empty for standard input.
    #[serde(flatten)]
    pub content: ContentHash,
}

/// A source file's content hash, lowercase hex, by the algorithm its manifest names.
///
/// Nothing adversarial is guarded against, only a file that changed between a run and its
/// resume, so it is xxh3-128: SHA-256 of a 135 MB source took ~0.09 s before the first
/// request. Older manifests hold SHA-256, and a resume of such a run still checks by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentHash {
    #[serde(rename = "xxh3")]
    Xxh3(String),
    #[serde(rename = "sha256")]
    Sha256(String),
}

impl ContentHash {
    /// No content hashed (standard input, or a spool not yet written).
    pub fn none() -> ContentHash {
        ContentHash::Xxh3(String::new())
    }
}
