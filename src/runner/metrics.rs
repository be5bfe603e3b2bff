//! `--metrics-file PATH`: the run as Prometheus text exposition, for node_exporter's textfile
//! collector (SPEC §10). The file is replaced atomically every [`INTERVAL`] while the run
//! runs and once at its end, whatever the end, so a scrape never reads half a file. Counts
//! are the whole run's across resumes (R20): what earlier invocations did is read back from
//! the journal, and the last success is carried over from the job root, so a stopped run
//! does not drop it.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::job::Job;
use crate::run_dir::events::Event;
use crate::run_dir::{self, atomic, journal};

/// How often the file is rewritten while the run runs (a scrape interval's order).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// `<job root>/last_success.json`: when a run of the job last ended with exit 0 or 1.
pub const LAST_SUCCESS: &str = "last_success.json";

/// Rows by where they ended up: (`outcome` label, count).
pub type Rows = Vec<(&'static str, u64)>;

/// The fixed set of `reason` labels of `cdpjob_retries_total`: a retry's free-text reason
/// (an HTTP status, a transport error's text) is grouped into one of these, so the series
/// stay few whatever the errors say.
pub const RETRY_REASONS: [&str; 5] = [
    "http_429",
    "http_5xx",
    "timeout",
    "transport",
    "timestamp_expired",
];

/// The index in [`RETRY_REASONS`] of a retry's reason, as the client and the journal word
/// it (`HTTP 503`, `timed out: …`, `could not connect: …`, `code 1004 …`).
pub fn retry_reason(reason: &str) -> usize {
    if reason.starts_with("HTTP 429") {
        0
    } else if reason.starts_with("HTTP ") {
        1
    } else if reason.starts_with("timed out") {
        2
    } else if reason.starts_with("code 1004") {
        4
    } else {
        3
    }
}

/// Retries of this invocation by reason, counted as the client reports them.
#[derive(Debug, Default)]
pub struct RetryCounts([AtomicU64; RETRY_REASONS.len()]);

impl RetryCounts {
    pub fn add(&self, reason: &str) {
        self.0[retry_reason(reason)].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> [u64; RETRY_REASONS.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// What the run's earlier invocations did (a resume's), from its journal.
#[derive(Debug, Clone, Default)]
struct Before {
    requests: u64,
    retries: [u64; RETRY_REASONS.len()],
    duration_secs: f64,
}

impl Before {
    /// Requests are intents not withdrawn (an import) and pages (an export); the duration
    /// is each invocation's first to last event, added up (the time between a stop and its
    /// resume is not the run's).
    fn from_journal(path: &Path) -> Before {
        let Ok((events, _)) = journal::read_all::<Event>(path) else {
            return Before::default();
        };
        let mut b = Before::default();
        let mut segment: Option<(Timestamp, Timestamp)> = None;
        let close = |seg: Option<(Timestamp, Timestamp)>, b: &mut Before| {
            if let Some((from, to)) = seg {
                b.duration_secs +=
                    (to.as_millisecond() - from.as_millisecond()).max(0) as f64 / 1e3;
            }
        };
        for e in &events {
            match e {
                Event::RunStarted { .. } | Event::Resumed { .. } => {
                    close(segment.take(), &mut b);
                    segment = Some((e.at(), e.at()));
                }
                Event::Intent { .. } | Event::Page { .. } => b.requests += 1,
                Event::Withdrawn { .. } => b.requests = b.requests.saturating_sub(1),
                Event::Retry { reason, .. } => b.retries[retry_reason(reason)] += 1,
                _ => {}
            }
            if let Some((_, to)) = &mut segment {
                *to = e.at();
            }
        }
        close(segment, &mut b);
        b
    }
}

/// The labels every series carries. `shard` is left for sharded runs (R20).
#[derive(Debug, Clone)]
pub struct Labels {
    pub job: String,
    pub shard: Option<String>,
}

impl Labels {
    /// `{job="…",shard="…"` without the closing brace, so a series adds its own labels.
    fn open(&self) -> String {
        let mut s = format!("{{job=\"{}\"", escape(&self.job));
        if let Some(shard) = &self.shard {
            let _ = write!(s, ",shard=\"{}\"", escape(shard));
        }
        s
    }
}

/// A label value as the exposition format quotes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One state of the run, as one file.
#[derive(Debug, Clone)]
struct Sample {
    up: bool,
    rows: Rows,
    requests: u64,
    retries: [u64; RETRY_REASONS.len()],
    duration_secs: f64,
    last_success: Option<Timestamp>,
}

/// `# HELP` and `# TYPE` of one metric.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render(labels: &Labels, s: &Sample) -> String {
    let l = labels.open();
    let mut out = String::new();
    family(
        &mut out,
        "cdpjob_up",
        "gauge",
        "1 while the run is going on, 0 once it has ended (whatever the end).",
    );
    let _ = writeln!(out, "cdpjob_up{l}}} {}", u8::from(s.up));
    family(
        &mut out,
        "cdpjob_rows",
        "gauge",
        "Source rows by where they ended up, over the whole run (across resumes).",
    );
    for (outcome, n) in &s.rows {
        let _ = writeln!(out, "cdpjob_rows{l},outcome=\"{outcome}\"}} {n}");
    }
    family(
        &mut out,
        "cdpjob_requests_total",
        "counter",
        "Requests sent to the API by the run (across resumes), retries not counted.",
    );
    let _ = writeln!(out, "cdpjob_requests_total{l}}} {}", s.requests);
    family(
        &mut out,
        "cdpjob_retries_total",
        "counter",
        "Retried attempts of requests, by reason (http_429, http_5xx, timeout, transport, timestamp_expired).",
    );
    for (reason, n) in RETRY_REASONS.iter().zip(s.retries) {
        let _ = writeln!(out, "cdpjob_retries_total{l},reason=\"{reason}\"}} {n}");
    }
    family(
        &mut out,
        "cdpjob_run_duration_seconds",
        "gauge",
        "Time the run has been running, its invocations added up (not the time between a stop and its resume).",
    );
    let _ = writeln!(
        out,
        "cdpjob_run_duration_seconds{l}}} {:.3}",
        s.duration_secs
    );
    family(
        &mut out,
        "cdpjob_last_success_timestamp_seconds",
        "gauge",
        "When a run of the job last ended with exit 0 or 1 (Unix time); absent before the first.",
    );
    if let Some(t) = s.last_success {
        let _ = writeln!(
            out,
            "cdpjob_last_success_timestamp_seconds{l}}} {:.3}",
            t.as_millisecond() as f64 / 1e3
        );
    }
    out
}

/// Replace `path` with `text`: a temporary file in the same directory (its name starts
/// with a dot and does not end in `.prom`, so the collector never reads it), renamed over
/// it. Unlike the run directory's files it is world-readable: node_exporter usually runs
/// as another user, and the file holds counts, no personal data.
fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("metrics");
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        if atomic::durable() {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    atomic::sync_dir(dir)
}

#[derive(Debug, Serialize, Deserialize)]
struct LastSuccess {
    at: Timestamp,
}

/// When a run of the job last succeeded: the job root's record, or the sample of the
/// metrics file already at `path` (written before the record existed, or by another host's
/// run), the later of the two.
fn last_success(job_root: &Path, path: &Path, labels: &Labels) -> Option<Timestamp> {
    let recorded = run_dir::read_versioned::<LastSuccess>(&job_root.join(LAST_SUCCESS))
        .ok()
        .map(|r| r.at);
    let prefix = format!("cdpjob_last_success_timestamp_seconds{}}}", labels.open());
    let in_file = fs::read_to_string(path).ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with(&prefix))?;
        let secs: f64 = line[prefix.len()..].trim().parse().ok()?;
        Timestamp::from_millisecond((secs * 1e3) as i64).ok()
    });
    recorded.max(in_file)
}

