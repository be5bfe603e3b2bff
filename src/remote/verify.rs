//! `cdpjob verify RUN_DIR`: read back the customers an import created — all, or a seeded
//! sample — each by its match key, and compare what is stored with what the run sent, as
//! the run's merge mode must have left it (SPEC §9, §12 R15). What was sent is in each
//! created line (`customer`), so the source may have changed or gone since.
//!
//! Exit 0 when every customer matches, 1 on any mismatch, 3 when the API failed: the
//! customers checked so far are kept in `verify.jsonl` and the next verify continues after
//! them. Lookups run `api.concurrency` at a time through the client (its retries, its rate
//! limit). No lock is taken: a finished run can be verified while another run of the job
//! runs.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use super::compare;
use super::lookup::Lookups;
use super::progress::{self, Checked, Line, Mismatch, Progress, Selection, Verdict};
use super::sample::{self, Reservoir};
use super::table;
use crate::api::client::ApiError;
use crate::connection;
use crate::customer::Customer;
use crate::error::{Again, Error, Result};
use crate::import::results::{self, RowOutcome};
use crate::job::model::Merge;
use crate::run_dir::{KindRecord, Manifest};
use crate::runner::Outcome;
use crate::runner::begin;

/// What `verify` was asked.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub run_dir: PathBuf,
    pub sample: Option<u64>,
    pub seed: Option<u64>,
    pub json: bool,
}

/// A created line: its row, the customer's id, and where the line is (what was sent is read
/// when its turn comes, so "all" of a large run costs a few bytes a customer).
#[derive(Debug, Clone, Copy)]
struct Entry {
    row: u64,
    customer_id: i64,
    offset: u64,
}

/// How a sample was drawn.
#[derive(Debug, Clone, Serialize)]
pub struct SampleInfo {
    pub size: u64,
    pub seed: u64,
}

/// One mismatch as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct MismatchLine {
    pub row: u64,
    pub customer_id: i64,
    pub field: String,
    pub sent: Option<String>,
    pub stored: Option<String>,
}

/// What `verify` found, over this verify and the one it continued.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_dir: String,
    pub resumable: bool,
    pub merge: &'static str,
    /// Customers the run created (its committed created lines).
    pub created: u64,
    /// The sample checked; none when every created customer was.
    pub sample: Option<SampleInfo>,
    pub checked: u64,
    pub matched: u64,
    pub mismatched: u64,
    /// Sent without whats_app_phone, sms_phone or email: nothing to look them up by.
    pub no_match_key: u64,
    /// Of `checked`, those an earlier verify that stopped had checked.
    pub continued: u64,
    /// The query requests this verify sent.
    pub requests: u64,
    /// Fields sent that the query endpoint does not return (R14): never compared.
    pub unverifiable: Vec<String>,
    pub mismatches: Vec<MismatchLine>,
    /// Where the progress is kept.
    pub progress: String,
}

impl Report {
    pub fn outcome(&self) -> Outcome {
        if self.mismatched > 0 {
            Outcome::RowsNotCreated
        } else {
            Outcome::Done
        }
    }
}

/// The merge mode the run sent with: the job as the manifest pinned it, not as it is now.
fn merge_of(manifest: &Manifest) -> Merge {
    crate::job::yaml::parse(&manifest.job_text)
        .ok()
        .and_then(|(doc, _)| doc.get("merge").cloned())
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default()
}

