//! What a report shows, gathered from a run directory through the readers `status`, `rows`
//! and `resume` already use (the manifest, the kind's status, the committed result lines,
//! the journal), so that the page says what the rest of cdpjob says of the same run. A
//! running run or a stopped one is read as its files stand: whatever is committed.
//!
//! Privacy (SPEC §12 R21): of a rejected or failed row only its row number, the field, the
//! rule or code and the message (cut to [`MESSAGE_CHARS`]) are taken — never the record
//! the result line carries beside them.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::export;
use crate::import::results::{self, RowOutcome};
use crate::import::{self, Counts};
use crate::job::model::JobKind;
use crate::run_dir::events::{Answer, Event};
use crate::run_dir::{self, KindRecord, Manifest, journal};
use crate::runner::{self, RunStatus};

/// How many characters of a message the report keeps (SPEC §12 R21).
pub const MESSAGE_CHARS: usize = 200;
/// Example rows shown for each reject or failure group.
pub const EXAMPLES: usize = 5;

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub job_name: String,
    pub job_file: String,
    pub job_sha256: String,
    pub run_id: String,
    pub run_dir: String,
    pub kind: JobKind,
    pub status: RunStatus,
    pub resumable: bool,
    pub started_at: Timestamp,
    /// When it finished, or (stopped, running) when it last did something.
    pub ended_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// How many times it was resumed.
    pub resumes: u64,
    pub requests: u64,
    pub retries: u64,
    pub body: KindData,
    pub timeline: Timeline,
}

#[derive(Debug, Clone)]
pub enum KindData {
    Import(ImportData),
    Export(ExportData),
}

#[derive(Debug, Clone)]
pub struct ImportData {
    pub counts: Counts,
    pub batches_done: u64,
    pub batches_in_doubt: Vec<u64>,
    /// Rejected rows by (field, rule), the largest group first.
    pub rejects: Vec<Group>,
    /// Failed rows by error code, the largest group first.
    pub failures: Vec<Group>,
}

/// Rows that went wrong the same way, with a few of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `field / rule` of a reject; the error code of a failure.
    pub field: String,
    pub rule: String,
    pub count: u64,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub row: u64,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ExportData {
    pub pages: u64,
    pub customers: u64,
    pub all_pages_written: bool,
    pub output: String,
    /// The sub-windows of a parallel export (one, the whole query, otherwise).
    pub windows: Vec<WindowData>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowData {
    pub start_time: String,
    pub end_time: String,
    pub pages: u64,
    pub customers: u64,
}

/// What happened when, from `events.jsonl`: times are milliseconds since the run began.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The last event's time: the charts' time axis runs from 0 to it.
    pub span_ms: i64,
    /// Rows answered (imports: created or failed; exports: customers on a page).
    pub rows: Vec<(i64, u64)>,
    /// Each retry, with why.
    pub retries: Vec<(i64, String)>,
    /// Each bisection (a whole batch failed for one record: its halves are sent again).
    pub bisections: Vec<i64>,
    /// Where the run was resumed (a gap before it is time it did not run).
    pub resumes: Vec<i64>,
}

impl ReportData {
    /// Read the run in `dir`.
    pub fn read(dir: &Path) -> Result<ReportData> {
        let manifest = runner::begin::read_manifest(dir)?;
        let (events, _) = journal::read_all::<Event>(&dir.join(run_dir::EVENTS))
            .map_err(|e| Error::io("cannot read the journal", e))?;
        let timeline = Timeline::of(&manifest, &events);
        let (head, requests, retries, body) = match manifest.kind.job_kind() {
            JobKind::BatchCreate => {
                let s = import::status::read(dir, &manifest)?;
                let body = KindData::Import(ImportData {
                    counts: s.counts,
                    batches_done: s.batches_done,
                    batches_in_doubt: s.batches_in_doubt,
                    rejects: rejects(dir)?,
                    failures: failures(dir)?,
                });
                (s.head, s.requests, s.retries, body)
            }
            JobKind::QueryExport => {
                let s = export::status::read(dir, &manifest)?;
                let body = KindData::Export(ExportData {
                    pages: s.pages,
                    customers: s.rows,
                    all_pages_written: s.all_pages_written,
                    output: if s.head.status == RunStatus::Finished {
                        s.output.clone()
                    } else {
                        s.partial.clone()
                    }
                    .unwrap_or_default(),
                    windows: windows(&manifest, &events),
                });
                (s.head, s.pages, s.retries, body)
            }
        };
        Ok(ReportData {
            job_name: job_name(&manifest),
            job_file: manifest.job_path.clone(),
            job_sha256: manifest.job_sha256.clone(),
            run_id: head.run_id,
            run_dir: head.run_dir,
            kind: head.kind,
            status: head.status,
            resumable: head.resumable,
            // To the nanosecond (`started_at` is whole seconds, for templates).
            started_at: manifest.began_at,
            ended_at: head.finished_at.or(head.last_event_at),
            last_error: head.last_error.as_deref().map(cut),
            resumes: events
                .iter()
                .filter(|e| matches!(e, Event::Resumed { .. }))
                .count() as u64,
            requests,
            retries,
            body,
            timeline,
        })
    }
}

