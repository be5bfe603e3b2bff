//! `cdpjob retry RUN_DIR`: a new run of the job RUN_DIR's manifest names, as that file is
//! now (its mapping may have been fixed, an agent added), whose rows are RUN_DIR's failed
//! and rejected records mapped again (SPEC §7, §12 R9).
//!
//! It is an import like any other — its own run directory, journal, checkpoint, lock and
//! resume — except for where its rows come from: the records are copied, in row order,
//! into its directory before it starts (`retry-input.jsonl`), and that copy is its source
//! from then on, resumes included, whatever becomes of RUN_DIR. Its result lines keep the
//! original row numbers. A row that was never read as a record (`"raw"`) has nothing to map
//! again: it is counted as not retryable and left out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::customer::Rule;
use crate::error::{Again, Error, Result};
use crate::import::results::{self, RowOutcome};
use crate::import::{self, Import};
use crate::job::model::{JobKind, VarOverrides};
use crate::job::paths::absolute;
use crate::job::{self, Job};
use crate::run_dir::{self, KindRecord, Manifest, RetryOf, RetryRows, RunDir, atomic, lock};
use crate::runner::{self, Begun, Outcome, RunOptions};
use crate::source::records::{self, CopiedRow};
use crate::source::{Record, RecordSource};
use crate::{plan, rows};

/// What `cdpjob retry` was asked.
#[derive(Debug, Clone)]
pub struct RetryRequest {
    pub run_dir: PathBuf,
    pub rows: RetryRows,
    pub json: bool,
    /// `-q`: no progress and no informational lines.
    pub quiet: bool,
    pub vars: VarOverrides,
    pub dry_run: bool,
    /// `--metrics-file`, as for any run.
    pub metrics_file: Option<PathBuf>,
}

/// `cdpjob retry`.
pub fn retry(req: &RetryRequest) -> Result<Outcome> {
    let old = runner::begin::read_manifest(&req.run_dir)?;
    let KindRecord::BatchCreate { columns, .. } = &old.kind else {
        return Err(Error::Usage(format!(
            "{} is an export's run directory: only an import's rows can be retried",
            req.run_dir.display()
        )));
    };
    if lock::held_for(&old.lock, &absolute(&req.run_dir)) {
        return Err(Error::stopped(
            format!(
                "the run {} is still in progress: retry it once it has ended",
                req.run_dir.display()
            ),
            Again::RunAgain,
        ));
    }
    let selection = Selection::read(&req.run_dir, &old, req.rows)?;
    let mut job = load_job(&old, &req.vars)?;
    if let Some(shard) = &old.shard {
        // A shard's rows: what the retry creates goes into that shard's sync state, where
        // the shard's next run looks (a row that had no match key before and has one now
        // may belong to another shard by its key: that shard sends it once more).
        job.paths.sync_dir = shard.sync_dir(&job.paths.sync_dir);
    }
    let retry_of = RetryOf {
        run_dir: absolute(&req.run_dir),
        run_id: old.run_id.clone(),
        rows: req.rows,
        failed: selection.failed,
        rejected: selection.rejected,
        not_retryable: selection.not_retryable.len() as u64,
    };
    if selection.entries.is_empty() {
        nothing_to_retry(&retry_of, &selection, req.json);
        return Ok(Outcome::Done);
    }
    if req.dry_run {
        return dry_run(&job, selection, columns.clone(), &retry_of, req.json);
    }
    let opts = RunOptions {
        run_dir: None,
        json: req.json,
        quiet: req.quiet,
        force: false,
        full: false,
        metrics_file: req.metrics_file.clone(),
        shard: None,
    };
    let columns = columns.clone();
    // The max_rejected pre-pass over the rows this retry takes (a "fix" that breaks more
    // of them is refused before anything is sent, as for any run).
    let label = label_of(&retry_of);
    let (taken, header) = (selection.clone(), records::csv_header(columns.clone()));
    let preflight = move |job: &Job, opts: &RunOptions| {
        import::guard::check_rejected(job, !opts.informs(), || {
            let rows = Box::new(SelectedRows {
                selection: taken,
                header,
            });
            plan::count_records(job, rows, &label, 0)
        })
    };
    runner::start_with::<Import>(
        &job,
        &opts,
        preflight,
        move |job: &Job, begun: &Begun, opts: &RunOptions| {
            // A retry compares with the sync state like any run of the job (SPEC §7).
            let sync = crate::import::changes::prepare(job, opts)?;
            let source = selection
                .copy_into(&begun.dir)
                .map_err(|e| Error::io("cannot copy the rows to retry", e))?;
            Ok(KindRecord::BatchCreate {
                source,
                columns,
                retry_of: Some(Box::new(retry_of)),
                sync,
                encoding: None,
                spool: None,
            })
        },
    )
}

