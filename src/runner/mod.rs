//! One lifecycle for every kind of run. A run begins (lock, run directory, manifest) or is
//! reopened, gets a runtime, a connection and a shutdown signal, journals that it started
//! or resumed, lets its kind do the work, journals how that ended, and writes and prints
//! the summary whose outcome is the exit code. The kinds — `import` (batch_create) and
//! `export` (query_export) — plug in as [`RunKind`]s and never repeat any of this.

pub mod begin;
pub mod metrics;
pub mod progress;
pub mod sharded;
pub mod shutdown;
pub mod status;
pub mod summary;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use begin::{Begun, Reopened};
pub use shutdown::Shutdown;
pub use summary::{Detail, Outcome, RunStatus, Summary};

use crate::api::client::Client;
use crate::connection::{self, Connection};
use crate::error::{Again, Error, Result};
use crate::job::Job;
use crate::run_dir::events::{Event, now};
use crate::run_dir::journal::{GroupJournal, Journal};
use crate::run_dir::{self, KindRecord, Manifest, RunDir, atomic};
use progress::Progress;

/// How long requests in flight may take to finish once the run is stopping.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub run_dir: Option<PathBuf>,
    pub json: bool,
    /// `-q/--quiet`: no progress and no informational lines; warnings, errors and the
    /// final summary still print.
    pub quiet: bool,
    /// Resume even though the job or the source changed, or a newer run finished.
    pub force: bool,
    /// `run --full`: with `sync: changed`, send every valid row and refresh the state.
    pub full: bool,
    /// `--metrics-file`: the run's Prometheus metrics, rewritten as it runs (SPEC §10).
    pub metrics_file: Option<PathBuf>,
    /// `run --shard K/N`: the shard of its run group this run is (SPEC §12 R19).
    pub shard: Option<crate::shard::ShardRun>,
}

impl RunOptions {
    /// Whether informational lines go to stderr (`run directory:`, `sync:`, notes): not
    /// with `--json`, whose scripts read only the document, nor with `--quiet`.
    pub fn informs(&self) -> bool {
        !self.json && !self.quiet
    }
}

/// Why a run stopped before its end, and whether `resume` can continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub reason: String,
    pub resumable: bool,
    /// The guard that stopped the run (`max_failed`), if one did: exit 4 (SPEC §7).
    pub guard: Option<&'static str>,
}

impl Stop {
    pub fn resumable(reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            resumable: true,
            guard: None,
        }
    }

    /// A stop no resume can mend (a file changed behind the run's back).
    pub fn not_resumable(reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            resumable: false,
            guard: None,
        }
    }

    /// The guard `name` stopped the run: resumable (with `--no-guard`), exit 4.
    pub fn guard(name: &'static str, reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            resumable: true,
            guard: Some(name),
        }
    }

    /// A failed read or write of the run's files: resumable, unless the file is not what
    /// the run wrote (corrupt, cut or changed behind its back), which no resume mends.
    pub fn io(what: &str, e: &std::io::Error) -> Stop {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Stop::not_resumable(format!("{what}: {e}"))
        } else {
            Stop::resumable(format!("{what}: {e}"))
        }
    }

    /// The error of a stop that leaves no summary behind (the run's files themselves failed).
    pub fn into_error(self, dir: &RunDir) -> Error {
        let again = if self.resumable {
            Again::Resume(dir.path.clone())
        } else {
            Again::Never(dir.path.clone())
        };
        Error::stopped(self.reason, again)
    }
}

/// The checkpoint of a run, or the kind's empty one before the first is written.
pub fn read_checkpoint<T: Default + serde::de::DeserializeOwned>(dir: &RunDir) -> Result<T, Stop> {
    read_checkpoint_at(&dir.file(run_dir::CHECKPOINT))
}

/// A checkpoint at `path` (a run's, or a part of a run's), or an empty one before the first.
pub fn read_checkpoint_at<T: Default + serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T, Stop> {
    match run_dir::read_versioned(path) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Stop::io("cannot read the checkpoint", &e)),
    }
}

