//! The batch_create scheduler: rows stream from the pipeline into deterministic batches, up
//! to `concurrency` requests are in flight, every request is journaled (intent before,
//! outcome after), and a batch's results are appended to the result files and then
//! recorded in the checkpoint, in that order. `run` starts from nothing; `resume` starts
//! from what the run directory says; both are this same code.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use super::batches::{BatchUnit, Batcher};
use super::events::{Answer, CreatedRow, Event, FailedRow, Part, now};
use super::journal::{self, GroupJournal, Journal};
use super::lock::JobLock;
use super::progress::Progress;
use super::run_dir::{self, Checkpoint, Counts, Manifest, RunDir};
use super::start::{self, DRAIN_TIMEOUT, Reopened, RunOptions};
use crate::api::client::CODE_AGENT_MISSING;
use crate::api::connect::{self, Connection};
use crate::api::wire::BatchCreateRequest;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::mapping::Mapper;
use crate::{pipeline, source};

/// What a finished (or stopped) run reports, also written as `summary.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub run_dir: String,
    pub status: String,
    pub counts: Counts,
    pub requests: u64,
    pub retries: u64,
    pub started_at: String,
    pub finished_at: String,
    pub elapsed_secs: f64,
    pub stopped_reason: Option<String>,
    pub files: serde_json::Value,
}

/// Everything the request tasks share.
struct Shared {
    journal: GroupJournal,
    /// Outcomes already journaled (from before a crash), by part.
    known: Mutex<HashMap<Part, Answer>>,
    /// Payload hashes of journaled intents, to check a resume re-derived the same batch,
    /// and how many times each part was sent.
    intents: HashMap<Part, String>,
    attempts: Mutex<HashMap<Part, u32>>,
    conn: Connection,
    tenant_id: i64,
    app_key: String,
    merge_type: u8,
    strict: bool,
    requests: AtomicU64,
    /// Request slots: `concurrency` of them. More batches than that are in progress, so a
    /// batch takes a slot only once its intent is durable, right before it is sent.
    slots: tokio::sync::Semaphore,
    /// Set when the run stops (a signal, a final error): a batch not sent yet is not sent.
    stopping: AtomicBool,
}

/// A commit of answered batches on a blocking thread; it hands the ledger back.
type Committing = tokio::task::JoinHandle<(Ledger, std::io::Result<()>)>;

/// Created and failed rows of a part of a batch.
type Resolved = (Vec<CreatedRow>, Vec<FailedRow>);
/// The boxed future of a (recursive) resolution.
type Resolving<'a> =
    std::pin::Pin<Box<dyn Future<Output = std::result::Result<Resolved, Stop>> + Send + 'a>>;

/// Why the run stopped early.
#[derive(Debug, Clone)]
struct Stop(String);

fn io_stop(what: &str, e: std::io::Error) -> Stop {
    Stop(format!(
        "{what} failed: {e}; the run stopped and can be resumed"
    ))
}

impl Shared {
    /// Append to the journal; returns once the event is durable.
    async fn log(&self, event: &Event) -> std::result::Result<(), Stop> {
        self.journal
            .append(event)
            .await
            .map_err(|e| io_stop("writing the journal", e))
    }

    /// Resolve customers `lo..hi` of `unit`: from the journal if answered before, else by
    /// sending them; a whole-request 12148 is bisected until the culprits are alone.
    fn resolve<'a>(self: &'a Arc<Self>, unit: &'a BatchUnit, lo: u32, hi: u32) -> Resolving<'a> {
        Box::pin(async move {
            let part = Part {
                seq: unit.seq,
                lo,
                hi,
            };
            let known = self.known.lock().expect("known lock").get(&part).cloned();
            let answer = match known {
                Some(a) => a,
                None => self.send(unit, part).await?,
            };
            match answer {
                Answer::Answered { created, failed } => Ok((created, failed)),
                Answer::WholeFailed { code, .. } if hi - lo > 1 => {
                    self.log(&Event::Bisect {
                        part,
                        code,
                        at: now(),
                    })
                    .await?;
                    let mid = lo + (hi - lo) / 2;
                    let (mut c1, mut f1) = self.resolve(unit, lo, mid).await?;
                    let (c2, f2) = self.resolve(unit, mid, hi).await?;
                    c1.extend(c2);
                    f1.extend(f2);
                    Ok((c1, f1))
                }
                Answer::WholeFailed { code, message } => Ok((
                    Vec::new(),
                    vec![FailedRow {
                        row: unit.customer_rows[lo as usize],
                        error_code: code,
                        error_message: message,
                    }],
                )),
            }
        })
    }

