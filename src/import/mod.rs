//! The batch_create kind of run: rows stream from the source into deterministic batches, up
//! to `concurrency` requests are in flight, every request is journaled (intent before,
//! outcome after), and a batch's results are appended to the result files and then
//! recorded in the checkpoint, in that order. A new run and a resume are this same code:
//! the checkpoint and the journal say what is done already.

pub mod batches;
pub mod changes;
mod checkpoint;
pub mod guard;
pub mod input;
mod ledger;
mod lines;
mod reader;
pub mod results;
mod sender;
pub mod shards;
mod spooling;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

pub use checkpoint::{Checkpoint, Counts};
use input::Input;
use ledger::{Ledger, Materialized, Results};
use reader::Reader;
use sender::Sender;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::job::model::SourceKind;
use crate::run_dir::events::Event;
use crate::run_dir::{self, KindRecord, RetryOf, RunDir, SourceFingerprint, atomic, journal};
use crate::runner::{
    self, Begun, Context, DRAIN_TIMEOUT, Detail, Driven, Reopened, RunKind, RunOptions, RunStatus,
    Stop, Summary,
};
use crate::source::SheetOptions;
use crate::source::TextOptions;

/// The batch_create kind.
#[derive(Debug)]
pub struct Import;

/// What an import adds to its summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportDetail {
    pub counts: Counts,
    pub files: ResultFiles,
    /// With `sync: changed`: customers of the sync state this run's source did not have
    /// (the API has no delete: nothing is done to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since_last_sync: Option<u64>,
    /// A retry's origin: the run it retries, what it took of it, and the rows it could not
    /// retry (never read as records). Absent from other runs' summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RetryOf>,
    /// A shard's run (SPEC §12 R19): which shard, and how many rows the whole source has
    /// (known once it was read to its end). `counts` are this shard's rows only: the
    /// others are outcomes of the other shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRows>,
}

/// What a shard's summary says of the rows it did not take.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRows {
    pub index: u32,
    pub count: u32,
    pub group: String,
    /// Rows of the whole source, every shard's; `None` when the run stopped before the end.
    pub source_rows: Option<u64>,
}

impl ShardRows {
    /// `shard 1 of 4 (group G): of 1000 source rows, 248 in this shard`.
    pub fn line(&self, in_shard: u64) -> String {
        let of = match self.source_rows {
            Some(n) => format!("of {n} source rows, {in_shard} in this shard"),
            None => format!("{in_shard} rows of this shard so far"),
        };
        format!(
            "shard {} of {} (group {}): {of}; the other rows are the other shards'\n",
            self.index, self.count, self.group
        )
    }
}

/// Where an import's rows ended up, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultFiles {
    pub created: PathBuf,
    pub failed: PathBuf,
    pub rejected: PathBuf,
}

impl ResultFiles {
    fn of(dir: &RunDir) -> ResultFiles {
        ResultFiles {
            created: dir.file(run_dir::CREATED),
            failed: dir.file(run_dir::FAILED),
            rejected: dir.file(run_dir::REJECTED),
        }
    }
}

impl Detail for ImportDetail {
    fn rows_not_created(&self) -> bool {
        self.counts.failed + self.counts.rejected > 0
    }

    fn render_counts(&self, requests: u64, retries: u64) -> String {
        let c = &self.counts;
        let missing = match self.missing_since_last_sync {
            Some(n) => format!("missing since the last sync {n}\n"),
            None => String::new(),
        };
        let mut out = self
            .shard
            .as_ref()
            .map(|s| s.line(c.rows))
            .unwrap_or_default();
        out += &format!(
            "rows {}: created {}, failed {}, rejected {}, skipped {}, unchanged {}\n{missing}requests {requests}, retries {retries}\n",
            c.rows, c.created, c.failed, c.rejected, c.skipped, c.unchanged
        );
        if let Some(r) = &self.retry_of {
            out.push_str(&retry_line(r));
        }
        out
    }

    fn rows_by_outcome(&self) -> runner::metrics::Rows {
        self.counts.by_outcome()
    }

    fn render_files(&self) -> String {
        format!(
            "failed rows:   {} ({})\nrejected rows: {} ({})\n",
            self.files.failed.display(),
            self.counts.failed,
            self.files.rejected.display(),
            self.counts.rejected
        )
    }
}

