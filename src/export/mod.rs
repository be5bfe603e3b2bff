//! Query exports: page through the customers a query selects and write them to a file,
//! checkpointing after every page, so that a run killed at any instant resumes with no
//! customer missing and none written twice.
//!
//! The order of writes is the whole design. For each page: append its lines to the partial
//! output and fsync; then replace the checkpoint (cursor, pages, rows, output length)
//! atomically. A resume cuts the output back to the checkpointed length and asks for the
//! page after the checkpointed cursor again. When the last page is in, the partial file is
//! renamed into place, and only then is `state.json` written for the next run.

pub mod format;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::client::ApiError;
use crate::api::connect;
use crate::api::wire::QueryResult;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::job::model::OutputFormat;
use crate::query::{self, ExportContext};
use crate::run::atomic;
use crate::run::events::{Event, now};
use crate::run::journal::{self, Journal};
use crate::run::lock::JobLock;
use crate::run::progress::Progress;
use crate::run::run_dir::{self, ExportCheckpoint, ExportRecord, Manifest, RunDir};
use crate::run::start::{self, Reopened, RunOptions};
use format::Encoder;

/// What an export reports, also written as `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportSummary {
    pub run_id: String,
    pub run_dir: String,
    pub kind: String,
    pub status: String,
    /// Customers written to the output.
    pub rows: u64,
    pub pages: u64,
    /// Requests this invocation sent, and retries among them.
    pub requests: u64,
    pub retries: u64,
    /// The finished file (once renamed into place), or the partial one.
    pub output: String,
    /// The state file, when this export advanced it.
    pub state_file: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub elapsed_secs: f64,
    pub stopped_reason: Option<String>,
}

/// `cdpjob run JOB` for a query_export job.
pub fn run(job: &Job, opts: &RunOptions) -> Result<i32> {
    let begun = start::begin(job, opts)?;
    let manifest = match prepare(job, &begun) {
        Ok(m) => m,
        Err(e) => {
            // Nothing was written in it yet: leave no empty run directory behind.
            let _ = std::fs::remove_dir(&begun.dir.path);
            return Err(e);
        }
    };
    start::write_manifest(&begun.dir, &manifest, opts)?;
    // On stderr even with --json: a scheduler's log is where this must be seen.
    for dir in unfinished_exports(&start::job_root(job), &begun.dir.path) {
        eprintln!(
            "warning: the export {} did not finish; until it is resumed its window is not in the state, and this run covers it again (`cdpjob resume {}`)",
            dir.display(),
            dir.display()
        );
    }
    execute(job, &begun.dir, &manifest, opts, begun.lock, false)
}

/// Earlier export runs of this job that stopped and were never resumed to the end.
fn unfinished_exports(root: &Path, this: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d != this && d.join(run_dir::MANIFEST).exists())
        .filter(|d| {
            run_dir::read_json::<Manifest>(&d.join(run_dir::MANIFEST))
                .is_ok_and(|m| m.export.is_some())
        })
        .filter(|d| {
            !run_dir::read_json::<ExportSummary>(&d.join(run_dir::SUMMARY))
                .is_ok_and(|s| s.status == "finished")
        })
        .collect();
    found.sort();
    found
}

