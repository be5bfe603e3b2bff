//! `verify`'s progress in the run directory, `verify.jsonl`: what it set out to check, then
//! one line per customer checked, written as the answers come (group commit: one write
//! and one fsync for the lines waiting, as the run's journal does). A verify the API
//! stopped (exit 3) leaves its lines behind, and the next verify continues from them, so the
//! final report covers every customer while none is looked up twice. A torn last line (a
//! crash) is dropped: that customer is simply checked again.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run_dir::atomic;
use crate::run_dir::journal::{self, GroupJournal, Journal};

pub const VERIFY: &str = "verify.jsonl";

/// One line of `verify.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Line {
    /// The first line: what this verify checks.
    Started(Selection),
    Checked(Checked),
    /// The API failed: a verify run again continues after the lines before this one.
    Stopped {
        reason: String,
        at: jiff::Timestamp,
    },
    Finished {
        at: jiff::Timestamp,
    },
}

/// Which created customers a verify checks: all, or a seeded sample (its rows kept, so the
/// verify that continues checks the same ones even if the run created more since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub merge: String,
    pub sample: Option<u64>,
    pub seed: Option<u64>,
    /// A sample's rows, ascending; none: every created customer.
    pub rows: Option<Vec<u64>>,
    pub at: jiff::Timestamp,
}

/// What one customer's check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub row: u64,
    pub customer_id: i64,
    pub result: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// Fields it was sent with that the query endpoint does not return.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverifiable: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Match,
    Mismatch,
    /// Sent without whats_app_phone, sms_phone or email: nothing to look it up by.
    NoMatchKey,
}

/// One field that is not stored as the merge mode says it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub field: String,
    pub sent: Option<String>,
    pub stored: Option<String>,
}

/// What an earlier verify left in the run directory.
#[derive(Debug, Default)]
pub struct Earlier {
    pub selection: Option<Selection>,
    pub checked: Vec<Checked>,
    pub finished: bool,
}

pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(VERIFY)
}

/// Read `verify.jsonl` (nothing when there is none).
pub fn read(run_dir: &Path) -> io::Result<Earlier> {
    let (lines, _) = journal::read_all::<Line>(&path(run_dir))?;
    let mut earlier = Earlier::default();
    for line in lines {
        match line {
            Line::Started(s) => earlier.selection = Some(s),
            Line::Checked(c) => earlier.checked.push(c),
            Line::Stopped { .. } => {}
            Line::Finished { .. } => earlier.finished = true,
        }
    }
    Ok(earlier)
}

/// The file a verify appends its lines to.
pub struct Progress {
    journal: GroupJournal,
}

impl Progress {
    /// A new verify: the file started afresh with its selection (made durable first).
    pub fn start(run_dir: &Path, selection: Selection) -> io::Result<Progress> {
        let path = path(run_dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut journal = Journal::open(&path, atomic::durable())?;
        journal.append(&Line::Started(selection))?;
        Ok(Progress {
            journal: GroupJournal::start(journal)?,
        })
    }

    /// Continue the verify that stopped: its lines kept, a torn last one cut off.
    pub fn resume(run_dir: &Path) -> io::Result<Progress> {
        Ok(Progress {
            journal: GroupJournal::start(Journal::open(&path(run_dir), atomic::durable())?)?,
        })
    }

    /// Record a customer's check (written with the others waiting; not waited for).
    pub fn checked(&self, c: &Checked) -> io::Result<()> {
        self.journal.append_detached(&Line::Checked(c.clone()))
    }

    /// The last line, waited for: once it is durable so is every line before it, and a
    /// write that failed on the way is reported here.
    pub async fn end(self, line: Line) -> io::Result<()> {
        self.journal.append(&line).await
    }
}