    async fn send(&self, unit: &BatchUnit, part: Part) -> std::result::Result<Answer, Stop> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Stop("the run is stopping".into()));
        }
        let range = part.lo as usize..part.hi as usize;
        let rows = &unit.customer_rows[range.clone()];
        let request = BatchCreateRequest {
            merge_type: self.merge_type,
            tenant_id: self.tenant_id,
            app_key: &self.app_key,
            strict_binding: self.strict,
            customers: &unit.customers[range],
        };
        let body = serde_json::to_vec(&request).expect("a request serializes");
        let hash = run_dir::sha256_hex(&body);
        if let Some(previous) = self.intents.get(&part)
            && *previous != hash
        {
            return Err(Stop(format!(
                "batch {} is not the batch the journal recorded (its customers differ): the source or the job changed; start a new run",
                part.seq
            )));
        }
        let attempt = {
            let mut a = self.attempts.lock().expect("attempts lock");
            let n = a.entry(part).or_insert(0);
            *n += 1;
            *n
        };
        crate::failpoint!("before_intent");
        self.log(&Event::Intent {
            part,
            attempt,
            first_row: rows.first().copied().unwrap_or(0),
            last_row: rows.last().copied().unwrap_or(0),
            payload_sha256: hash,
            at: now(),
        })
        .await?;
        crate::failpoint!("after_intent");
        let slot = self.slots.acquire().await.expect("never closed");
        if self.stopping.load(Ordering::SeqCst) {
            // Journaled, never sent: not in doubt.
            self.log(&Event::Withdrawn { part, at: now() }).await?;
            return Err(Stop("the run is stopping".into()));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let reply = self
            .conn
            .client
            .call::<crate::api::wire::BatchCreateResult>(
                reqwest::Method::POST,
                crate::api::wire::BATCH_CREATE_PATH,
                "",
                body,
            )
            .await
            .map_err(|e| {
                // Before this request's slot is freed: no other batch may take it and send.
                self.stopping.store(true, Ordering::SeqCst);
                Stop(e.advice_for_a_run())
            })?;
        // The request is answered: its slot is free while the outcome is journaled.
        drop(slot);
        crate::failpoint!("after_send");
        let answer = if reply.code == CODE_AGENT_MISSING {
            Answer::WholeFailed {
                code: reply.code,
                message: reply.message.unwrap_or_default(),
            }
        } else {
            let data = reply.data.unwrap_or_default();
            let mut created = Vec::new();
            let mut failed = Vec::new();
            let mut seen = vec![false; rows.len()];
            for s in data.success_items {
                if let Some(row) = rows.get(s.index) {
                    seen[s.index] = true;
                    created.push(CreatedRow {
                        row: *row,
                        customer_id: s.customer_id,
                        whats_app_phone: s.whats_app_phone,
                    });
                }
            }
            for f in data.fail_items {
                if let Some(row) = rows.get(f.index) {
                    seen[f.index] = true;
                    failed.push(FailedRow {
                        row: *row,
                        error_code: f.error_code,
                        error_message: f.error_message.unwrap_or_default(),
                    });
                }
            }
            // A record the answer does not mention did not make it: say so, never lose it.
            for (i, s) in seen.iter().enumerate() {
                if !s {
                    failed.push(FailedRow {
                        row: rows[i],
                        error_code: -1,
                        error_message: "the API's answer did not mention this record".into(),
                    });
                }
            }
            Answer::Answered { created, failed }
        };
        crate::failpoint!("before_outcome");
        self.log(&Event::Outcome {
            part,
            answer: answer.clone(),
            attempts: reply.attempts,
            at: now(),
        })
        .await?;
        Ok(answer)
    }
}

/// A batch's lines for the result files.
struct Materialized {
    seq: u64,
    created: Vec<String>,
    failed: Vec<String>,
    rejected: Vec<String>,
    counts: Counts,
}