/// The job's `name`, from the job text the run recorded (the file may have changed since).
fn job_name(manifest: &Manifest) -> String {
    crate::job::yaml::parse(&manifest.job_text)
        .ok()
        .and_then(|(doc, _)| doc.get("name").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// A message as the report may show it: at most [`MESSAGE_CHARS`] characters.
pub fn cut(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        None => message.to_string(),
        Some((at, _)) => format!("{}…", &message[..at]),
    }
}

/// Groups rows by key, counting all and keeping the first [`EXAMPLES`] of each.
#[derive(Default)]
struct Grouper {
    groups: BTreeMap<(String, String), (u64, Vec<Example>)>,
}

impl Grouper {
    fn add(&mut self, field: String, rule: String, row: u64, message: &str) {
        let (count, examples) = self.groups.entry((field, rule)).or_default();
        *count += 1;
        if examples.len() < EXAMPLES {
            examples.push(Example {
                row,
                message: cut(message),
            });
        }
    }

    fn into_groups(self) -> Vec<Group> {
        let mut out: Vec<Group> = self
            .groups
            .into_iter()
            .map(|((field, rule), (count, examples))| Group {
                field,
                rule,
                count,
                examples,
            })
            .collect();
        // Largest first; ties keep the key order.
        out.sort_by_key(|g| std::cmp::Reverse(g.count));
        out
    }
}

/// Each committed line of one result file as JSON.
fn each_line(dir: &Path, outcome: RowOutcome, mut f: impl FnMut(&Value)) -> Result<()> {
    let name = outcome.file_name();
    let lines = results::committed(dir, outcome)
        .map_err(|e| Error::io(format!("cannot read {name}"), e))?;
    for line in lines {
        let (_, text) = line.map_err(|e| Error::io(format!("cannot read {name}"), e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{name}: a line is not JSON: {e}")))?;
        f(&v);
    }
    Ok(())
}

/// Rejected rows by field and rule: only `row` and each error's field, rule and message.
fn rejects(dir: &Path) -> Result<Vec<Group>> {
    let mut g = Grouper::default();
    each_line(dir, RowOutcome::Rejected, |v| {
        let row = v["row"].as_u64().unwrap_or_default();
        for e in v["errors"].as_array().into_iter().flatten() {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            g.add(text("field"), text("rule"), row, &text("message"));
        }
    })?;
    Ok(g.into_groups())
}

/// Failed rows by error code: only `row`, `error_code` and `error_message`.
fn failures(dir: &Path) -> Result<Vec<Group>> {
    let mut g = Grouper::default();
    each_line(dir, RowOutcome::Failed, |v| {
        let code = v["error_code"]
            .as_i64()
            .map_or_else(String::new, |c| c.to_string());
        g.add(
            code,
            String::new(),
            v["row"].as_u64().unwrap_or_default(),
            v["error_message"].as_str().unwrap_or_default(),
        );
    })?;
    Ok(g.into_groups())
}

/// An export's windows as the manifest rendered them, with what the journal's pages say
/// each wrote.
fn windows(manifest: &Manifest, events: &[Event]) -> Vec<WindowData> {
    let KindRecord::QueryExport(rec) = &manifest.kind else {
        return Vec::new();
    };
    let mut out: Vec<WindowData> = if rec.windows.is_empty() {
        let bound = |k: &str| rec.request[k].as_str().unwrap_or_default().to_string();
        vec![WindowData {
            start_time: bound("start_time"),
            end_time: bound("end_time"),
            pages: 0,
            customers: 0,
        }]
    } else {
        rec.windows
            .iter()
            .map(|w| WindowData {
                start_time: w.start_time.clone(),
                end_time: w.end_time.clone(),
                pages: 0,
                customers: 0,
            })
            .collect()
    };
    for e in events {
        if let Event::Page {
            window, customers, ..
        } = e
            && let Some(w) = out.get_mut(window.unwrap_or(0))
        {
            w.pages += 1;
            w.customers += customers;
        }
    }
    out
}

impl Timeline {
    fn of(manifest: &Manifest, events: &[Event]) -> Timeline {
        let origin = events.first().map_or(manifest.began_at, Event::at);
        let ms = |at: Timestamp| (at.as_millisecond() - origin.as_millisecond()).max(0);
        let mut t = Timeline::default();
        for e in events {
            let at = ms(e.at());
            t.span_ms = t.span_ms.max(at);
            match e {
                Event::Outcome {
                    answer: Answer::Answered { created, failed },
                    ..
                } => t.rows.push((at, (created.len() + failed.len()) as u64)),
                Event::Page { customers, .. } => t.rows.push((at, *customers)),
                // Both kinds journal every retry as it happens (an export's page also
                // counts its attempts: not counted again here).
                Event::Retry { reason, .. } => t.retries.push((at, cut(reason))),
                Event::Bisect { .. } => t.bisections.push(at),
                Event::Resumed { .. } => t.resumes.push(at),
                _ => {}
            }
        }
        t
    }

    /// Retries by reason, the most frequent first.
    pub fn retry_reasons(&self) -> Vec<(String, u64)> {
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, reason) in &self.retries {
            *by.entry(reason).or_default() += 1;
        }
        let mut out: Vec<(String, u64)> = by.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.1));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_to_200_characters_on_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = cut(&long);
        assert_eq!(cut.chars().count(), MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(super::cut("short"), "short");
    }

    #[test]
    fn groups_count_every_row_and_keep_a_few_examples_largest_first() {
        let mut g = Grouper::default();
        for row in 1..=8 {
            g.add("email".into(), "format".into(), row, "bad");
        }
        g.add("full_name".into(), "required".into(), 9, "empty");
        let groups = g.into_groups();
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.field.as_str(), g.count, g.examples.len()))
                .collect::<Vec<_>>(),
            vec![("email", 8, EXAMPLES), ("full_name", 1, 1)]
        );
        assert_eq!(groups[0].examples[0].row, 1);
    }
}