/// Every committed created line's row, id and offset.
fn created_entries(dir: &Path) -> Result<Vec<Entry>> {
    let lines = results::committed(dir, RowOutcome::Created)
        .map_err(|e| Error::io("cannot read created.jsonl", e))?;
    let path = lines.path.clone();
    let mut entries = Vec::new();
    for line in lines {
        let (offset, text) = line.map_err(|e| Error::io("cannot read created.jsonl", e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: a line is not JSON: {e}", path.display())))?;
        let (Some(row), Some(customer_id)) = (v["row"].as_u64(), v["customer_id"].as_i64()) else {
            return Err(Error::Usage(format!(
                "{}: a line without row or customer_id: {text}",
                path.display()
            )));
        };
        if !v["customer"].is_object() {
            return Err(Error::Usage(format!(
                "{}: row {row} does not record what was sent (`customer`): the run was made by a cdpjob from before `verify`; verify a run made by this one",
                path.display()
            )));
        }
        entries.push(Entry {
            row,
            customer_id,
            offset,
        });
    }
    Ok(entries)
}

/// The customer a created line says was sent.
fn sent_customer(line: &str) -> std::result::Result<Customer, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let obj = v["customer"].as_object().ok_or("no `customer` object")?;
    Customer::from_json(obj).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// One customer checked against what `merge` makes of what was sent.
async fn check(
    lookups: &Lookups<'_>,
    merge: Merge,
    entry: Entry,
    sent: &Customer,
) -> std::result::Result<(Checked, u32), ApiError> {
    let lookup = lookups.find(sent).await?;
    let mut checked = Checked {
        row: entry.row,
        customer_id: entry.customer_id,
        result: Verdict::Match,
        mismatches: Vec::new(),
        unverifiable: Vec::new(),
    };
    if lookup.key.is_none() {
        checked.result = Verdict::NoMatchKey;
        return Ok((checked, lookup.requests));
    }
    match lookup.customer(Some(entry.customer_id)) {
        None => checked.mismatches.push(Mismatch {
            field: "customer_id".into(),
            sent: Some(entry.customer_id.to_string()),
            stored: None,
        }),
        Some(stored) => {
            let stored_id = stored.get("id").and_then(Value::as_i64);
            if stored_id != Some(entry.customer_id) {
                // The key leads to another customer than the one the run created.
                checked.mismatches.push(Mismatch {
                    field: "customer_id".into(),
                    sent: Some(entry.customer_id.to_string()),
                    stored: stored_id.map(|i| i.to_string()),
                });
            }
            let comparison = compare::compare(merge, sent, stored);
            checked.unverifiable = comparison
                .unverifiable
                .iter()
                .map(|f| f.to_string())
                .collect();
            checked
                .mismatches
                .extend(comparison.differences.into_iter().map(|d| Mismatch {
                    field: d.field,
                    sent: d.sent,
                    stored: d.stored,
                }));
        }
    }
    if !checked.mismatches.is_empty() {
        checked.result = Verdict::Mismatch;
    }
    Ok((checked, lookup.requests))
}

/// What one step of the lookups gave.
enum Step {
    Checked(Checked, u32),
    /// The API failed: no new lookup starts, those in flight finish.
    Failed(ApiError),
    /// Not started: the verify is stopping.
    Skipped,
    /// The created line could not be read back.
    Unreadable(String),
}

/// Which customers this verify checks: those of the verify that stopped when this one asks
/// for the same (then also what it checked), else a new selection — every created customer,
/// or a seeded sample of them.
fn select(
    req: &VerifyRequest,
    merge: Merge,
    entries: &[Entry],
    earlier: progress::Earlier,
) -> (Selection, Option<Vec<Checked>>) {
    if let Some(s) = &earlier.selection
        && !earlier.finished
    {
        if s.sample == req.sample && req.seed.is_none_or(|seed| s.seed == Some(seed)) {
            return (s.clone(), Some(earlier.checked));
        }
        if !req.json {
            eprintln!(
                "note: an earlier verify of another selection stopped before its end; this one starts over"
            );
        }
    }
    let seed = req
        .sample
        .map(|_| req.seed.unwrap_or_else(sample::fresh_seed));
    let rows = req.sample.zip(seed).map(|(n, seed)| {
        let mut r = Reservoir::new(n as usize, seed);
        entries.iter().for_each(|e| r.push(e.row));
        let mut rows = r.into_items();
        rows.sort_unstable();
        rows
    });
    let selection = Selection {
        merge: merge.as_str().to_string(),
        sample: req.sample,
        seed,
        rows,
        at: jiff::Timestamp::now(),
    };
    (selection, None)
}

pub fn verify(req: &VerifyRequest) -> Result<Report> {
    let dir = &req.run_dir;
    let manifest = begin::read_manifest(dir)?;
    if !matches!(manifest.kind, KindRecord::BatchCreate { .. }) {
        return Err(Error::Usage(format!(
            "{} is an export's run: verify reads back the customers an import created",
            dir.display()
        )));
    }
    let merge = merge_of(&manifest);
    let job = begin::job_of(&manifest)?;
    if job.send_hash != manifest.job_sha256 && !req.json {
        eprintln!(
            "note: {} changed since the run in what it sends; verify compares with what the run sent, under its merge {}",
            manifest.job_path,
            merge.as_str()
        );
    }
    let entries = created_entries(dir)?;
    let earlier = progress::read(dir)
        .map_err(|e| Error::io(format!("cannot read {}", progress::path(dir).display()), e))?;

    let (selection, earlier_checked) = select(req, merge, &entries, earlier);
    let continuing = earlier_checked.is_some();
    let mut results = earlier_checked.unwrap_or_default();
    let continued = results.len() as u64;
    let done: HashSet<u64> = results.iter().map(|c| c.row).collect();
    let wanted: Option<HashSet<u64>> = selection.rows.as_ref().map(|r| r.iter().copied().collect());
    let todo: Vec<Entry> = entries
        .iter()
        .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.row)))
        .filter(|e| !done.contains(&e.row))
        .copied()
        .collect();

    let progress_path = progress::path(dir);
    let progress = if continuing {
        Progress::resume(dir)
    } else {
        Progress::start(dir, selection.clone())
    }
    .map_err(|e| Error::io(format!("cannot write {}", progress_path.display()), e))?;

    let created_path = dir.join(crate::run_dir::CREATED);
    let file = File::open(&created_path)
        .map_err(|e| Error::io(format!("cannot read {}", created_path.display()), e))?;
    let created_file = Mutex::new(BufReader::new(file));
    let stopping = AtomicBool::new(false);
    let concurrency = job.spec.api.concurrency.max(1);

    let (requests, failure) = begin::runtime()?.block_on(async {
        let conn = connection::connect(&job).await?;
        let lookups = Lookups {
            client: &conn.client,
            tenant_id: job.spec.api.tenant_id,
            app_key: &job.spec.api.app_key,
        };
        let (lookups, stopping, created_file) = (&lookups, &stopping, &created_file);
        let mut steps = futures_util::stream::iter(todo)
            .map(|entry| async move {
                if stopping.load(Ordering::SeqCst) {
                    return Step::Skipped;
                }
                let line = {
                    let mut f = created_file.lock().expect("created file lock");
                    results::line_at(&mut f, entry.offset)
                };
                let sent = match line
                    .map_err(|e| e.to_string())
                    .and_then(|l| sent_customer(&l))
                {
                    Ok(c) => c,
                    Err(e) => {
                        stopping.store(true, Ordering::SeqCst);
                        return Step::Unreadable(format!("row {}: {e}", entry.row));
                    }
                };
                match check(lookups, merge, entry, &sent).await {
                    Ok((c, n)) => Step::Checked(c, n),
                    Err(e) => {
                        stopping.store(true, Ordering::SeqCst);
                        Step::Failed(e)
                    }
                }
            })
            .buffer_unordered(concurrency);
        let mut requests = 0u64;
        let mut failure: Option<Error> = None;
        while let Some(step) = steps.next().await {
            match step {
                Step::Checked(c, n) => {
                    requests += u64::from(n);
                    if let Err(e) = progress.checked(&c) {
                        stopping.store(true, Ordering::SeqCst);
                        failure.get_or_insert(Error::io(
                            format!("cannot write {}", progress_path.display()),
                            e,
                        ));
                    }
                    results.push(c);
                }
                Step::Failed(e) => {
                    failure.get_or_insert(match e {
                        ApiError::Config(m) => Error::Usage(m),
                        other => Error::stopped(other.to_string(), Again::RunAgain),
                    });
                }
                Step::Unreadable(m) => {
                    failure.get_or_insert(Error::Usage(format!("{}: {m}", created_path.display())));
                }
                Step::Skipped => {}
            }
        }
        drop(steps);
        if let Some(sim) = conn.sim {
            sim.stop().await;
        }
        let last = match &failure {
            Some(e) => Line::Stopped {
                reason: e.to_string(),
                at: jiff::Timestamp::now(),
            },
            None => Line::Finished {
                at: jiff::Timestamp::now(),
            },
        };
        if let Err(e) = progress.end(last).await {
            failure.get_or_insert(Error::io(
                format!("cannot write {}", progress_path.display()),
                e,
            ));
        }
        Ok::<_, Error>((requests, failure))
    })?;
    if let Some(e) = failure {
        let selected = selection.rows.as_ref().map_or(entries.len(), Vec::len);
        let again = match &e {
            Error::Stopped { .. } => format!(
                "; {} of {selected} customer(s) checked so far are kept in {}: `cdpjob verify {}` again continues after them",
                results.len(),
                progress_path.display(),
                dir.display()
            ),
            _ => String::new(),
        };
        return Err(match e {
            Error::Stopped { reason, again: a } => Error::Stopped {
                reason: format!("verify stopped: {reason}{again}"),
                again: a,
            },
            other => other,
        });
    }
    Ok(report(
        dir,
        merge,
        entries.len() as u64,
        &selection,
        results,
        continued,
        requests,
        &progress_path,
    ))
}