fn materialize(unit: &BatchUnit, created: Vec<CreatedRow>, failed: Vec<FailedRow>) -> Materialized {
    let line = |v: serde_json::Value| v.to_string();
    let mut created = created;
    created.sort_by_key(|c| c.row);
    let mut failed = failed;
    failed.sort_by_key(|f| f.row);
    let counts = Counts {
        rows: unit.rows(),
        created: created.len() as u64,
        failed: failed.len() as u64,
        rejected: unit.rejected.len() as u64,
        skipped: unit.skipped,
    };
    Materialized {
        seq: unit.seq,
        created: created.iter().map(|c| serde_json::to_string(c).expect("serializes")).collect(),
        failed: failed.iter().map(|f| serde_json::to_string(f).expect("serializes")).collect(),
        rejected: unit
            .rejected
            .iter()
            .map(|(row, errors)| {
                line(json!({"row": row, "errors": errors.iter().map(|e| json!({"field": e.field, "rule": e.rule, "message": e.message})).collect::<Vec<_>>()}))
            })
            .collect(),
        counts,
    }
}

/// The result files, appended in batch-completion order, each made durable before the
/// checkpoint that counts it.
struct Results {
    created: File,
    failed: File,
    rejected: File,
    /// Which of them were written since the last sync.
    unsynced: [bool; 3],
}

/// The result files and the checkpoint that counts them. Commits run on a blocking thread,
/// off the scheduler loop, which never waits on the disk; batches answered while a commit
/// runs wait and go into the next one together (one fsync per file and one checkpoint for
/// all of them).
struct Ledger {
    results: Results,
    checkpoint: Checkpoint,
    checkpoint_path: std::path::PathBuf,
    durable: bool,
}

impl Ledger {
    /// Append the batches' lines, make them durable, then replace the checkpoint that
    /// counts them. A failure leaves the checkpoint as it was on disk: the run must stop.
    fn commit(&mut self, batches: &[Materialized]) -> std::io::Result<()> {
        for m in batches {
            // Counted per batch, so that `before_results:N` is the N-th batch's.
            crate::failpoint!("before_results");
            self.results.write(m, &mut self.checkpoint)?;
        }
        self.results.sync(self.durable)?;
        for m in batches {
            crate::failpoint!("before_checkpoint");
            self.checkpoint.mark_done(m.seq);
            add(&mut self.checkpoint.counts, &m.counts);
        }
        run_dir::write_json_atomic(&self.checkpoint_path, &self.checkpoint)
    }
}

impl Results {
    fn open(dir: &RunDir, cp: &Checkpoint) -> std::io::Result<Results> {
        Ok(Results {
            created: super::atomic::open_at_length(&dir.file(run_dir::CREATED), cp.created_len)?,
            failed: super::atomic::open_at_length(&dir.file(run_dir::FAILED), cp.failed_len)?,
            rejected: super::atomic::open_at_length(&dir.file(run_dir::REJECTED), cp.rejected_len)?,
            unsynced: [false; 3],
        })
    }

    /// Append a batch's lines (not yet durable: see `sync`).
    fn write(&mut self, m: &Materialized, cp: &mut Checkpoint) -> std::io::Result<()> {
        let [c, f, r] = &mut self.unsynced;
        for (file, lines, len, unsynced) in [
            (&mut self.created, &m.created, &mut cp.created_len, c),
            (&mut self.failed, &m.failed, &mut cp.failed_len, f),
            (&mut self.rejected, &m.rejected, &mut cp.rejected_len, r),
        ] {
            if lines.is_empty() {
                continue;
            }
            let mut buf = lines.join("\n");
            buf.push('\n');
            file.write_all(buf.as_bytes())?;
            *len += buf.len() as u64;
            *unsynced = true;
        }
        Ok(())
    }

    fn sync(&mut self, durable: bool) -> std::io::Result<()> {
        for (file, unsynced) in [&self.created, &self.failed, &self.rejected]
            .into_iter()
            .zip(&mut self.unsynced)
        {
            if durable && *unsynced {
                file.sync_data()?;
            }
            *unsynced = false;
        }
        Ok(())
    }
}

fn add(c: &mut Counts, d: &Counts) {
    c.rows += d.rows;
    c.created += d.created;
    c.failed += d.failed;
    c.rejected += d.rejected;
    c.skipped += d.skipped;
}