/// The job file the old run names, as it is now, with the old run's vars and `--var` over
/// them.
fn load_job(old: &Manifest, vars: &VarOverrides) -> Result<Job> {
    let mut overrides: VarOverrides = old
        .vars
        .iter()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            (k.clone(), text)
        })
        .collect();
    overrides.extend(vars.clone());
    let job = job::load(Path::new(&old.job_path), &overrides).map_err(|e| Error::Job(vec![*e]))?;
    if job.spec.kind != JobKind::BatchCreate {
        return Err(Error::Usage(format!(
            "{} is now a {} job: only a batch_create job can retry rows",
            old.job_path,
            job.spec.kind.as_str()
        )));
    }
    Ok(job)
}

/// No record to retry: say so, and that no run was started (exit 0, no run directory).
fn nothing_to_retry(retry_of: &RetryOf, selection: &Selection, json: bool) {
    if json {
        let mut doc = run_dir::versioned(&serde_json::json!({ "retry_of": retry_of }));
        doc["run_dir"] = Value::Null;
        doc["resumable"] = false.into();
        let text = serde_json::to_string_pretty(&doc).expect("serializes") + "\n";
        let _ = io::stdout().lock().write_all(text.as_bytes());
        return;
    }
    let not = &selection.not_retryable;
    let unreadable = if not.is_empty() {
        String::new()
    } else {
        format!(
            "; {} row{} (row{} {}) cannot be retried: never read as a record, or rejected as a duplicate match key",
            not.len(),
            runner::summary::plural(not.len() as u64),
            runner::summary::plural(not.len() as u64),
            listed(not)
        )
    };
    println!(
        "nothing to retry: run {} has no {} record{unreadable}; no run was started",
        retry_of.run_id,
        match retry_of.rows {
            RetryRows::Failed => "failed",
            RetryRows::Rejected => "rejected",
            RetryRows::Both => "failed or rejected",
        }
    );
}