/// Record in the job root that a run of the job succeeded at `at` (exit 0 or 1), for the
/// metrics of the runs after it. A failure is only a warning: the run's own work is done.
pub fn record_success(job: &Job, at: Timestamp) {
    let path = job.paths.job_root.join(LAST_SUCCESS);
    if let Err(e) = run_dir::write_versioned(&path, &LastSuccess { at }) {
        eprintln!(
            "warning: cannot record the run's success in {}: {e}",
            path.display()
        );
    }
}

/// What the writer reads each time it writes.
struct Shared {
    path: PathBuf,
    labels: Labels,
    before: Before,
    requests: Arc<AtomicU64>,
    retries: Arc<RetryCounts>,
    started: Instant,
    last_success: Option<Timestamp>,
    dir: PathBuf,
    rows_so_far: fn(&Path) -> Rows,
    /// Whether a failed write was already reported (one warning, not one every 10 s).
    warned: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn sample(&self, up: bool, rows: Rows, last_success: Option<Timestamp>) -> Sample {
        let live = self.retries.get();
        Sample {
            up,
            rows,
            requests: self.before.requests + self.requests.load(Ordering::Relaxed),
            retries: std::array::from_fn(|i| self.before.retries[i] + live[i]),
            duration_secs: self.before.duration_secs + self.started.elapsed().as_secs_f64(),
            last_success,
        }
    }