/// `cdpjob run JOB` for a batch_create job.
pub fn run(job: &Job, opts: &RunOptions) -> Result<i32> {
    let src = job
        .spec
        .source
        .as_ref()
        .ok_or_else(|| Error::Usage("a batch_create job needs a source".into()))?;
    let begun = start::begin(job, opts)?;
    let source_path = job.resolve(&src.path);
    let fingerprint = if src.path == "-" {
        run_dir::SourceFingerprint {
            path: "-".into(),
            size: 0,
            sha256: String::new(),
        }
    } else {
        run_dir::fingerprint(&source_path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", source_path.display())))?
    };
    let manifest = start::manifest(job, &begun, fingerprint);
    start::write_manifest(&begun.dir, &manifest, opts)?;
    execute(job, &begun.dir, &manifest, opts, begun.lock, false)
}

/// `cdpjob resume RUN_DIR` for a batch_create run.
pub fn resume(run: Reopened, opts: &RunOptions) -> Result<i32> {
    if let Some(summary) = start::already_finished::<Summary>(&run, opts, |s| &s.status) {
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

async fn execute_async(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    opts: &RunOptions,
    resuming: bool,
) -> Result<i32> {
    let started = Instant::now();
    let durable = crate::run::atomic::durable();
    let fail = start::stopped;
    let checkpoint: Checkpoint = match run_dir::read_json(&dir.file(run_dir::CHECKPOINT)) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoint::default(),
        Err(e) => return Err(fail("cannot read the checkpoint", e)),
    };
    let (events, _) = journal::read_all::<Event>(&dir.file(run_dir::EVENTS))
        .map_err(|e| fail("cannot read the journal", e))?;
    let mut known = HashMap::new();
    let mut intents = HashMap::new();
    let mut attempts: HashMap<Part, u32> = HashMap::new();
    for e in events {
        match e {
            Event::Intent {
                part,
                payload_sha256,
                ..
            } => {
                intents.insert(part, payload_sha256);
                *attempts.entry(part).or_insert(0) += 1;
            }
            Event::Outcome { part, answer, .. } => {
                known.insert(part, answer);
            }
            Event::Withdrawn { part, .. } => {
                // That intent was never sent: its attempt number is free again.
                if let Some(n) = attempts.get_mut(&part) {
                    *n = n.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
    let results = Results::open(dir, &checkpoint)
        .map_err(|e| start::reopen_failed("cannot open the result files", e))?;
    let journal = Journal::open(&dir.file(run_dir::EVENTS), durable)
        .map_err(|e| fail("cannot open the journal", e))?;
    let conn = connect::connect(job).await?;
    let retries = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared {
        journal: GroupJournal::start(journal).map_err(|e| fail("cannot start the journal", e))?,
        known: Mutex::new(known),
        intents,
        attempts: Mutex::new(attempts),
        conn,
        tenant_id: job.spec.api.tenant_id,
        app_key: job.spec.api.app_key.clone(),
        merge_type: job.spec.merge.wire_type(),
        strict: job.spec.strict_binding,
        requests: AtomicU64::new(0),
        slots: tokio::sync::Semaphore::new(job.spec.api.concurrency.max(1)),
        stopping: AtomicBool::new(false),
    });
    {
        let weak = Arc::downgrade(&shared);
        let retries = Arc::clone(&retries);
        shared.conn.client.on_retry(move |n| {
            retries.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = weak.upgrade() {
                // A log entry nothing depends on: written in order, not waited for.
                let _ = s.journal.append_detached(&Event::Retry {
                    path: n.path.to_string(),
                    attempt: n.attempt,
                    reason: n.reason.clone(),
                    delay_ms: n.delay.as_millis() as u64,
                    at: now(),
                });
            }
        });
    }
    shared
        .log(&if resuming {
            Event::Resumed { at: now() }
        } else {
            Event::RunStarted {
                run_id: manifest.run_id.clone(),
                at: now(),
            }
        })
        .await
        .map_err(|s| Error::Stopped(s.0))?;

    // The reader: a thread streaming units in order; stops when the receiver goes away.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BatchUnit>(job.spec.api.concurrency * 2 + 2);
    let src_spec = job.spec.source.clone().expect("checked by run/resume");
    let mapping = job.spec.mapping.clone().unwrap_or_default();
    let mapper = Mapper::new(&mapping, job.spec.filter.as_deref(), &job.vars)
        .map_err(|p| Error::Usage(format!("templates did not compile: {}", p[0].message)))?;
    let job_dir = job.dir.clone();
    let batch_size = job.spec.batch_size;
    let bytes_read = Arc::new(AtomicU64::new(0));
    let source_size = std::fs::metadata(job.resolve(&src_spec.path))
        .map(|m| m.len())
        .ok();
    let counter = Arc::clone(&bytes_read);
    // Set when the loop is done with the source, whatever is left of it unread.
    let reader_stop = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::clone(&reader_stop);
    let reader = std::thread::spawn(move || -> std::result::Result<(), String> {
        let source =
            source::open_counted(&src_spec, &job_dir, counter).map_err(|e| e.to_string())?;
        let mut batcher = Batcher::new(batch_size);
        let mut open = true;
        pipeline::map_in_order(
            source,
            &mapper,
            pipeline::default_workers(),
            &stop_reading,
            |row, outcome| {
                if let Some(unit) = batcher.push(row, outcome) {
                    open = tx.blocking_send(unit).is_ok();
                }
                open
            },
        )
        .map_err(|e| format!("reading the source failed: {e}"))?;
        if open && let Some(unit) = batcher.finish() {
            let _ = tx.blocking_send(unit);
        }
        Ok(())
    });

    // Twice as many batches in progress as requests allowed in flight (`Shared::slots`):
    // while `concurrency` requests wait on the API, as many more batches serialize, journal
    // their intent and wait for a slot, or journal an outcome — a slot never idles while a
    // batch gets ready.
    let concurrency = job.spec.api.concurrency.max(1);
    let mut in_flight: JoinSet<std::result::Result<Materialized, Stop>> = JoinSet::new();
    let mut stop_reason: Option<String> = None;
    let mut source_done = false;
    let mut shutdown = Box::pin(start::shutdown_signal());
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut progress = Progress::new(opts.json, source_size, Some(Arc::clone(&bytes_read)));
    let rows_before = checkpoint.counts.rows;
    // Batches answered and not yet committed, and the commit running (it holds the ledger).
    let mut answered: Vec<Materialized> = Vec::new();
    let mut ledger = Some(Ledger {
        results,
        checkpoint: checkpoint.clone(),
        checkpoint_path: dir.file(run_dir::CHECKPOINT),
        durable,
    });
    let mut committing: Option<Committing> = None;
    loop {
        if committing.is_none() && !answered.is_empty() {
            let mut l = ledger.take().expect("the ledger is home between commits");
            let batches = std::mem::take(&mut answered);
            committing = Some(tokio::task::spawn_blocking(move || {
                let result = l.commit(&batches);
                (l, result)
            }));
        }
        if (source_done || stop_reason.is_some()) && in_flight.is_empty() && committing.is_none() {
            break;
        }
        let deadline = drain_deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            _ = &mut shutdown, if stop_reason.is_none() => {
                shared.stopping.store(true, Ordering::SeqCst);
                stop_reason = Some("interrupted by a signal".into());
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                if !opts.json {
                    let sending = concurrency - shared.slots.available_permits();
                    eprintln!("stopping: waiting up to {}s for {sending} request(s) in flight", DRAIN_TIMEOUT.as_secs());
                }
            }
            _ = tokio::time::sleep_until(deadline), if drain_deadline.is_some() && !in_flight.is_empty() => {
                // Requests still in flight stay "in doubt" and are resent on resume.
                in_flight.abort_all();
                while let Some(joined) = in_flight.join_next().await {
                    // One that finished just now still gets committed.
                    if let Ok(Ok(m)) = joined {
                        answered.push(m);
                    }
                }
            }
            done = async { committing.as_mut().expect("checked").await }, if committing.is_some() => {
                committing = None;
                let (l, result) = done.expect("a commit does not panic");
                result.map_err(|e| fail("writing the result files and the checkpoint", e))?;
                let c = l.checkpoint.counts;
                let batches = l.checkpoint.done_below + l.checkpoint.done_above.len() as u64;
                ledger = Some(l);
                let rate = progress.rate(c.rows - rows_before);
                let retries = retries.load(Ordering::Relaxed);
                progress.tick(|| format!(
                    "{} rows ({} created, {} failed, {} rejected, {} skipped), {batches} batches, {rate:.0} rows/s, {retries} retries",
                    c.rows, c.created, c.failed, c.rejected, c.skipped
                ));
            }
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok(Ok(m)) => answered.push(m),
                    Ok(Err(Stop(reason))) => {
                        shared.stopping.store(true, Ordering::SeqCst);
                        if stop_reason.is_none() {
                            stop_reason = Some(reason);
                        }
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            unit = rx.recv(), if !source_done && stop_reason.is_none() && in_flight.len() < 2 * concurrency => {
                match unit {
                    None => source_done = true,
                    Some(unit) if checkpoint.is_done(unit.seq) => {}
                    Some(unit) => {
                        let shared = Arc::clone(&shared);
                        in_flight.spawn(async move {
                            let n = unit.customers.len() as u32;
                            let (created, failed) = if n == 0 { (Vec::new(), Vec::new()) } else { shared.resolve(&unit, 0, n).await? };
                            Ok(materialize(&unit, created, failed))
                        });
                    }
                }
            }
        }
    }
    let checkpoint = ledger.expect("no commit runs after the loop").checkpoint;
    progress.finish();
    if !source_done {
        reader_stop.store(true, Ordering::SeqCst);
    }
    drop(rx);
    let reader_result = tokio::task::spawn_blocking(move || reader.join()).await;
    if stop_reason.is_none() {
        match reader_result {
            Ok(Ok(Err(e))) => stop_reason = Some(e),
            Ok(Err(_)) | Err(_) => stop_reason = Some("the source reader failed".into()),
            Ok(Ok(Ok(()))) => {}
        }
    }
    let status = if stop_reason.is_some() {
        "interrupted"
    } else {
        "finished"
    };
    let at = now();
    let _ = match &stop_reason {
        Some(r) => {
            shared
                .log(&Event::Stopped {
                    reason: r.clone(),
                    at: at.clone(),
                })
                .await
        }
        None => {
            shared
                .log(&Event::RunFinished {
                    counts: checkpoint.counts,
                    at: at.clone(),
                })
                .await
        }
    };
    let summary = Summary {
        run_id: manifest.run_id.clone(),
        run_dir: dir.path.display().to_string(),
        status: status.into(),
        counts: checkpoint.counts,
        requests: shared.requests.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        started_at: manifest.started_at.clone(),
        finished_at: at,
        elapsed_secs: started.elapsed().as_secs_f64(),
        stopped_reason: stop_reason.clone(),
        files: json!({
            "created": dir.file(run_dir::CREATED).display().to_string(),
            "failed": dir.file(run_dir::FAILED).display().to_string(),
            "rejected": dir.file(run_dir::REJECTED).display().to_string(),
        }),
    };
    run_dir::write_json_atomic(&dir.file(run_dir::SUMMARY), &summary)
        .map_err(|e| fail("writing the summary", e))?;
    if let Some(sim) = Arc::into_inner(shared).and_then(|s| s.conn.sim) {
        sim.stop().await;
    }
    report(&summary, opts);
    Ok(exit_code(&summary))
}

fn exit_code(s: &Summary) -> i32 {
    if s.status != "finished" {
        3
    } else if s.counts.failed + s.counts.rejected > 0 {
        1
    } else {
        0
    }
}

fn report(s: &Summary, opts: &RunOptions) {
    if opts.json {
        println!("{}", serde_json::to_string_pretty(s).expect("serializes"));
        return;
    }
    let c = &s.counts;
    println!("run {}: {} in {:.1}s", s.run_id, s.status, s.elapsed_secs);
    println!(
        "rows {}: created {}, failed {}, rejected {}, skipped {}",
        c.rows, c.created, c.failed, c.rejected, c.skipped
    );
    println!("requests {}, retries {}", s.requests, s.retries);
    if let Some(r) = &s.stopped_reason {
        println!("stopped: {r}");
        println!("resume with: cdpjob resume {}", s.run_dir);
    }
    println!("run directory: {}", s.run_dir);
    println!(
        "failed rows:   {} ({})",
        s.files["failed"].as_str().unwrap_or_default(),
        c.failed
    );
    println!(
        "rejected rows: {} ({})",
        s.files["rejected"].as_str().unwrap_or_default(),
        c.rejected
    );
}