/// `retry --dry-run`: the plan of the retry, from the old run's files (nothing is copied).
fn dry_run(
    job: &Job,
    selection: Selection,
    columns: Option<Vec<String>>,
    retry_of: &RetryOf,
    json: bool,
) -> Result<Outcome> {
    let source = Box::new(SelectedRows {
        selection,
        header: records::csv_header(columns),
    });
    let mut p = plan::plan_records(job, source, label_of(retry_of), 5)?;
    // A retry's rows are a selection, not the source: nothing is missing from them (R9).
    if let Some(s) = &mut p.sync {
        s.missing_since_last_sync = None;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if json {
        let mut doc = run_dir::versioned(&p);
        doc["retry_of"] = serde_json::to_value(retry_of).expect("serializes");
        doc["run_dir"] = Value::Null;
        doc["resumable"] = false.into();
        let _ = out
            .write_all((serde_json::to_string_pretty(&doc).expect("serializes") + "\n").as_bytes());
    } else {
        let _ = out.write_all(p.render_human(job).as_bytes());
        let _ = out.write_all(import::retry_line(retry_of).as_bytes());
    }
    Ok(Outcome::Done)
}

/// What a retry's rows are, for messages and its plan.
fn label_of(retry_of: &RetryOf) -> String {
    format!(
        "the records of run {} ({})",
        retry_of.run_id,
        retry_of.run_dir.display()
    )
}

/// Up to ten row numbers, then "…".
fn listed(rows: &[u64]) -> String {
    let mut text: Vec<String> = rows.iter().take(10).map(u64::to_string).collect();
    if rows.len() > 10 {
        text.push("…".into());
    }
    text.join(", ")
}

/// The rows a retry takes of a run: where each record's line is, in row order. Only the
/// positions are held (a few dozen bytes a row), not the lines.
#[derive(Debug, Clone)]
struct Selection {
    dir: PathBuf,
    entries: Vec<Entry>,
    failed: u64,
    rejected: u64,
    /// Rows of the kinds taken that were never read as records.
    not_retryable: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    row: u64,
    outcome: RowOutcome,
    offset: u64,
}

impl Selection {
    /// The committed failed and/or rejected lines of the run in `dir`. A line with neither
    /// `record` nor `raw` was written before result lines kept records: refused, naming
    /// the cdpjob that wrote it.
    fn read(dir: &Path, manifest: &Manifest, rows: RetryRows) -> Result<Selection> {
        let mut selection = Selection {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            failed: 0,
            rejected: 0,
            not_retryable: Vec::new(),
        };
        let kinds = [
            (RowOutcome::Failed, rows.takes_failed()),
            (RowOutcome::Rejected, rows.takes_rejected()),
        ];
        for (outcome, taken) in kinds {
            if !taken {
                continue;
            }
            let lines = results::committed(dir, outcome)
                .map_err(|e| Error::io("cannot read the run's result files", e))?;
            let path = lines.path.clone();
            for line in lines {
                let (offset, text) =
                    line.map_err(|e| Error::io("cannot read the run's result files", e))?;
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    Error::Usage(format!(
                        "{}: the line at byte {offset} is not JSON ({e}): the run directory is damaged",
                        path.display()
                    ))
                })?;
                let Some(row) = v["row"].as_u64() else {
                    return Err(Error::Usage(format!(
                        "{}: the line at byte {offset} has no row number: the run directory is damaged",
                        path.display()
                    )));
                };
                // A duplicate match key (R7) is the earlier row's customer: retried alone it
                // would be sent over that customer and flip the sync state. The source needs
                // fixing, not a retry.
                let duplicate = outcome == RowOutcome::Rejected
                    && v["errors"].as_array().is_some_and(|errors| {
                        !errors.is_empty()
                            && errors
                                .iter()
                                .all(|e| e["rule"] == Rule::DuplicateKey.as_str())
                    });
                if duplicate {
                    selection.not_retryable.push(row);
                } else if v["record"].is_object() {
                    selection.entries.push(Entry {
                        row,
                        outcome,
                        offset,
                    });
                    match outcome {
                        RowOutcome::Failed => selection.failed += 1,
                        _ => selection.rejected += 1,
                    }
                } else if v["raw"].is_string() {
                    selection.not_retryable.push(row);
                } else {
                    return Err(rows::without_records(manifest, &path));
                }
            }
        }
        selection.entries.sort_by_key(|e| e.row);
        selection.not_retryable.sort_unstable();
        Ok(selection)
    }

    /// Every selected row, in row order, as copied: `each` returns false to stop.
    fn for_each(&self, each: &mut dyn FnMut(CopiedRow) -> bool) -> io::Result<()> {
        let mut files: BTreeMap<&'static str, BufReader<File>> = BTreeMap::new();
        for e in &self.entries {
            let name = e.outcome.file_name();
            let file = match files.entry(name) {
                std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(BufReader::new(File::open(self.dir.join(name))?))
                }
            };
            let line = results::line_at(file, e.offset)?;
            let mut v: Value = serde_json::from_str(&line).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{name} changed while it was read: {err}"),
                )
            })?;
            let Value::Object(record) = v["record"].take() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{name} changed while it was read"),
                ));
            };
            // The line it started on in the original source, so the retry's result lines
            // say it too (SPEC §12 R13).
            let line = v["line"].as_u64();
            if !each(CopiedRow {
                row: e.row,
                line,
                record,
            }) {
                break;
            }
        }
        Ok(())
    }

    /// Write the copy into the new run's directory — a temporary file made durable, then
    /// renamed into place — and return its fingerprint (what a resume checks it against).
    fn copy_into(&self, dir: &RunDir) -> io::Result<run_dir::SourceFingerprint> {
        let path = dir.file(run_dir::RETRY_INPUT);
        let partial = dir.file(&format!("{}.partial", run_dir::RETRY_INPUT));
        let mut out = io::BufWriter::new(atomic::create_private(&partial)?);
        let mut failed = Ok(());
        self.for_each(&mut |row| {
            failed = serde_json::to_writer(&mut out, &row)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            failed.is_ok()
        })?;
        failed?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if atomic::durable() {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&partial, &path)?;
        if atomic::durable() {
            atomic::sync_dir(&dir.path)?;
        }
        run_dir::fingerprint(&path)
    }
}

/// The selection read as a source, straight from the old run's files (`--dry-run`).
struct SelectedRows {
    selection: Selection,
    header: Option<std::sync::Arc<crate::source::Header>>,
}

impl RecordSource for SelectedRows {
    fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let header = self.header.clone();
        self.selection
            .for_each(&mut |row| sink(row.into_record(header.as_ref())))
    }
}
