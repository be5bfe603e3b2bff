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
pub mod status;
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

    fn prepare(job: &Job, begun: &Begun) -> Result<KindRecord> {
        prepare_record(job, begun).map(|r| KindRecord::QueryExport(Box::new(r)))
    }

    fn announce(job: &Job, dir: &RunDir) {
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
        let mut cp = ExportCheckpoint::default();
        let mut detail = ExportDetail {
            output: rec.partial.clone(),
            ..ExportDetail::default()
        };
        let stop = match pager::page_through(ctx, rec, &mut cp).await {
            Ok(()) => finish(ctx, rec, &cp, &mut detail).await.err(),
            Err(stop) => Some(stop),
        };
        detail.rows = cp.rows;
        detail.pages = cp.pages;
        Driven { detail, stop }
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
        if !ctx.json {
            eprintln!("note: {why}");
        }
    } else if cp.capped {
        if !ctx.json {
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
    if let Some(dir) = output.parent() {
        run_dir::create_private_dir(dir)
            .map_err(|e| Error::Environment(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(ExportRecord {
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