/// The other runs under a job root, with their manifests, oldest first (run ids sort by
/// start time). Directories that are not runs of this format are left out.
pub fn runs_of(job_root: &std::path::Path, except: &std::path::Path) -> Vec<(PathBuf, Manifest)> {
    let Ok(entries) = std::fs::read_dir(job_root) else {
        return Vec::new();
    };
    let mut runs: Vec<(PathBuf, Manifest)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d != except)
        .filter_map(|d| {
            let m = run_dir::read_versioned::<Manifest>(&d.join(run_dir::MANIFEST)).ok()?;
            Some((d, m))
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

/// How the kind's work ended.
#[derive(Debug)]
pub struct Driven<D> {
    pub detail: D,
    pub stop: Option<Stop>,
}

/// What the lifecycle hands a kind for its work.
pub struct Context<'a> {
    pub job: &'a Job,
    pub dir: &'a RunDir,
    pub manifest: &'a Manifest,
    /// `--json` or `--quiet`: no progress and no informational lines on stderr.
    pub quiet: bool,
    pub journal: Arc<GroupJournal>,
    pub client: Arc<Client>,
    /// Requests sent by this invocation (the kind counts them).
    pub requests: Arc<AtomicU64>,
    /// Retries among them (counted by the lifecycle, from the client).
    pub retries: Arc<AtomicU64>,
    pub shutdown: Shutdown,
}

impl Context<'_> {
    /// A progress display on stderr (none with `--json` or `--quiet`).
    pub fn progress(&self, total: Option<u64>, position: Option<Arc<AtomicU64>>) -> Progress {
        Progress::new(self.quiet, total, position)
    }

    /// `progress:` text's retry count so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A kind of job, as the lifecycle runs it.
pub trait RunKind {
    /// What this kind adds to the summary.
    type Detail: Detail;
    /// Whether every journal line must be durable before the kind goes on (an import's
    /// intent before its request); an export's checkpoint alone decides what is done.
    const DURABLE_JOURNAL: bool;

    /// Before a new run's directory is made, the job's lock held: a check over the whole job
    /// that may refuse the run (the import's `max_rejected` guard reads every row). An
    /// error here leaves nothing behind.
    fn preflight(_job: &Job, _opts: &RunOptions) -> Result<()> {
        Ok(())
    }

    /// Before a new run's manifest is written: what the run is about. Nothing is written
    /// yet; an error here leaves no run directory behind.
    fn prepare(job: &Job, begun: &Begun, opts: &RunOptions) -> Result<KindRecord>;

    /// Once the new run's manifest is written: anything the operator must hear first.
    fn announce(_job: &Job, _manifest: &Manifest, _dir: &RunDir, _opts: &RunOptions) {}

    /// The checks a resume makes beyond the job's hash (its source, newer runs…).
    fn check_resume(run: &Reopened, opts: &RunOptions) -> Result<()>;

    /// Where the rows are so far, from the run directory's checkpoint: the live counts of
    /// the metrics file (the summary's are the last ones).
    fn rows_so_far(_dir: &std::path::Path) -> metrics::Rows {
        Vec::new()
    }

    /// Do the work, or continue it from the run directory's checkpoint.
    fn drive(ctx: &mut Context<'_>) -> impl Future<Output = Driven<Self::Detail>>;
}

/// `cdpjob run JOB`.
pub fn start<K: RunKind>(job: &Job, opts: &RunOptions) -> Result<Outcome> {
    start_with::<K>(job, opts, K::preflight, K::prepare)
}

/// [`start`], with the preflight and what the run is about made by `preflight` and
/// `prepare` instead of the kind's own: a retry is an import whose rows are copied from
/// another run into its directory first (and which no pre-pass over the job's source
/// concerns). Whatever `prepare` writes in the new directory goes again if the run cannot
/// begin.
pub fn start_with<K: RunKind>(
    job: &Job,
    opts: &RunOptions,
    preflight: impl FnOnce(&Job, &RunOptions) -> Result<()>,
    prepare: impl FnOnce(&Job, &Begun, &RunOptions) -> Result<KindRecord>,
) -> Result<Outcome> {
    begin::runtime()?.block_on(async {
        // The lock first: a second run of the job hears that another one is in progress,
        // whatever else it would have waited for. A refusal of the preflight leaves no run
        // directory (SPEC §12 R10).
        let lock = begin::lock(job, opts)?;
        preflight(job, opts)?;
        let begun = begin::begin(job, opts, lock)?;
        let before = begin::entries(&begun.dir);
        let prepared = match prepare(job, &begun, opts) {
            Ok(kind) => connection::connect(job).await.map(|conn| (kind, conn)),
            Err(e) => Err(e),
        };
        let (kind, conn) = match prepared {
            Ok(ready) => ready,
            Err(e) => {
                // No manifest in it yet: leave no run directory behind (and so nothing to
                // resume: running the command again is the remedy).
                begin::discard(&begun.dir, &before);
                return Err(e);
            }
        };
        let manifest = begin::manifest(job, &begun, opts, kind);
        begin::write_manifest(&begun.dir, &manifest, opts)?;
        K::announce(job, &manifest, &begun.dir, opts);
        let outcome = lifecycle::<K>(job, &begun.dir, &manifest, opts, false, conn).await;
        drop(begun.lock);
        outcome
    })
}

/// `cdpjob resume RUN_DIR`, once the run directory is reopened (and locked).
pub fn resume<K: RunKind>(run: Reopened, opts: &RunOptions) -> Result<Outcome> {
    if let Some(summary) = finished_summary::<K::Detail>(&run.dir)? {
        if opts.informs() {
            eprintln!(
                "the run {} has already finished: nothing to do",
                run.manifest.run_id
            );
        }
        report(&summary, opts);
        return Ok(summary.outcome());
    }
    begin::check_job_unchanged(&run, opts)?;
    K::check_resume(&run, opts)?;
    begin::runtime()?.block_on(async {
        let conn = connection::connect(&run.job).await?;
        lifecycle::<K>(&run.job, &run.dir, &run.manifest, opts, true, conn).await
    })
}

/// The summary of a run that has finished, if it has.
pub fn finished_summary<D: Detail>(dir: &RunDir) -> Result<Option<Summary<D>>> {
    match run_dir::read_versioned::<Summary<D>>(&dir.file(run_dir::SUMMARY)) {
        Ok(s) if s.status == RunStatus::Finished => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::stopped(
            format!("cannot read the summary: {e}"),
            Again::Never(dir.path.clone()),
        )),
    }
}

async fn lifecycle<K: RunKind>(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    opts: &RunOptions,
    resuming: bool,
    mut conn: Connection,
) -> Result<Outcome> {
    let sim = conn.sim.take();
    let outcome = run_kind::<K>(job, dir, manifest, opts, resuming, conn).await;
    if let Some(sim) = sim {
        sim.stop().await;
    }
    outcome
}

async fn run_kind<K: RunKind>(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    opts: &RunOptions,
    resuming: bool,
    conn: Connection,
) -> Result<Outcome> {
    let started = Instant::now();
    let stopped_here = |what: &str, e: std::io::Error| Stop::io(what, &e).into_error(dir);
    let journal = Journal::open(
        &dir.file(run_dir::EVENTS),
        K::DURABLE_JOURNAL && atomic::durable(),
    )
    .and_then(GroupJournal::start)
    .map_err(|e| stopped_here("cannot open the journal", e))?;
    let journal = Arc::new(journal);
    let retries = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let by_reason = Arc::new(metrics::RetryCounts::default());
    // Before the first event of this invocation: a resume's metrics read the earlier ones.
    let metrics = opts.metrics_file.as_deref().map(|path| {
        metrics::Metrics::start(
            path,
            metrics::Watched {
                job,
                dir: &dir.path,
                resuming,
                requests: Arc::clone(&requests),
                retries: Arc::clone(&by_reason),
                rows_so_far: K::rows_so_far,
                shard: manifest.shard.as_ref().map(|s| s.shard.to_string()),
            },
        )
    });
    {
        let journal = Arc::clone(&journal);
        let retries = Arc::clone(&retries);
        let by_reason = Arc::clone(&by_reason);
        conn.client.on_retry(move |n| {
            retries.fetch_add(1, Ordering::Relaxed);
            by_reason.add(&n.reason);
            // A log entry nothing depends on: written in order, not waited for.
            let _ = journal.append_detached(&Event::Retry {
                path: n.path.to_string(),
                payload: n.payload.clone(),
                attempt: n.attempt,
                reason: n.reason.clone(),
                delay_ms: n.delay.as_millis() as u64,
                at: now(),
            });
        });
    }
    let first = if resuming {
        Event::Resumed { at: now() }
    } else {
        Event::RunStarted {
            run_id: manifest.run_id.clone(),
            at: now(),
        }
    };
    journal
        .append(&first)
        .await
        .map_err(|e| stopped_here("writing the journal", e))?;

    let mut ctx = Context {
        job,
        dir,
        manifest,
        quiet: !opts.informs(),
        journal: Arc::clone(&journal),
        client: Arc::new(conn.client),
        requests,
        retries: Arc::clone(&retries),
        shutdown: Shutdown::listen(),
    };
    let Driven { detail, mut stop } = K::drive(&mut ctx).await;

    let last = match &stop {
        Some(s) => Event::Stopped {
            reason: s.reason.clone(),
            guard: s.guard.map(str::to_string),
            at: now(),
        },
        None => Event::RunFinished { at: now() },
    };
    // A journal that failed already said why the run stopped. A run whose work is done but
    // whose last line cannot be written is reported stopped (resumable): its resume finds
    // everything done and finishes it properly.
    if let Err(e) = journal.append(&last).await
        && stop.is_none()
    {
        stop = Some(Stop::io("writing the journal", &e));
    }
    let summary = Summary {
        run_id: manifest.run_id.clone(),
        run_dir: dir.path.display().to_string(),
        kind: job.spec.kind,
        status: match &stop {
            Some(s) if s.guard.is_some() => RunStatus::StoppedByGuard,
            Some(_) => RunStatus::Interrupted,
            None => RunStatus::Finished,
        },
        resumable: stop.as_ref().is_some_and(|s| s.resumable),
        requests: ctx.requests.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        started_at: manifest.started_at,
        finished_at: now(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        stopped_reason: stop.map(|s| s.reason),
        detail,
    };
    let written = run_dir::write_versioned(&dir.file(run_dir::SUMMARY), &summary);
    // The exit code the process ends with: a summary that cannot be written stops the run.
    let outcome = match &written {
        Ok(()) => summary.outcome(),
        Err(_) => Outcome::Stopped { resumable: true },
    };
    ended(job, &summary, outcome, metrics).await;
    written.map_err(|e| stopped_here("writing the summary", e))?;
    if !summary.resumable
        && let Some(reason) = &summary.stopped_reason
    {
        // No resume mends this one: it is an error, and stderr is where errors are read.
        eprintln!("error: {reason}");
    }
    report(&summary, opts);
    Ok(summary.outcome())
}

/// What follows a run's end, whatever the end: the job root's record of a success (exit 0
/// or 1), the metrics file's last write and the job's notification.
async fn ended<D: Detail>(
    job: &Job,
    summary: &Summary<D>,
    outcome: Outcome,
    metrics: Option<metrics::Metrics>,
) {
    let code = outcome.exit_code();
    if matches!(code, 0 | 1) {
        metrics::record_success(job, summary.finished_at);
    }
    if let Some(m) = metrics {
        m.finish(summary.detail.rows_by_outcome(), code, summary.finished_at);
    }
    if let Some(spec) = &job.spec.notify {
        crate::notify::run_ended(spec, &job.spec.name, code, &summary.to_json()).await;
    }
}

fn report<D: Detail>(summary: &Summary<D>, opts: &RunOptions) {
    use std::io::Write as _;
    let text = if opts.json {
        serde_json::to_string_pretty(&summary.to_json()).expect("serializes") + "\n"
    } else {
        summary.render()
    };
    // A closed pipe (`| head`) is not worth a message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
