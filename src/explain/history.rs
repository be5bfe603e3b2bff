//! With `--run`: what that run made of the row — its outcome in the result files (only what
//! the checkpoint counts is committed), the customer id or the error — and its batch's
//! journal: every intent, outcome, bisection and withdrawal of the batch and of the halves
//! a bisection sent, each marked when it held the row, and every transport retry of their
//! requests (a retry is tied to its intent by the hash of the body both name).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::locate::{BatchPlace, Settled};
use crate::api::payload::PayloadHash;
use crate::error::{Error, Result};
use crate::import::Checkpoint;
use crate::import::results::{self, RowOutcome};
use crate::run_dir::events::{Answer, Event, Part};
use crate::run_dir::{self, journal};

/// The row in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunTrace {
    /// `created`, `failed`, `rejected`, `skipped`, `unchanged`, `not_done` (its batch is not
    /// committed yet) or `unknown` (no result file has it though its batch is done).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// A rejected line's reasons, as the run wrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Value>,
    /// The result line as it is in its file.
    pub result_line: Option<Value>,
    /// Whether the checkpoint counts the row's batch as done.
    pub batch_done: bool,
    /// The batch's journal events, in journal order.
    pub events: Vec<BatchEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One journal event of the row's batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchEvent {
    /// Whether the part it is about holds the row.
    pub holds_row: bool,
    /// `intent`, `retry`, `outcome`, `bisect` or `withdrawn`.
    pub event: &'static str,
    /// What it says, in a line.
    pub summary: String,
    /// The journal line as it is.
    pub journal: Value,
}

/// The row `row`, in batch `batch`, of the run in `dir`; `settled` is what this job makes
/// of it now (a skipped or unchanged row has no line to find).
pub fn trace(dir: &Path, row: u64, batch: &BatchPlace, settled: &Settled) -> Result<RunTrace> {
    let checkpoint: Checkpoint = match run_dir::read_versioned(&dir.join(run_dir::CHECKPOINT)) {
        Ok(cp) => cp,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoint::default(),
        Err(e) => return Err(Error::io("cannot read the checkpoint", e)),
    };
    let (events, _) = journal::read_all::<Event>(&dir.join(run_dir::EVENTS))
        .map_err(|e| Error::io("cannot read the journal", e))?;
    let mut trace = RunTrace {
        outcome: "unknown",
        customer_id: None,
        error_code: None,
        error_message: None,
        errors: None,
        result_line: None,
        batch_done: checkpoint.is_done(batch.seq),
        events: batch_events(&events, batch),
        note: None,
    };
    for outcome in [
        RowOutcome::Created,
        RowOutcome::Failed,
        RowOutcome::Rejected,
    ] {
        if let Some(line) = find_line(dir, outcome, row)? {
            trace.outcome = match outcome {
                RowOutcome::Created => "created",
                RowOutcome::Failed => "failed",
                RowOutcome::Rejected => "rejected",
            };
            trace.customer_id = line["customer_id"].as_i64();
            trace.error_code = line["error_code"].as_i64();
            trace.error_message = line["error_message"].as_str().map(str::to_string);
            trace.errors = line.get("errors").cloned();
            trace.result_line = Some(line);
            return Ok(trace);
        }
    }
    // Skipped and unchanged rows are counted, not written: their batch being done says it.
    match (trace.batch_done, settled) {
        (true, Settled::Mapped(crate::mapping::Outcome::Skipped)) => trace.outcome = "skipped",
        (true, Settled::Unchanged) => trace.outcome = "unchanged",
        (true, _) => {
            trace.note = Some(format!(
                "no result file of the run has row {row}, though its batch {} is done: the job or the source is not what the run read",
                batch.seq
            ));
        }
        (false, _) => {
            trace.outcome = "not_done";
            trace.note = Some(format!(
                "batch {} is not committed in this run: it is running, or was stopped before (`cdpjob resume {}` finishes it)",
                batch.seq,
                dir.display()
            ));
        }
    }
    Ok(trace)
}