/// Render the query and the output path for this run, and check the output is free.
fn prepare(job: &Job, begun: &start::Begun) -> Result<Manifest> {
    let output_spec = job
        .spec
        .output
        .as_ref()
        .ok_or_else(|| Error::Usage("a query_export job needs an output".into()))?;
    // Absolute: a resume may run from another working directory.
    let state_file = absolute(&query::state_path(job))?;
    let state = query::read_state(&state_file).map_err(Error::Usage)?;
    let ctx = ExportContext {
        run_id: begun.run_id.clone(),
        started_at: begun.started_at.clone(),
        state: state.clone(),
    };
    let (request, output) = query::render_query(job, &ctx).map_err(|errs| {
        Error::Usage(format!(
            "{}: the query does not render:\n  {}",
            job.path.display(),
            errs.join("\n  ")
        ))
    })?;
    let output = absolute(&job.resolve(&output))?;
    if output.exists() {
        return Err(Error::Usage(format!(
            "{} already exists, and an export never overwrites a file: move it away, or put {{{{ run.id }}}} in output.path",
            output.display()
        )));
    }
    let file_name = output
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a file name", output.display())))?
        .to_string_lossy()
        .into_owned();
    let partial = output.with_file_name(format!(".{file_name}.{}.partial", begun.run_id));
    let window_end = query::window_end(&request);
    let columns = match (&output_spec.format, &output_spec.columns) {
        (OutputFormat::Csv, Some(c)) => c.clone(),
        (OutputFormat::Csv, None) => format::SCALAR_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        (OutputFormat::Jsonl, _) => Vec::new(),
    };
    let max_records = job
        .spec
        .query
        .as_ref()
        .and_then(|q| q.get("max_records"))
        .and_then(Value::as_u64);
    if let Some(dir) = output.parent() {
        run_dir::create_private_dir(dir)
            .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut manifest = start::manifest(
        job,
        begun,
        run_dir::SourceFingerprint {
            path: String::new(),
            size: 0,
            sha256: String::new(),
        },
    );
    manifest.export = Some(ExportRecord {
        request,
        output: output.display().to_string(),
        partial: partial.display().to_string(),
        format: output_spec.format,
        columns,
        max_records,
        state_file: state_file.display().to_string(),
        state_read: state,
        window_end,
    });
    Ok(manifest)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Usage(format!("cannot resolve {}: {e}", p.display())))?;
    Ok(crate::source::resolve_path(&cwd, &p.to_string_lossy()))
}

/// `cdpjob resume RUN_DIR` for an export.
pub fn resume(run: Reopened, opts: &RunOptions) -> Result<i32> {
    if let Some(summary) = start::already_finished::<ExportSummary>(&run, opts, |s| &s.status) {
        report(&summary, opts);
        return Ok(exit_code(&summary));
    }
    execute(&run.job, &run.dir, &run.manifest, opts, run.lock, true)
}

fn execute(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    opts: &RunOptions,
    _lock: JobLock,
    resuming: bool,
) -> Result<i32> {
    start::runtime()?.block_on(execute_async(job, dir, manifest, opts, resuming))
}

/// Why an export stopped before its end.
struct Stop(String);