    fn write(&self, sample: &Sample) {
        if let Err(e) = write_file(&self.path, &render(&self.labels, sample))
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "warning: cannot write the metrics file {}: {e}",
                self.path.display()
            );
        }
    }
}

/// The metrics file of one invocation: written at once, then every [`INTERVAL`] by a
/// thread of its own (a write fsyncs; the runtime's threads send requests), and a last
/// time by [`Metrics::finish`].
pub struct Metrics {
    shared: Arc<Shared>,
    stop: mpsc::Sender<()>,
    ticker: JoinHandle<()>,
}

/// What [`Metrics::start`] reads of the run.
pub struct Watched<'a> {
    pub job: &'a Job,
    pub dir: &'a Path,
    pub resuming: bool,
    pub requests: Arc<AtomicU64>,
    pub retries: Arc<RetryCounts>,
    pub rows_so_far: fn(&Path) -> Rows,
    /// `K-of-N` for a shard's run (R20): every series carries it as `shard`.
    pub shard: Option<String>,
}

impl Metrics {
    pub fn start(path: &Path, w: Watched<'_>) -> Metrics {
        let labels = Labels {
            job: w.job.spec.name.clone(),
            shard: w.shard.clone(),
        };
        let before = if w.resuming {
            Before::from_journal(&w.dir.join(run_dir::EVENTS))
        } else {
            Before::default()
        };
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            last_success: last_success(&w.job.paths.job_root, path, &labels),
            labels,
            before,
            requests: w.requests,
            retries: w.retries,
            started: Instant::now(),
            dir: w.dir.to_path_buf(),
            rows_so_far: w.rows_so_far,
            warned: Default::default(),
        });
        let (stop, ticks) = mpsc::channel::<()>();
        let s = Arc::clone(&shared);
        let ticker = std::thread::spawn(move || {
            loop {
                let rows = (s.rows_so_far)(&s.dir);
                s.write(&s.sample(true, rows, s.last_success));
                match ticks.recv_timeout(INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            }
        });
        Metrics {
            shared,
            stop,
            ticker,
        }
    }

    /// The last write: `cdpjob_up` 0, the summary's rows, and the last success now when the
    /// run exits 0 or 1 (else the one carried over).
    pub fn finish(self, rows: Rows, exit_code: u8, finished_at: Timestamp) {
        let _ = self.stop.send(());
        let _ = self.ticker.join();
        let last = if matches!(exit_code, 0 | 1) {
            Some(finished_at)
        } else {
            self.shared.last_success
        };
        let sample = self.shared.sample(false, rows, last);
        self.shared.write(&sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_reasons_fall_into_the_fixed_set() {
        let r = |s: &str| RETRY_REASONS[retry_reason(s)];
        assert_eq!(r("HTTP 429"), "http_429");
        assert_eq!(r("HTTP 503"), "http_5xx");
        assert_eq!(r("timed out: error sending request"), "timeout");
        assert_eq!(r("could not connect: tcp connect error"), "transport");
        assert_eq!(
            r("the answer is not the API's JSON envelope: x"),
            "transport"
        );
        assert_eq!(r("code 1004 (timestamp expired)"), "timestamp_expired");
    }

    #[test]
    fn label_values_are_escaped() {
        let l = Labels {
            job: "a\"b\\c\nd".into(),
            shard: Some("1-of-4".into()),
        };
        assert_eq!(l.open(), "{job=\"a\\\"b\\\\c\\nd\",shard=\"1-of-4\"");
    }
}
