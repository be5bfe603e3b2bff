//! What `events.jsonl` records. The journal is the run's memory: an intent is made durable
//! before its request is sent, an outcome after the answer, so that after a crash the
//! batches in doubt (an intent without an outcome) are known exactly. Both kinds of run
//! write here; the lifecycle's own events are `RunStarted`, `Resumed`, `Stopped` and
//! `RunFinished`.

use serde::{Deserialize, Serialize};

use jiff::Timestamp;

/// A request's place: batch `seq`, customers `lo..hi` of it (bisection sends halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Part {
    pub seq: u64,
    pub lo: u32,
    pub hi: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRow {
    pub row: u64,
    pub customer_id: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub whats_app_phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRow {
    pub row: u64,
    pub error_code: i64,
    pub error_message: String,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    /// Per-record results.
    Answered {
        created: Vec<CreatedRow>,
        failed: Vec<FailedRow>,
    },
    /// The whole request failed because of a record in it (12148, strict_binding false).
    WholeFailed { code: i64, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        at: Timestamp,
    },
    Resumed {
        at: Timestamp,
    },
    /// About to send these customers; `payload_sha256` is the hash of the exact body's
    /// customers, so a resume can tell it re-derived the same batch.
    Intent {
        part: Part,
        /// 1 the first time this part is sent, 2 when a resume sends it again, …
        #[serde(default)]
        attempt: u32,
        first_row: u64,
        last_row: u64,
        payload_sha256: String,
        at: Timestamp,
    },
    Outcome {
        part: Part,
        answer: Answer,
        attempts: u32,
        at: Timestamp,
    },
    /// An intent whose request was never sent: the run was stopping when its turn came.
    Withdrawn {
        part: Part,
        at: Timestamp,
    },
    Retry {
        path: String,
        /// The retried body's SHA-256, as its intent has it (older journals lack it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_sha256: Option<String>,
        attempt: u32,
        reason: String,
        delay_ms: u64,
        at: Timestamp,
    },
    Bisect {
        part: Part,
        code: i64,
        at: Timestamp,
    },
    Stopped {
        reason: String,
        /// The guard that stopped the run (`max_failed`, SPEC §7), if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guard: Option<String>,
        at: Timestamp,
    },
    /// The run's work is done and recorded (its counts are in the summary).
    RunFinished {
        at: Timestamp,
    },
    /// A page of an export, written and checkpointed.
    Page {
        /// The sub-window it belongs to, when the export has several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<usize>,
        page: u64,
        /// The cursor it was asked for (none for the first page).
        after: Option<i64>,
        customers: u64,
        /// Customers on the page that another sub-window had written (their ends overlap).
        #[serde(default, skip_serializing_if = "is_zero")]
        elsewhere: u64,
        next: Option<i64>,
        attempts: u32,
        at: Timestamp,
    },
    /// An export renamed its output into place (and recorded its state).
    ExportFinished {
        rows: u64,
        pages: u64,
        output: String,
        at: Timestamp,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

impl Event {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::RunStarted { at, .. }
            | Event::Resumed { at }
            | Event::Intent { at, .. }
            | Event::Outcome { at, .. }
            | Event::Withdrawn { at, .. }
            | Event::Retry { at, .. }
            | Event::Bisect { at, .. }
            | Event::Stopped { at, .. }
            | Event::RunFinished { at }
            | Event::Page { at, .. }
            | Event::ExportFinished { at, .. } => *at,
        }
    }
}