async fn execute_async(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    opts: &RunOptions,
    resuming: bool,
) -> Result<i32> {
    let started = Instant::now();
    let durable = crate::run::atomic::durable();
    let rec = manifest
        .export
        .as_ref()
        .ok_or_else(|| Error::Usage("this run directory holds no export".into()))?;
    let fail = start::stopped;
    let checkpoint_path = dir.file(run_dir::CHECKPOINT);
    let mut cp: ExportCheckpoint = match run_dir::read_json(&checkpoint_path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ExportCheckpoint::default(),
        Err(e) => return Err(fail("cannot read the checkpoint", e)),
    };
    let partial = PathBuf::from(&rec.partial);
    let output = PathBuf::from(&rec.output);
    // The checkpoint alone decides what is done in an export; its journal is a log for
    // people and `status`, not worth an fsync a page.
    let mut journal = Journal::open(&dir.file(run_dir::EVENTS), false)
        .map_err(|e| fail("cannot open the journal", e))?;
    let log = |j: &mut Journal, event: &Event| {
        j.append(event).map_err(|e| fail("writing the journal", e))
    };
    log(
        &mut journal,
        &if resuming {
            Event::Resumed { at: now() }
        } else {
            Event::RunStarted {
                run_id: manifest.run_id.clone(),
                at: now(),
            }
        },
    )?;
    let encoder = Encoder::new(rec.format, &rec.columns);
    let conn = connect::connect(job).await?;
    let retries = Arc::new(AtomicU64::new(0));
    {
        let retries = Arc::clone(&retries);
        conn.client.on_retry(move |_| {
            retries.fetch_add(1, Ordering::Relaxed);
        });
    }
    let mut requests = 0u64;
    let mut stop: Option<Stop> = None;
    let mut shutdown = Box::pin(start::shutdown_signal());
    let mut progress = Progress::new(opts.json, None, None);
    let rows_before = cp.rows;

    if !cp.complete {
        let mut out = atomic::open_at_length(&partial, cp.output_len)
            .map_err(|e| start::reopen_failed("cannot open the partial output", e))?;
        if cp.output_len == 0
            && let Some(d) = partial.parent()
        {
            // The new file's name must outlive a power cut as surely as its first page.
            atomic::sync_dir(d).map_err(|e| fail("syncing the output directory", e))?;
        }
        while !cp.complete {
            let mut body = rec.request.clone();
            if let Some(after) = cp.after {
                body["after"] = Value::from(after);
            }
            requests += 1;
            // A query only reads: one interrupted mid-flight is simply asked again.
            let reply = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    stop = Some(Stop("interrupted by a signal".into()));
                    break;
                }
                r = conn.client.query(&body) => r,
            };
            let reply = match reply {
                Ok(r) if r.code == 0 => r,
                Ok(r) => {
                    stop = Some(Stop(query_refused(r.code, &r.message.unwrap_or_default())));
                    break;
                }
                Err(ApiError::Refused { code, message, .. }) if code == 1002 => {
                    stop = Some(Stop(query_refused(code, &message)));
                    break;
                }
                Err(e) => {
                    stop = Some(Stop(e.advice_for_a_run()));
                    break;
                }
            };
            let attempts = reply.attempts;
            // An answer that makes no sense stops the export (resumable) rather than ending
            // it early: ending would rename a short file and advance the state past
            // customers never written.
            let Some(QueryResult {
                paging,
                mut customer_list,
            }) = reply.data
            else {
                stop = Some(Stop(
                    "the API answered the query without data; the export stopped and can be resumed".into(),
                ));
                break;
            };
            let more = paging.next.is_some();
            if customer_list.is_empty() && more {
                stop = Some(Stop(
                    "the API answered an empty page that has a next page; the export stopped and can be resumed".into(),
                ));
                break;
            }
            let room = rec
                .max_records
                .map_or(u64::MAX, |m| m.saturating_sub(cp.rows));
            // Reaching max_records ends the export; it cut the query short when the page
            // held more, or more pages were to come.
            let reached = customer_list.len() as u64 >= room;
            let dropped = customer_list.len() as u64 > room;
            if reached {
                customer_list.truncate(room as usize);
            }
            let complete = !more || reached;
            let asked = cp.after;
            let last_id = customer_list.last().and_then(format::id_of);
            let next_after = paging.after.or(last_id);
            let moves_forward = match (next_after, asked) {
                (Some(next), Some(asked)) => next > asked,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !complete && !moves_forward {
                // Ids ascend: a cursor that does not move forward would page forever, or
                // back over customers already written.
                stop = Some(Stop(format!(
                    "the API's paging cursor did not move forward (asked after {asked:?}, got {next_after:?}); the export stopped to avoid a loop"
                )));
                break;
            }
            let mut buf = if cp.output_len == 0 {
                encoder.header()
            } else {
                Vec::new()
            };
            encoder.encode(&customer_list, &mut buf);
            out.write_all(&buf)
                .and_then(|()| if durable { out.sync_data() } else { Ok(()) })
                .map_err(|e| fail(&format!("writing {}", partial.display()), e))?;
            crate::failpoint!("export_before_checkpoint");
            cp.pages += 1;
            cp.rows += customer_list.len() as u64;
            cp.output_len += buf.len() as u64;
            cp.last_id = last_id.or(cp.last_id);
            cp.capped = reached && (dropped || more);
            cp.complete = complete;
            cp.after = next_after.or(cp.after);
            run_dir::write_json_atomic(&checkpoint_path, &cp)
                .map_err(|e| fail("writing the checkpoint", e))?;
            log(
                &mut journal,
                &Event::Page {
                    page: cp.pages,
                    after: asked,
                    customers: customer_list.len() as u64,
                    next: paging.next,
                    attempts,
                    at: now(),
                },
            )?;
            let rate = progress.rate(cp.rows - rows_before);
            progress.tick(|| {
                format!(
                    "{} customers, {} pages, {rate:.0} customers/s, {} retries",
                    cp.rows,
                    cp.pages,
                    retries.load(Ordering::Relaxed)
                )
            });
        }
    }
    progress.finish();

    let mut state_written = None;
    if stop.is_none() {
        crate::failpoint!("export_before_rename");
        finish_output(&partial, &output, cp.output_len, durable)?;
        crate::failpoint!("export_before_state");
        let moved_on = state_moved_on(rec, &manifest.run_id)?;
        if let Some(why) = &moved_on {
            if !opts.json {
                eprintln!("note: {why}");
            }
        } else if cp.capped {
            if !opts.json {
                eprintln!(
                    "note: max_records ({}) ended the export before the end of the query; {} is left as it was, so the next run covers the same window",
                    rec.max_records.unwrap_or_default(),
                    rec.state_file
                );
            }
        } else {
            let state = next_state(rec, &cp, manifest);
            query::write_state(Path::new(&rec.state_file), &state)
                .map_err(|e| fail(&format!("writing {}", rec.state_file), e))?;
            state_written = Some(rec.state_file.clone());
        }
        log(
            &mut journal,
            &Event::ExportFinished {
                rows: cp.rows,
                pages: cp.pages,
                output: rec.output.clone(),
                at: now(),
            },
        )?;
    } else if let Some(Stop(reason)) = &stop {
        let _ = log(
            &mut journal,
            &Event::Stopped {
                reason: reason.clone(),
                at: now(),
            },
        );
    }
    let summary = ExportSummary {
        run_id: manifest.run_id.clone(),
        run_dir: dir.path.display().to_string(),
        kind: "query_export".into(),
        status: if stop.is_none() {
            "finished"
        } else {
            "interrupted"
        }
        .into(),
        rows: cp.rows,
        pages: cp.pages,
        requests,
        retries: retries.load(Ordering::Relaxed),
        output: if stop.is_none() {
            rec.output.clone()
        } else {
            rec.partial.clone()
        },
        state_file: state_written,
        started_at: manifest.started_at.clone(),
        finished_at: now(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        stopped_reason: stop.map(|s| s.0),
    };
    run_dir::write_json_atomic(&dir.file(run_dir::SUMMARY), &summary)
        .map_err(|e| fail("writing the summary", e))?;
    if let Some(sim) = conn.sim {
        sim.stop().await;
    }
    report(&summary, opts);
    Ok(exit_code(&summary))
}

