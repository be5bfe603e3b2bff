//! The query_export kind of run: page through the customers a query selects and write them
//! to a file, checkpointing after every page, so that a run killed at any instant resumes
//! with no customer missing and none written twice.
//!
//! The order of writes is the whole design. For each page: append its lines to the partial
//! output and fsync; then replace the checkpoint (cursor, pages, rows, output length)
//! atomically. A resume cuts the output back to the checkpointed length and asks for the
//! page after the checkpointed cursor again. When the last page is in, the partial file is
//! renamed into place, and only then is `state.json` written for the next run.

mod checkpoint;
mod finish;
pub mod format;
mod pager;
mod seen;
pub mod status;
pub mod window;
pub mod xlsx;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use checkpoint::ExportCheckpoint;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::job::model::OutputFormat;
use crate::job::paths::absolute;
use crate::query::{self, ExportContext};
use crate::run_dir::{self, ExportRecord, KindRecord, RunDir};
use crate::runner::summary::plural;
use crate::runner::{
    self, Begun, Context, Detail, Driven, Reopened, RunKind, RunOptions, RunStatus, Stop, Summary,
};

/// The query_export kind.
#[derive(Debug)]
pub struct Export;

/// What an export adds to its summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportDetail {
    /// Customers written to the output.
    pub rows: u64,
    pub pages: u64,
    /// The finished file (once renamed into place), or the partial one.
    pub output: String,
    /// The state file, when this export advanced it.
    pub state_file: Option<String>,
}

impl Detail for ExportDetail {
    fn rows_not_created(&self) -> bool {
        false
    }

    fn render_counts(&self, requests: u64, retries: u64) -> String {
        format!(
            "exported {} customer{} in {} page{}; requests {requests}, retries {retries}\n",
            self.rows,
            plural(self.rows),
            self.pages,
            plural(self.pages),
        )
    }

    fn rows_by_outcome(&self) -> crate::runner::metrics::Rows {
        vec![("exported", self.rows)]
    }

    fn render_files(&self) -> String {
        let mut out = format!("output: {}\n", self.output);
        if let Some(state) = &self.state_file {
            out.push_str(&format!("state for the next run: {state}\n"));
        }
        out
    }
}

impl RunKind for Export {
    type Detail = ExportDetail;
    // The checkpoint alone decides what is done in an export; its journal is a log for
    // people and `status`, not worth an fsync a page.
    const DURABLE_JOURNAL: bool = false;

    fn rows_so_far(dir: &Path) -> crate::runner::metrics::Rows {
        // With sub-windows `checkpoint.json` is written once they are joined: until then
        // the count is that of the last whole checkpoint.
        let cp = runner::read_checkpoint_at::<checkpoint::ExportCheckpoint>(
            &dir.join(run_dir::CHECKPOINT),
        )
        .unwrap_or_default();
        vec![("exported", cp.rows)]
    }

    fn prepare(job: &Job, begun: &Begun, _opts: &RunOptions) -> Result<KindRecord> {
        prepare_record(job, begun).map(|r| KindRecord::QueryExport(Box::new(r)))
    }

    fn announce(job: &Job, _manifest: &run_dir::Manifest, dir: &RunDir, _opts: &RunOptions) {
        // On stderr even with --json: a scheduler's log is where this must be seen.
        for other in unfinished_exports(&job.paths.job_root, &dir.path) {
            eprintln!(
                "warning: the export {} did not finish; until it is resumed its window is not in the state, and this run covers it again (`cdpjob resume {}`)",
                other.display(),
                other.display()
            );
        }
    }

    fn check_resume(run: &Reopened, _opts: &RunOptions) -> Result<()> {
        match &run.manifest.kind {
            KindRecord::QueryExport(_) => Ok(()),
            KindRecord::BatchCreate { .. } => {
                Err(run.refusal("this run directory holds no export".into()))
            }
        }
    }

    async fn drive(ctx: &mut Context<'_>) -> Driven<ExportDetail> {
        let KindRecord::QueryExport(rec) = &ctx.manifest.kind else {
            return Driven {
                detail: ExportDetail::default(),
                stop: Some(Stop::not_resumable("this run directory holds no export")),
            };
        };
        let mut detail = ExportDetail {
            output: rec.partial.clone(),
            ..ExportDetail::default()
        };
        let mut cp = ExportCheckpoint::default();
        let stop = match page_every_window(ctx, rec, &mut cp).await {
            Ok(()) => finish(ctx, rec, &cp, &mut detail).await.err(),
            Err(stop) => Some(stop),
        };
        detail.rows = cp.rows;
        detail.pages = cp.pages;
        Driven { detail, stop }
    }
}

