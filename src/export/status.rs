//! `cdpjob status` of an export: pages and customers written, the cursor a resume continues
//! after, and where the output is (in place, or still partial), from its files alone.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{ExportCheckpoint, ExportDetail};
use crate::error::Result;
use crate::run_dir::events::Event;
use crate::run_dir::{self, KindRecord, Manifest, RunDir};
use crate::runner::RunStatus;
use crate::runner::status::{self, StatusHead};
use crate::runner::summary::plural;

#[derive(Debug, Clone, Serialize)]
pub struct ExportStatus {
    #[serde(flatten)]
    pub head: StatusHead,
    pub pages: u64,
    pub rows: u64,
    pub cursor: Option<i64>,
    pub output_bytes: u64,
    pub all_pages_written: bool,
    pub retries: u64,
    pub output: Option<String>,
    pub partial: Option<String>,
    pub request: Option<Value>,
}

pub fn read(dir: &Path, manifest: &Manifest) -> Result<ExportStatus> {
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    let (mut cp, events): (ExportCheckpoint, _) =
        status::read_files(dir, &dir.join(run_dir::CHECKPOINT))?;
    if let KindRecord::QueryExport(rec) = &manifest.kind
        && !rec.windows.is_empty()
        && !cp.complete
    {
        // Sub-windows not joined yet: what each has written so far.
        for w in super::window::windows(rec, &run) {
            let (part, _): (ExportCheckpoint, _) = status::read_files(dir, &w.checkpoint)?;
            cp.pages += part.pages;
            cp.rows += part.rows;
            cp.output_len += part.output_len;
        }
    }
    let mut head = StatusHead::read::<ExportDetail>(dir, manifest);
    let mut retries = 0u64;
    for e in &events {
        match e {
            Event::Stopped { reason, .. } => head.last_error = Some(reason.clone()),
            Event::Page { attempts, .. } => retries += u64::from(attempts.saturating_sub(1)),
            _ => {}
        }
        head.last_event_at = Some(e.at());
    }
    let rec = match &manifest.kind {
        KindRecord::QueryExport(rec) => Some(rec),
        KindRecord::BatchCreate { .. } => None,
    };
    Ok(ExportStatus {
        head,
        pages: cp.pages,
        rows: cp.rows,
        cursor: cp.after,
        output_bytes: cp.output_len,
        all_pages_written: cp.complete,
        retries,
        output: rec.map(|r| r.output.clone()),
        partial: rec.map(|r| r.partial.clone()),
        request: rec.map(|r| r.request.clone()),
    })
}

impl fmt::Display for ExportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.head.title())?;
        writeln!(
            f,
            "exported {} customer{} in {} page{} ({} bytes written), retries {}",
            self.rows,
            plural(self.rows),
            self.pages,
            plural(self.pages),
            self.output_bytes,
            self.retries
        )?;
        if self.head.status == RunStatus::Finished {
            writeln!(f, "output: {}", self.output.as_deref().unwrap_or_default())?;
        } else {
            let cursor = self
                .cursor
                .map_or_else(|| "null".to_string(), |c| c.to_string());
            writeln!(
                f,
                "partial output: {} (continues after cursor {cursor})",
                self.partial.as_deref().unwrap_or_default()
            )?;
        }
        if let Some(e) = &self.head.last_error {
            writeln!(f, "last error: {e}")?;
        }
        writeln!(f, "{}", self.head.times())
    }
}
