//! `--metrics-file`: the Prometheus text a run writes, read with a real exposition parser
//! (`prometheus-parse`), after a finished run, while a run runs, after a stopped run (the
//! last success carried over from the job root, R20) and across its resume (the counts
//! are the whole run's).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use crate::common::{SimProcess, Workspace, jsonl, read, sim_env, valid_leads, write_leads};

/// Every metric of the file, with the type its `# TYPE` line must give it.
const METRICS: [(&str, &str); 6] = [
    ("cdpjob_up", "gauge"),
    ("cdpjob_rows", "gauge"),
    ("cdpjob_requests_total", "counter"),
    ("cdpjob_retries_total", "counter"),
    ("cdpjob_run_duration_seconds", "gauge"),
    ("cdpjob_last_success_timestamp_seconds", "gauge"),
];

/// A batch_create job `t` of `leads.csv` against `url`.
fn job(url: &str) -> String {
    format!(
        "version: 1
name: t
kind: batch_create
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  max_retries: 8
  timeout_secs: 5
  concurrency: 4
source: {{type: csv, path: leads.csv}}
filter: \"row.status != 'inactive'\"
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: 100
"
    )
}

/// The file parsed: samples keyed by metric name and their labels other than `job`
/// (`outcome=created`, `reason=http_5xx`, or empty), each checked to carry `job="t"`.
struct Metrics {
    values: HashMap<(String, String), f64>,
}

impl Metrics {
    #[track_caller]
    fn parse(path: &Path) -> Metrics {
        let text = read(path);
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        // The parser skips what it cannot read: every line that is not a comment must have
        // become a sample, so nothing was skipped.
        let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            scrape.samples.len(),
            sample_lines,
            "unparsed lines in\n{text}"
        );
        for (name, kind) in METRICS {
            assert!(
                scrape.docs.get(name).is_some_and(|h| !h.is_empty()),
                "no # HELP for {name}\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no # TYPE {name} {kind}\n{text}"
            );
        }
        let mut values = HashMap::new();
        for s in &scrape.samples {
            assert_eq!(s.labels.get("job"), Some("t"), "{s:?}");
            let kind = METRICS.iter().find(|(n, _)| *n == s.metric).map(|m| m.1);
            let v = match (&s.value, kind) {
                (Value::Counter(v), Some("counter")) | (Value::Gauge(v), Some("gauge")) => *v,
                other => panic!("{} has the value {other:?}\n{text}", s.metric),
            };
            let extra: Vec<String> = ["outcome", "reason"]
                .iter()
                .filter_map(|k| s.labels.get(k).map(|v| format!("{k}={v}")))
                .collect();
            values.insert((s.metric.clone(), extra.join(",")), v);
        }
        Metrics { values }
    }

    fn get(&self, metric: &str, labels: &str) -> Option<f64> {
        self.values
            .get(&(metric.to_string(), labels.to_string()))
            .copied()
    }

    #[track_caller]
    fn value(&self, metric: &str, labels: &str) -> f64 {
        self.get(metric, labels)
            .unwrap_or_else(|| panic!("no {metric}{{{labels}}} in {:?}", self.values))
    }

    fn rows(&self, outcome: &str) -> u64 {
        self.value("cdpjob_rows", &format!("outcome={outcome}")) as u64
    }

    fn retries(&self) -> u64 {
        [
            "http_429",
            "http_5xx",
            "timeout",
            "transport",
            "timestamp_expired",
        ]
        .iter()
        .map(|r| self.value("cdpjob_retries_total", &format!("reason={r}")) as u64)
        .sum()
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&read(&dir.join("summary.json"))).unwrap()
}

fn the_run(ws: &Workspace) -> std::path::PathBuf {
    let mut dirs = crate::common::run_dirs(&ws.path("runs/t"));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// The run directory of `t` that is not `old` (run ids of one second sort by a random
/// suffix, so the newest is not the last by name).
fn other_run(ws: &Workspace, old: &Path) -> Option<std::path::PathBuf> {
    crate::common::run_dirs(&ws.path("runs/t"))
        .into_iter()
        .find(|d| d != old)
}

/// A finished run with rejected rows and server faults: exit 1, every metric as the
/// summary counts it, retries by reason, `up` 0 and the success stamped now.
#[test]
fn a_finished_run_writes_every_metric_as_its_summary_counts() {
    let sim = SimProcess::start(&["--fail-5xx", "0.2", "--fail-429", "0.1", "--seed", "7"]);
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 1_000);
    ws.write("job.yaml", job(&sim.url));
    std::fs::create_dir(ws.path("metrics")).unwrap();
    let before = jiff::Timestamp::now().as_second() as f64;
    let out = ws
        .spawn(
            &["run", "job.yaml", "--metrics-file", "metrics/cdpjob.prom"],
            sim_env(None),
        )
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let m = Metrics::parse(&ws.path("metrics/cdpjob.prom"));
    let s = summary(&the_run(&ws));
    for outcome in ["created", "failed", "rejected", "skipped", "unchanged"] {
        assert_eq!(
            m.rows(outcome),
            s["counts"][outcome].as_u64().unwrap(),
            "{outcome}"
        );
    }
    assert_eq!(m.rows("created"), valid_leads(1_000).len() as u64);
    assert_eq!(
        m.value("cdpjob_requests_total", "") as u64,
        s["requests"].as_u64().unwrap()
    );
    assert!(
        s["retries"].as_u64().unwrap() > 0,
        "the faults caused retries"
    );
    assert_eq!(m.retries(), s["retries"].as_u64().unwrap());
    assert!(m.value("cdpjob_retries_total", "reason=http_5xx") > 0.0);
    assert!(m.value("cdpjob_retries_total", "reason=http_429") > 0.0);
    assert_eq!(m.value("cdpjob_up", ""), 0.0);
    assert!(m.value("cdpjob_run_duration_seconds", "") > 0.0);
    let success = m.value("cdpjob_last_success_timestamp_seconds", "");
    assert!(
        success >= before - 1.0 && success <= jiff::Timestamp::now().as_second() as f64 + 1.0,
        "{success} is not the run's end"
    );
    // No temporary file is left beside it (the collector's directory holds only .prom).
    let names: Vec<_> = std::fs::read_dir(ws.path("metrics"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("cdpjob.prom")]);
}