/// Page every window, `parallel` at a time; with sub-windows, join them into the partial
/// output once all are complete. `cp` ends as the whole export's checkpoint.
async fn page_every_window(
    ctx: &Context<'_>,
    rec: &ExportRecord,
    cp: &mut ExportCheckpoint,
) -> Result<(), Stop> {
    let windows = window::windows(rec, ctx.dir);
    let pager = pager::Pager::new(ctx, rec);
    if rec.windows.is_empty() {
        let paged = match pager.open(&windows[0]) {
            Ok(opened) => pager.page(&windows[0], opened).await,
            Err(stop) => Err(stop),
        };
        return match paged {
            Ok(done) => {
                *cp = done;
                Ok(())
            }
            Err(stop) => {
                *cp = pager.committed();
                Err(stop)
            }
        };
    }
    *cp = runner::read_checkpoint(ctx.dir)?;
    if cp.complete {
        return Ok(()); // joined already: what is left is moving it into place
    }
    let mut opened = Vec::with_capacity(windows.len());
    for w in &windows {
        opened.push(Some(pager.open(w)?));
    }
    // K workers take the windows from one queue, in time order.
    let queue = std::sync::Mutex::new(windows.iter().zip(opened).collect::<Vec<_>>());
    let finished = std::sync::Mutex::new(vec![None; windows.len()]);
    let worker = || async {
        loop {
            let next = {
                let mut q = queue.lock().expect("queue lock");
                if q.is_empty() {
                    None
                } else {
                    Some(q.remove(0))
                }
            };
            let Some((w, opened)) = next else {
                return;
            };
            match pager.page(w, opened.expect("opened once")).await {
                Ok(c) => finished.lock().expect("finished lock")[w.index] = Some(c),
                Err(stop) => {
                    pager.halt(stop);
                    return;
                }
            }
        }
    };
    futures_util::future::join_all((0..rec.parallel.max(1)).map(|_| worker())).await;
    if let Some(stop) = pager.stopped() {
        *cp = pager.committed();
        return Err(stop);
    }
    let cps: Vec<ExportCheckpoint> = finished
        .into_inner()
        .expect("finished lock")
        .into_iter()
        .flatten()
        .collect();
    *cp = join_windows(rec, &windows, &cps, &pager.encoder, pager.seen.max_id())
        .map_err(|e| Stop::io(&format!("joining the windows into {}", rec.partial), &e))?;
    run_dir::write_versioned(&ctx.dir.file(run_dir::CHECKPOINT), &*cp)
        .map_err(|e| Stop::io("writing the checkpoint", &e))?;
    Ok(())
}

/// Write the header and every window's committed pages, in time order, into the partial
/// output, and make it durable. Idempotent: a crash here is mended by doing it again.
fn join_windows(
    rec: &ExportRecord,
    windows: &[window::Window],
    cps: &[ExportCheckpoint],
    encoder: &format::Encoder,
    max_id: Option<i64>,
) -> std::io::Result<ExportCheckpoint> {
    use std::io::{Read as _, Write as _};
    let partial = Path::new(&rec.partial);
    let mut out = run_dir::atomic::create_private(partial)?;
    out.set_len(0)?;
    let header = encoder.header();
    out.write_all(&header)?;
    let mut len = header.len() as u64;
    for (w, c) in windows.iter().zip(cps) {
        let mut part = std::fs::File::open(&w.partial)?.take(c.output_len);
        len += std::io::copy(&mut part, &mut out)?;
    }
    if run_dir::atomic::durable() {
        out.sync_all()?;
        if let Some(d) = partial.parent() {
            run_dir::atomic::sync_dir(d)?;
        }
    }
    Ok(ExportCheckpoint {
        rows: cps.iter().map(|c| c.rows).sum(),
        pages: cps.iter().map(|c| c.pages).sum(),
        output_len: len,
        last_id: max_id,
        complete: true,
        ..ExportCheckpoint::default()
    })
}

/// Once the output is in place: the files the windows wrote on the way are not needed.
fn clean_up(rec: &ExportRecord, dir: &RunDir) {
    let _ = std::fs::remove_file(seen::sidecar_of(Path::new(&rec.partial)));
    if !rec.windows.is_empty() {
        let _ = std::fs::remove_dir_all(dir.path.join("windows"));
    }
}