/// What a retry took of the run it retries, in one line.
pub fn retry_line(r: &RetryOf) -> String {
    format!(
        "retry of {}: {} failed and {} rejected row{} taken, {} not retryable (never read as a record, or a duplicate match key)\n",
        r.run_id,
        r.failed,
        r.rejected,
        runner::summary::plural(r.rejected),
        r.not_retryable
    )
}

impl RunKind for Import {
    type Detail = ImportDetail;
    const DURABLE_JOURNAL: bool = true;

    fn preflight(job: &Job, opts: &RunOptions) -> Result<()> {
        guard::pre_pass(job, !opts.informs())
    }

    fn rows_so_far(dir: &std::path::Path) -> runner::metrics::Rows {
        // Unreadable mid-write cannot happen (it is replaced atomically); before the first
        // checkpoint every count is 0.
        runner::read_checkpoint_at::<Checkpoint>(&dir.join(run_dir::CHECKPOINT))
            .map(|c| c.counts)
            .unwrap_or_default()
            .by_outcome()
    }

    fn prepare(job: &Job, begun: &Begun, opts: &RunOptions) -> Result<KindRecord> {
        let src = source_of(job).map_err(Error::Usage)?;
        let mut spool = None;
        let (source, columns, encoding) = if src.kind == SourceKind::Sql {
            let (source, record) = spooling::prepare(job, src, &begun.dir)?;
            spool = Some(record);
            // Keys in first-seen order, as for JSON: a CSV row could not hold a NULL.
            (source, None, None)
        } else if src.path == "-" {
            let source = SourceFingerprint {
                path: "-".into(),
                size: 0,
                content: run_dir::ContentHash::none(),
            };
            (source, None, None)
        } else {
            let path = job.resolve(&src.path);
            let source = run_dir::fingerprint(&path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            let columns = match src.kind {
                SourceKind::Csv => Some(
                    crate::source::csv_columns(src, &path)
                        .map_err(|e| Error::Usage(e.to_string()))?,
                ),
                SourceKind::Xlsx => Some(
                    crate::source::sheet_columns(&path, &SheetOptions::from_spec(src))
                        .map_err(|e| Error::Usage(e.to_string()))?,
                ),
                SourceKind::Jsonl | SourceKind::Json | SourceKind::Sql => None,
            };
            // A workbook is not text: no encoding to record.
            let encoding = match src.kind {
                SourceKind::Xlsx => None,
                _ => crate::source::text::describe(&path, TextOptions::of(src))
                    .map_err(|e| Error::Usage(e.to_string()))?
                    .map(|(_, picked)| picked.name().to_string()),
            };
            (source, columns, encoding)
        };
        let sync = changes::prepare(job, opts)?;
        Ok(KindRecord::BatchCreate {
            source,
            columns,
            retry_of: None,
            sync,
            encoding,
            spool,
        })
    }

    fn announce(job: &Job, manifest: &run_dir::Manifest, _dir: &RunDir, opts: &RunOptions) {
        // Said even with --json (on stderr, where a scheduler's log keeps it), not with -q.
        if let KindRecord::BatchCreate { sync: Some(s), .. } = &manifest.kind
            && !opts.quiet
        {
            changes::announce(job, s);
        }
    }

    fn check_resume(run: &Reopened, opts: &RunOptions) -> Result<()> {
        let KindRecord::BatchCreate {
            source: started, ..
        } = &run.manifest.kind
        else {
            return Err(run.refusal("this run directory holds no import".into()));
        };
        let input =
            Input::of(&run.job, &run.dir, &run.manifest.kind).map_err(|e| run.refusal(e))?;
        if input.is_stdin() {
            return Err(run.refusal(STDIN_ONCE.into()));
        }
        if let Some(record) = spooling::record_of(&run.manifest.kind) {
            // The spool is the source now: no --force brings another in (SPEC §12 R12).
            spooling::check_resume(&run.dir, started, record).map_err(|e| run.refusal(e))?;
            return match newer_finished_run(run) {
                Some(newer) if !opts.force => Err(run.refusal(newer_run_refusal(&newer))),
                _ => Ok(()),
            };
        }
        let same = started
            .is_of(input.path())
            .map_err(|e| Error::io("cannot read the source", e))?;
        if !same && !opts.force {
            return Err(run.refusal(format!(
                "the source {} changed since the run started (size or content); resuming would send different rows as the same batches. Start a new run, or pass --force",
                input.path().display()
            )));
        }
        if let Some(newer) = newer_finished_run(run)
            && !opts.force
        {
            return Err(run.refusal(newer_run_refusal(&newer)));
        }
        Ok(())
    }

    async fn drive(ctx: &mut Context<'_>) -> Driven<ImportDetail> {
        let mut committed = Checkpoint::default();
        let sync = match &ctx.manifest.kind {
            KindRecord::BatchCreate { sync, .. } => sync.clone(),
            KindRecord::QueryExport(_) => None,
        };
        // A sql source's rows are copied into the run directory before the first request.
        if let Err(s) = spooling::ensure(ctx.job, ctx.dir, ctx.manifest, &ctx.shutdown) {
            return Driven {
                detail: ImportDetail {
                    counts: committed.counts,
                    files: ResultFiles::of(ctx.dir),
                    missing_since_last_sync: None,
                    retry_of: None,
                    shard: shard_rows(ctx.manifest, None),
                },
                stop: Some(s),
            };
        }
        let input = Input::of(ctx.job, ctx.dir, &ctx.manifest.kind);
        let stdin = input.as_ref().is_ok_and(Input::is_stdin);
        let mut missing = None;
        let mut source_rows = None;
        let mut stop = match input {
            Ok(input) => {
                match schedule(ctx, input, &mut committed, sync.as_ref(), &mut source_rows).await {
                    Ok(m) => {
                        missing = m;
                        None
                    }
                    Err(s) => Some(s),
                }
            }
            Err(e) => Some(Stop::not_resumable(e)),
        };
        if stop.is_none()
            && let Some(record) = &sync
            && let Err(s) = changes::commit(
                ctx.job,
                ctx.dir,
                record,
                &ctx.manifest.run_id,
                ctx.manifest.began_at,
            )
        {
            stop = Some(s);
        }
        // A retry covers a selection of rows, not a source: nothing is missing from it (R9).
        if ctx.manifest.retry_of().is_some() {
            missing = None;
        }
        if stdin
            && let Some(s) = &mut stop
            && s.resumable
        {
            // Standard input cannot be read again: no resume continues this run.
            s.reason = format!("{}; {STDIN_ONCE}", s.reason);
            s.resumable = false;
        }
        Driven {
            detail: ImportDetail {
                counts: committed.counts,
                files: ResultFiles::of(ctx.dir),
                missing_since_last_sync: missing,
                retry_of: ctx.manifest.retry_of().cloned(),
                shard: shard_rows(ctx.manifest, source_rows.filter(|_| stop.is_none())),
            },
            stop,
        }
    }
}

/// A shard's line of the summary, with the source's rows when it was read to its end.
fn shard_rows(manifest: &run_dir::Manifest, source_rows: Option<u64>) -> Option<ShardRows> {
    manifest.shard.as_ref().map(|s| ShardRows {
        index: s.shard.index,
        count: s.shard.count,
        group: s.group.clone(),
        source_rows,
    })
}

/// Why a resume is refused when a newer run of the job has finished (SPEC §12 R4).
fn newer_run_refusal(newer: &std::path::Path) -> String {
    format!(
        "a newer run of this job, {}, has finished since this one started: resuming now would send this run's older values over its. Start a new run, or pass --force",
        newer.display()
    )
}

/// Why a run that read standard input cannot be resumed.
const STDIN_ONCE: &str =
    "this run read standard input, which cannot be read again: start a new run";

/// The source block of a batch_create job (`validate` makes sure there is one).
fn source_of(job: &Job) -> Result<&crate::source::SourceSpec, String> {
    job.spec
        .source
        .as_ref()
        .ok_or_else(|| "a batch_create job needs a source".to_string())
}

/// A batch_create run of the same job that began after `run` did and has finished (SPEC
/// §12 R4): what it sent is newer than what `run` would send now. Another shard of the same
/// N holds other customers (a customer's shard depends on its key and N alone, R19), so it
/// is no such run: a killed shard resumes after its siblings finished.
fn newer_finished_run(run: &Reopened) -> Option<PathBuf> {
    let disjoint = |other: &run_dir::Manifest| match (&run.manifest.shard, &other.shard) {
        (Some(a), Some(b)) => a.shard.count == b.shard.count && a.shard.index != b.shard.index,
        _ => false,
    };
    runner::runs_of(&run.job.paths.job_root, &run.dir.path)
        .into_iter()
        .filter(|(_, m)| {
            matches!(m.kind, KindRecord::BatchCreate { .. })
                && m.began_at > run.manifest.began_at
                && !disjoint(m)
        })
        .filter(|(d, _)| {
            run_dir::read_versioned::<Summary<ImportDetail>>(&d.join(run_dir::SUMMARY))
                .is_ok_and(|s| s.status == RunStatus::Finished)
        })
        .map(|(d, _)| d)
        .next_back()
}

/// How often answered batches are committed (result lines appended and made durable, the
/// checkpoint replaced): a commit costs three fsyncs and a rename whatever it holds, and
/// committing each batch as it was answered cost more CPU than sending it. An answered
/// batch's outcome is durable in the journal already, so a crash before its commit loses
/// nothing: the resume takes the outcome from there. At the end and on a stop, what is
/// answered is committed at once.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// A commit of answered batches on a blocking thread; it hands the ledger back.
type Committing = tokio::task::JoinHandle<(Ledger, std::io::Result<()>)>;

/// The scheduler: batches from the reader, `2 × concurrency` of them in progress, answered
/// ones committed in groups. `committed` follows the checkpoint on disk. With change
/// detection, returns how many of the state's customers the source lacked.
async fn schedule(
    ctx: &mut Context<'_>,
    input: Input,
    committed: &mut Checkpoint,
    sync: Option<&run_dir::SyncRecord>,
    source_rows: &mut Option<u64>,
) -> Result<Option<u64>, Stop> {
    let job = ctx.job;
    let durable = atomic::durable();
    *committed = runner::read_checkpoint(ctx.dir)?;
    let (events, _) = journal::read_all::<Event>(&ctx.dir.file(run_dir::EVENTS))
        .map_err(|e| Stop::io("cannot read the journal", &e))?;
    let results = Results::open(ctx.dir, committed)
        .map_err(|e| Stop::io("cannot open the result files", &e))?;
    let sender = Arc::new(Sender::new(
        job,
        events,
        Arc::clone(&ctx.journal),
        Arc::clone(&ctx.client),
        Arc::clone(&ctx.requests),
    ));
    let concurrency = job.spec.api.concurrency.max(1);
    let classifier = match sync {
        Some(record) => Some(changes::classifier(job, ctx.dir, record)?),
        None => None,
    };
    let shard = ctx.manifest.shard.as_ref().map(|s| s.shard);
    let mut reader = Reader::start(job, input, concurrency * 2 + 2, classifier, shard)?;

    // Twice as many batches in progress as requests allowed in flight (`Sender::slots`):
    // while `concurrency` requests wait on the API, as many more batches serialize, journal
    // their intent and wait for a slot, or journal an outcome — a slot never idles while a
    // batch gets ready.
    let mut in_flight: JoinSet<Result<Materialized, Stop>> = JoinSet::new();
    // `max_failed` counts from what is done already: a plain resume of a run it stopped
    // stops again before sending anything.
    let mut failed_watch = guard::FailedWatch::new(job.spec.guard.max_failed, &committed.counts);
    let mut stop: Option<Stop> = failed_watch.check();
    let mut source_done = false;
    let mut shutdown = ctx.shutdown.clone();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut progress = ctx.progress(reader.size, Some(Arc::clone(&reader.bytes_read)));
    let rows_before = committed.counts.rows;
    // Batches answered and not yet committed, and the commit running (it holds the ledger).
    let mut answered: Vec<Materialized> = Vec::new();
    let mut ledger = Some(Ledger {
        results,
        checkpoint: committed.clone(),
        checkpoint_path: ctx.dir.file(run_dir::CHECKPOINT),
        durable,
    });
    let mut committing: Option<Committing> = None;
    let mut next_commit = tokio::time::Instant::now();
    loop {
        let finishing = stop.is_some() || (source_done && in_flight.is_empty());
        if committing.is_none()
            && !answered.is_empty()
            && (finishing || tokio::time::Instant::now() >= next_commit)
            && let Some(mut l) = ledger.take()
        {
            next_commit = tokio::time::Instant::now() + COMMIT_INTERVAL;
            let batches = std::mem::take(&mut answered);
            committing = Some(tokio::task::spawn_blocking(move || {
                let result = l.commit(&batches);
                (l, result)
            }));
        }
        if (source_done || stop.is_some()) && in_flight.is_empty() && committing.is_none() {
            break;
        }
        if stop.is_some() && drain_deadline.is_none() {
            // Whatever stopped the run, requests in flight get the same grace, no more.
            drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            if !ctx.quiet {
                match sender.sending(concurrency) {
                    0 => eprintln!("stopping: no request in flight"),
                    n => eprintln!(
                        "stopping: waiting up to {}s for {n} request{} in flight",
                        DRAIN_TIMEOUT.as_secs(),
                        if n == 1 { "" } else { "s" }
                    ),
                }
            }
        }
        let deadline = drain_deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            _ = shutdown.requested(), if stop.is_none() => {
                sender.stopping.store(true, Ordering::SeqCst);
                stop = Some(Stop::resumable("interrupted by a signal"));
            }
            _ = tokio::time::sleep_until(deadline), if drain_deadline.is_some() && !in_flight.is_empty() => {
                // Requests still in flight stay "in doubt" and are resent on resume.
                in_flight.abort_all();
                while let Some(joined) = in_flight.join_next().await {
                    // One that finished just now still gets committed.
                    if let Ok(Ok(m)) = joined {
                        failed_watch.add(&m.counts);
                        answered.push(m);
                    }
                }
            }
            // Answered batches wait for the next commit.
            _ = tokio::time::sleep_until(next_commit), if committing.is_none() && !answered.is_empty() => {}
            done = async { committing.as_mut().expect("checked").await }, if committing.is_some() => {
                committing = None;
                let (l, result) = done.expect("a commit does not panic");
                match result {
                    Ok(()) => {
                        *committed = l.checkpoint.clone();
                        ledger = Some(l);
                    }
                    Err(e) => {
                        // The checkpoint on disk is the last good one; nothing more is
                        // committed (the ledger stays away), and nothing more is sent.
                        sender.stopping.store(true, Ordering::SeqCst);
                        stop.get_or_insert(Stop::io("writing the result files and the checkpoint", &e));
                        answered.clear();
                        continue;
                    }
                }
                let c = committed.counts;
                let batches = committed.done_below + committed.done_above.len() as u64;
                let rate = progress.rate(c.rows - rows_before);
                let retries = ctx.retries();
                progress.tick(|| format!(
                    "{} rows ({} created, {} failed, {} rejected, {} skipped, {} unchanged), {batches} batches, {rate:.0} rows/s, {retries} retries",
                    c.rows, c.created, c.failed, c.rejected, c.skipped, c.unchanged
                ));
            }
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok(Ok(m)) if ledger.is_some() || committing.is_some() => {
                        if let Some(s) = failed_watch.add(&m.counts) {
                            // No new request from here on; those in flight finish.
                            sender.stopping.store(true, Ordering::SeqCst);
                            stop.get_or_insert(s);
                        }
                        answered.push(m);
                    }
                    Ok(Ok(_)) => {} // the ledger failed: the journal has the outcome
                    Ok(Err(s)) => {
                        sender.stopping.store(true, Ordering::SeqCst);
                        stop.get_or_insert(s);
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            unit = reader.units.recv(), if !source_done && stop.is_none() && in_flight.len() < 2 * concurrency => {
                match unit {
                    None => source_done = true,
                    Some(unit) if committed.is_done(unit.seq) => {}
                    Some(unit) => {
                        let sender = Arc::clone(&sender);
                        in_flight.spawn(async move {
                            let n = unit.customers.len() as u32;
                            let (created, failed) = if n == 0 { (Vec::new(), Vec::new()) } else { sender.resolve(&unit, 0, n).await? };
                            Ok(lines::materialize(&unit, created, failed))
                        });
                    }
                }
            }
        }
    }
    progress.finish();
    if source_done && stop.is_none() {
        *source_rows = Some(reader.source_rows.load(Ordering::Relaxed));
    }
    let read = reader.close(stop.is_some()).await;
    match stop {
        Some(s) => Err(s),
        None => read,
    }
}