/// The committed line of `outcome`'s file for `row`, if there is one.
fn find_line(dir: &Path, outcome: RowOutcome, row: u64) -> Result<Option<Value>> {
    let io = |e| Error::io(format!("cannot read {}", outcome.file_name()), e);
    // Every line names its row: only those that might be this one are parsed.
    let needle = format!("\"row\":{row}");
    for line in results::committed(dir, outcome).map_err(io)? {
        let (_, text) = line.map_err(io)?;
        if !text.contains(&needle) {
            continue;
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line that is not JSON: {e}"),
            ))
        })?;
        if v["row"].as_u64() == Some(row) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The events of the batch `batch.seq`, with a line each.
fn batch_events(events: &[Event], batch: &BatchPlace) -> Vec<BatchEvent> {
    let index = batch.position.map(|p| p as u32 - 1);
    let holds = |part: &Part| index.is_some_and(|i| part.lo <= i && i < part.hi);
    let rows = |part: &Part| -> String {
        let row = |i: u32| batch.customer_rows.get(i as usize).copied();
        match (row(part.lo), part.hi.checked_sub(1).and_then(row)) {
            (Some(a), Some(b)) => row_range(a, b),
            _ => String::new(),
        }
    };
    // A retry names the body it sent again; the intents of this batch name theirs.
    let sent: std::collections::HashMap<&PayloadHash, Part> = events
        .iter()
        .filter_map(|e| match e {
            Event::Intent { part, payload, .. } if part.seq == batch.seq => Some((payload, *part)),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|e| {
            let retried;
            let (part, event, summary) = match e {
                Event::Retry {
                    payload: Some(hash),
                    attempt,
                    reason,
                    delay_ms,
                    ..
                } => {
                    retried = *sent.get(hash)?;
                    (
                        &retried,
                        "retry",
                        format!(
                            "{}{}: attempt {attempt} failed ({reason}), again in {delay_ms} ms",
                            customers(&retried),
                            rows(&retried)
                        ),
                    )
                }
                Event::Intent {
                    part,
                    attempt,
                    first_row,
                    last_row,
                    payload,
                    ..
                } => (
                    part,
                    "intent",
                    format!(
                        "{}{}, attempt {attempt}, payload {} {}…",
                        customers(part),
                        row_range(*first_row, *last_row),
                        payload.algorithm(),
                        &payload.hex()[..payload.hex().len().min(12)]
                    ),
                ),
                Event::Outcome {
                    part,
                    answer,
                    attempts,
                    ..
                } => {
                    let tries = match attempts {
                        1 => "1 attempt".to_string(),
                        n => format!("{n} attempts: {} retried", n.saturating_sub(1)),
                    };
                    let what = match answer {
                        Answer::Answered { created, failed } => {
                            format!("{} created, {} failed", created.len(), failed.len())
                        }
                        Answer::WholeFailed { code, message } => {
                            format!("the whole request failed: {code} {message}")
                        }
                    };
                    (
                        part,
                        "outcome",
                        format!("{}{}: {what} ({tries})", customers(part), rows(part)),
                    )
                }
                Event::Bisect { part, code, .. } => {
                    let mid = part.lo + (part.hi - part.lo) / 2;
                    let half = |lo, hi| {
                        customers(&Part {
                            seq: part.seq,
                            lo,
                            hi,
                        })
                    };
                    (
                        part,
                        "bisect",
                        format!(
                            "{} after {code}: split into {} and {}",
                            customers(part),
                            half(part.lo, mid),
                            half(mid, part.hi)
                        ),
                    )
                }
                Event::Withdrawn { part, .. } => (
                    part,
                    "withdrawn",
                    format!(
                        "{}{}: never sent (the run was stopping)",
                        customers(part),
                        rows(part)
                    ),
                ),
                _ => return None,
            };
            (part.seq == batch.seq).then(|| BatchEvent {
                holds_row: holds(part),
                event,
                summary,
                journal: serde_json::to_value(e).unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// A part's customers by their places in the batch, from 1: `customers 1–20`.
fn customers(part: &Part) -> String {
    if part.hi == part.lo + 1 {
        format!("customer {}", part.hi)
    } else {
        format!("customers {}–{}", part.lo + 1, part.hi)
    }
}

/// ` (row 7)` or ` (rows 1–8)`.
fn row_range(first: u64, last: u64) -> String {
    if first == last {
        format!(" (row {first})")
    } else {
        format!(" (rows {first}–{last})")
    }
}