/// While a run runs (a slow simulator), the file is there, parses, and says `up` 1; at the
/// end it says 0.
#[test]
fn the_file_exists_and_parses_while_the_run_runs() {
    let sim = SimProcess::start(&["--latency-ms", "200"]);
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 3_000);
    ws.write("job.yaml", job(&sim.url));
    let metrics = ws.path("cdpjob.prom");
    let mut child = ws.spawn(
        &["run", "job.yaml", "--metrics-file", "cdpjob.prom"],
        sim_env(None),
    );
    child.wait_for("the metrics file", Duration::from_secs(30), || {
        metrics.exists()
    });
    let m = Metrics::parse(&metrics);
    assert_eq!(m.value("cdpjob_up", ""), 1.0);
    assert!(m.rows("created") < valid_leads(3_000).len() as u64);
    assert_eq!(
        m.get("cdpjob_last_success_timestamp_seconds", ""),
        None,
        "no run of the job has succeeded yet"
    );
    assert!(!child.has_exited(), "the run was still going when read");
    let out = child.wait_within(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let m = Metrics::parse(&metrics);
    assert_eq!(m.value("cdpjob_up", ""), 0.0);
    assert_eq!(m.rows("created"), valid_leads(3_000).len() as u64);
}

/// A success, then a large run stopped by SIGTERM: its file is still written (`up` 0, the
/// rows done so far) and keeps the earlier success's timestamp, read from the job root (its
/// file is a new one). The resume continues the run's counts: requests and rows are the
/// whole run's, not the resume's alone.
#[test]
fn a_stopped_run_keeps_the_last_success_and_its_resume_continues_the_counts() {
    let sim = SimProcess::start(&["--latency-ms", "50"]);
    let ws = Workspace::new();
    ws.write("job.yaml", job(&sim.url));
    write_leads(&ws.path("leads.csv"), 30);
    let out = ws
        .spawn(
            &["run", "job.yaml", "--metrics-file", "first.prom"],
            sim_env(None),
        )
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let success =
        Metrics::parse(&ws.path("first.prom")).value("cdpjob_last_success_timestamp_seconds", "");
    let first = the_run(&ws);

    const ROWS: u64 = 40_000;
    write_leads(&ws.path("leads.csv"), ROWS);
    let mut child = ws.spawn(
        &["run", "job.yaml", "--metrics-file", "second.prom"],
        sim_env(None),
    );
    child.wait_for(
        "the second run's first commit",
        Duration::from_secs(30),
        || {
            other_run(&ws, &first).is_some_and(|d| {
                std::fs::metadata(d.join("created.jsonl")).is_ok_and(|m| m.len() > 0)
            })
        },
    );
    child.signal("TERM");
    let out = child.wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}{}", out.stdout, out.stderr);
    let dir = other_run(&ws, &first).unwrap();
    let m = Metrics::parse(&ws.path("second.prom"));
    assert_eq!(m.value("cdpjob_up", ""), 0.0);
    assert_eq!(
        m.value("cdpjob_last_success_timestamp_seconds", ""),
        success,
        "the stopped run dropped or changed the last success"
    );
    let stopped = summary(&dir);
    let created = m.rows("created");
    assert_eq!(created, stopped["counts"]["created"].as_u64().unwrap());
    assert!(created > 0 && created < valid_leads(ROWS).len() as u64);
    let requests_first = m.value("cdpjob_requests_total", "") as u64;
    assert_eq!(requests_first, stopped["requests"].as_u64().unwrap());

    let out = ws
        .spawn(
            &[
                "resume",
                dir.to_str().unwrap(),
                "--metrics-file",
                "second.prom",
            ],
            sim_env(None),
        )
        .wait_within(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let m = Metrics::parse(&ws.path("second.prom"));
    assert_eq!(m.rows("created"), valid_leads(ROWS).len() as u64);
    let resumed = summary(&dir);
    // The journal's requests (intents not withdrawn) over both invocations.
    let events = jsonl(&dir.join("events.jsonl"));
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count() as u64;
    let journaled = count("intent") - count("withdrawn");
    assert_eq!(m.value("cdpjob_requests_total", "") as u64, journaled);
    assert_eq!(
        journaled,
        requests_first + resumed["requests"].as_u64().unwrap(),
        "the resume's requests were added to the stopped run's"
    );
    assert!(m.value("cdpjob_last_success_timestamp_seconds", "") > success);
}