#[allow(clippy::too_many_arguments)]
fn report(
    dir: &Path,
    merge: Merge,
    created: u64,
    selection: &Selection,
    mut results: Vec<Checked>,
    continued: u64,
    requests: u64,
    progress: &Path,
) -> Report {
    results.sort_by_key(|c| c.row);
    let count = |v: Verdict| results.iter().filter(|c| c.result == v).count() as u64;
    let unverifiable: BTreeSet<String> = results
        .iter()
        .flat_map(|c| c.unverifiable.iter().cloned())
        .collect();
    Report {
        run_dir: dir.display().to_string(),
        resumable: false,
        merge: merge.as_str(),
        created,
        sample: selection
            .sample
            .zip(selection.seed)
            .map(|(size, seed)| SampleInfo { size, seed }),
        checked: results.len() as u64,
        matched: count(Verdict::Match),
        mismatched: count(Verdict::Mismatch),
        no_match_key: count(Verdict::NoMatchKey),
        continued,
        requests,
        unverifiable: unverifiable.into_iter().collect(),
        mismatches: results
            .iter()
            .flat_map(|c| {
                c.mismatches.iter().map(|m| MismatchLine {
                    row: c.row,
                    customer_id: c.customer_id,
                    field: m.field.clone(),
                    sent: m.sent.clone(),
                    stored: m.stored.clone(),
                })
            })
            .collect(),
        progress: progress.display().to_string(),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut o = format!(
            "verify {}: merge {}, {} created customer(s)",
            self.run_dir, self.merge, self.created
        );
        match &self.sample {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "; a sample of {} (seed {}: `--sample {} --seed {}` draws it again)",
                    s.size, s.seed, s.size, s.seed
                );
            }
            None => o.push_str("; all of them\n"),
        }
        let earlier = if self.continued > 0 {
            format!(" ({} by the verify this one continued)", self.continued)
        } else {
            String::new()
        };
        let _ = write!(
            o,
            "checked {}{earlier}: {} match, {} mismatch",
            self.checked, self.matched, self.mismatched
        );
        if self.no_match_key > 0 {
            let _ = write!(
                o,
                ", {} without a match key (not looked up)",
                self.no_match_key
            );
        }
        o.push('\n');
        if !self.mismatches.is_empty() {
            let mut rows = vec![vec![
                "row".to_string(),
                "customer id".to_string(),
                "field".to_string(),
                "sent".to_string(),
                "stored".to_string(),
            ]];
            for m in &self.mismatches {
                let stored_absent = if m.field == "customer_id" {
                    "(not found by its match key)"
                } else {
                    "(empty)"
                };
                rows.push(vec![
                    m.row.to_string(),
                    m.customer_id.to_string(),
                    m.field.clone(),
                    m.sent.clone().unwrap_or_else(|| "(not sent)".into()),
                    m.stored.clone().unwrap_or_else(|| stored_absent.into()),
                ]);
            }
            o.push_str(&table::render(&rows));
        }
        if !self.unverifiable.is_empty() {
            let _ = writeln!(
                o,
                "not compared: {} (the query endpoint does not return them)",
                self.unverifiable.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "{} query request(s); progress in {}",
            self.requests, self.progress
        );
        f.write_str(&o)
    }
}