/// Every page is written: move the output into place and record the state.
async fn finish(
    ctx: &Context<'_>,
    rec: &ExportRecord,
    cp: &ExportCheckpoint,
    detail: &mut ExportDetail,
) -> Result<(), Stop> {
    let durable = run_dir::atomic::durable();
    crate::failpoint!("export_before_rename");
    if rec.format == OutputFormat::Xlsx {
        // The partial holds the rows: the workbook is written from it, then moves into place.
        xlsx::finish_workbook(ctx, rec, cp.output_len, durable).await?;
    } else {
        finish::finish_output(
            Path::new(&rec.partial),
            Path::new(&rec.output),
            cp.output_len,
            durable,
        )?;
    }
    detail.output = rec.output.clone();
    crate::failpoint!("export_before_state");
    let moved_on = finish::state_moved_on(rec, &ctx.manifest.run_id)?;
    if let Some(why) = &moved_on {
        if !ctx.quiet {
            eprintln!("note: {why}");
        }
    } else if cp.capped {
        if !ctx.quiet {
            eprintln!(
                "note: max_records ({}) ended the export before the end of the query; {} is left as it was, so the next run covers the same window",
                rec.max_records.unwrap_or_default(),
                rec.state_file
            );
        }
    } else {
        let state = finish::next_state(rec, cp, &ctx.manifest.run_id);
        query::write_state(Path::new(&rec.state_file), &state)
            .map_err(|e| Stop::io(&format!("writing {}", rec.state_file), &e))?;
        detail.state_file = Some(rec.state_file.clone());
    }
    clean_up(rec, ctx.dir);
    ctx.journal
        .append(&crate::run_dir::events::Event::ExportFinished {
            rows: cp.rows,
            pages: cp.pages,
            output: rec.output.clone(),
            at: crate::run_dir::events::now(),
        })
        .await
        .map_err(|e| Stop::io("writing the journal", &e))
}

/// Earlier export runs of this job that stopped and were never resumed to the end.
fn unfinished_exports(root: &Path, this: &Path) -> Vec<PathBuf> {
    runner::runs_of(root, this)
        .into_iter()
        .filter(|(_, m)| matches!(m.kind, KindRecord::QueryExport(_)))
        .filter(|(d, _)| {
            !run_dir::read_versioned::<Summary<ExportDetail>>(&d.join(run_dir::SUMMARY))
                .is_ok_and(|s| s.status == RunStatus::Finished)
        })
        .map(|(d, _)| d)
        .collect()
}

/// Render the query and the output path for this run, and check the output is free.
fn prepare_record(job: &Job, begun: &Begun) -> Result<ExportRecord> {
    let output_spec = job
        .spec
        .output
        .as_ref()
        .ok_or_else(|| Error::Usage("a query_export job needs an output".into()))?;
    // Absolute: a resume may run from another working directory.
    let state_file = absolute(&job.paths.export_state);
    let state = query::read_state(&state_file).map_err(Error::Usage)?;
    let ctx = ExportContext {
        run_id: begun.run_id.clone(),
        started_at: begun.started_at,
        state: state.clone(),
    };
    let (request, output) = query::render_query(job, &ctx).map_err(|errs| {
        Error::Usage(format!(
            "{}: the query does not render:\n  {}",
            job.path.display(),
            errs.join("\n  ")
        ))
    })?;
    let output = absolute(&job.resolve(&output));
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
    let columns = format::columns_for(output_spec);
    let max_records = job
        .spec
        .query
        .as_ref()
        .and_then(|q| q.get("max_records"))
        .and_then(Value::as_u64);
    let parallel = job.spec.parallel();
    let windows = if parallel > 1 {
        if max_records.is_some() {
            return Err(Error::Usage(
                "query.max_records cannot be used with query.parallel > 1".into(),
            ));
        }
        let bound = |key: &str| {
            request.get(key).and_then(Value::as_str).ok_or_else(|| {
                Error::Usage(format!(
                    "query.parallel > 1 needs query.{key}: the window to split"
                ))
            })
        };
        window::split(bound("start_time")?, bound("end_time")?, parallel).map_err(Error::Usage)?
    } else {
        Vec::new()
    };
    if let Some(dir) = output.parent() {
        run_dir::create_private_dir(dir)
            .map_err(|e| Error::Environment(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(ExportRecord {
        parallel,
        windows,
        request,
        output: output.display().to_string(),
        partial: partial.display().to_string(),
        format: output_spec.format,
        columns,
        bom: output_spec.bom,
        formula_guard: output_spec.formula_guard,
        max_records,
        state_file: state_file.display().to_string(),
        state_read: state,
        window_end,
    })
}