/// A refused query: the request was rendered when the run started and is kept in its
/// manifest, so resuming sends it again unchanged — a new run is what a fixed job needs.
fn query_refused(code: i64, message: &str) -> String {
    format!(
        "the API refused the query: code {code}: {message}; the query was rendered when this run started and a resume sends it unchanged: fix the job's query block and start a new run"
    )
}

/// Move the complete partial file into place, never over another file: a hard link fails
/// when the target exists (a plain rename would replace it silently), then the partial name
/// goes. Idempotent across a crash at any point in between.
fn finish_output(partial: &Path, output: &Path, len: u64, durable: bool) -> Result<()> {
    let taken = |what: &str| {
        Error::Usage(format!(
            "{} {what}; this export's file is kept as {}: move one of them, then `cdpjob resume` again",
            output.display(),
            partial.display()
        ))
    };
    let io = |e: std::io::Error| {
        Error::Stopped(format!(
            "moving the export into {}: {e}; the run can be resumed",
            output.display()
        ))
    };
    match std::fs::metadata(partial) {
        Ok(meta) => {
            if meta.len() < len {
                return Err(Error::Usage(format!(
                    "{} holds {} bytes, fewer than the {len} the checkpoint counts: it was changed since; start a new run",
                    partial.display(),
                    meta.len()
                )));
            }
            let f = OpenOptions::new().write(true).open(partial).map_err(io)?;
            f.set_len(len).map_err(io)?;
            if durable {
                f.sync_all().map_err(io)?;
            }
            drop(f);
            match std::fs::hard_link(partial, output) {
                Ok(()) => {
                    crate::failpoint!("export_after_link");
                    std::fs::remove_file(partial).map_err(io)?;
                }
                // A crash after the link and before the unlink leaves both names on one file.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !same_file(partial, output).map_err(io)? {
                        return Err(taken("appeared since this export started"));
                    }
                    std::fs::remove_file(partial).map_err(io)?;
                }
                // A file system without hard links: rename, having just looked.
                Err(_) if !output.exists() => std::fs::rename(partial, output).map_err(io)?,
                Err(_) => return Err(taken("appeared since this export started")),
            }
            if let Some(d) = output.parent() {
                atomic::sync_dir(d).map_err(io)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::metadata(output) {
            // Already moved by an earlier attempt that stopped before the state.
            Ok(meta) if meta.len() == len => Ok(()),
            Ok(_) => Err(taken(
                "is not the file this export wrote (its length differs)",
            )),
            Err(e) => Err(Error::Usage(format!(
                "neither {} nor {} can be read ({e}): the export's file was removed; start a new run",
                partial.display(),
                output.display()
            ))),
        },
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Whether this export may write the state: not when another run has advanced it since
/// this one read it (a late resume must not move the window backwards).
fn state_moved_on(rec: &ExportRecord, run_id: &str) -> Result<Option<String>> {
    let now = query::read_state(Path::new(&rec.state_file)).map_err(Error::Usage)?;
    // Unchanged, or changed by this very run (a resume after a crash that followed the
    // state's write): write it (again).
    if now == rec.state_read || now.get("run_id").and_then(Value::as_str) == Some(run_id) {
        return Ok(None);
    }
    let theirs = now
        .get("last_end_time")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Some(format!(
        "{} changed since this export started (another run recorded last_end_time {theirs:?}); it is left as it is, so this late export does not move the next window backwards",
        rec.state_file
    )))
}

/// The state the next run reads: the window this one covered and where it ended.
fn next_state(
    rec: &ExportRecord,
    cp: &ExportCheckpoint,
    manifest: &Manifest,
) -> Map<String, Value> {
    let mut state = Map::new();
    // Without an end_time the window had no end: keep the previous end rather than claim one.
    if let Some(end) = rec
        .window_end
        .clone()
        .map(Value::from)
        .or_else(|| rec.state_read.get("last_end_time").cloned())
    {
        state.insert("last_end_time".into(), end);
    }
    // An empty window leaves the previous last id standing.
    let last_id = cp
        .last_id
        .map(Value::from)
        .or_else(|| rec.state_read.get("last_id").cloned())
        .unwrap_or(Value::Null);
    state.insert("last_id".into(), last_id);
    state.insert("run_id".into(), Value::from(manifest.run_id.clone()));
    state.insert("rows".into(), Value::from(cp.rows));
    state.insert("output".into(), Value::from(rec.output.clone()));
    state.insert("finished_at".into(), Value::from(now()));
    state
}

fn exit_code(s: &ExportSummary) -> i32 {
    if s.status == "finished" { 0 } else { 3 }
}

fn report(s: &ExportSummary, opts: &RunOptions) {
    if opts.json {
        println!("{}", serde_json::to_string_pretty(s).expect("serializes"));
        return;
    }
    println!("run {}: {} in {:.1}s", s.run_id, s.status, s.elapsed_secs);
    println!(
        "exported {} customer{} in {} page{}; requests {}, retries {}",
        s.rows,
        plural(s.rows),
        s.pages,
        plural(s.pages),
        s.requests,
        s.retries
    );
    if let Some(r) = &s.stopped_reason {
        println!("stopped: {r}");
        println!("resume with: cdpjob resume {}", s.run_dir);
    }
    println!("run directory: {}", s.run_dir);
    println!("output: {}", s.output);
    if let Some(state) = &s.state_file {
        println!("state for the next run: {state}");
    }
}

pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The export part of `cdpjob status`.
pub fn status_report(dir: &Path, manifest: &Manifest) -> std::io::Result<Value> {
    let cp: ExportCheckpoint =
        run_dir::read_json(&dir.join(run_dir::CHECKPOINT)).unwrap_or_default();
    let summary: Option<ExportSummary> = run_dir::read_json(&dir.join(run_dir::SUMMARY)).ok();
    let (events, _) = journal::read_all::<Event>(&dir.join(run_dir::EVENTS))?;
    let mut last_error = None;
    let mut last_event = None;
    let mut retries_logged = 0u64;
    for e in &events {
        match e {
            Event::Stopped { reason, at } => {
                last_error = Some(reason.clone());
                last_event = Some(at.clone());
            }
            Event::Page { attempts, at, .. } => {
                retries_logged += u64::from(attempts.saturating_sub(1));
                last_event = Some(at.clone());
            }
            Event::RunStarted { at, .. }
            | Event::Resumed { at }
            | Event::ExportFinished { at, .. } => last_event = Some(at.clone()),
            _ => {}
        }
    }
    let rec = manifest.export.as_ref();
    Ok(serde_json::json!({
        "run_id": manifest.run_id,
        "kind": "query_export",
        "job": manifest.job_path,
        "pages": cp.pages,
        "rows": cp.rows,
        "cursor": cp.after,
        "output_bytes": cp.output_len,
        "all_pages_written": cp.complete,
        "retries": retries_logged,
        "output": rec.map(|r| r.output.clone()),
        "partial": rec.map(|r| r.partial.clone()),
        "request": rec.map(|r| r.request.clone()),
        "last_error": last_error,
        "started_at": manifest.started_at,
        "last_event_at": last_event,
        "finished": summary.as_ref().is_some_and(|s| s.status == "finished"),
        "finished_at": summary.as_ref().filter(|s| s.status == "finished").map(|s| s.finished_at.clone()),
    }))
}
