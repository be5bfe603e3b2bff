//! Every stop ends the process, with exit 3 and the job's lock released, however large the
//! source: a wrong secret, a signal, retries exhausted, for imports and exports; and a run
//! that is not stopped ends by itself. The sources (200,000 rows) are far larger than the
//! pipeline's buffers, which is what made these stops hang: a reader blocked on a full
//! queue that nobody read any more.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    Exited, SimProcess, Workspace, assert_lock_free, jsonl, read, sim_env, valid_leads, write_leads,
};

/// Far more rows than the pipeline holds (a few batches per request slot).
const ROWS: u64 = 200_000;
const CONCURRENCY: u64 = 8;

/// A batch_create job `t` of the leads in `leads.csv`, against `url`.
fn import_job(url: &str, max_retries: u32) -> String {
    format!(
        "version: 1
name: t
kind: batch_create
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  max_retries: {max_retries}
  timeout_secs: 5
  concurrency: {CONCURRENCY}
source: {{type: csv, path: leads.csv}}
filter: \"row.status != 'inactive'\"
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: 100
"
    )
}

/// A workspace with `rows` leads and the import job against `url`.
fn import(url: &str, rows: u64, max_retries: u32) -> Workspace {
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), rows);
    ws.write("job.yaml", import_job(url, max_retries));
    ws
}

/// A query_export job `e` of every customer, one id a line.
fn export_job(url: &str) -> String {
    format!(
        "version: 1
name: e
kind: query_export
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  max_retries: 8
  timeout_secs: 5
query:
  page_size: 50
output:
  path: \"out/customers-{{{{ run.id }}}}.csv\"
  columns: [id]
"
    )
}

/// The run directories of job `name`, oldest first.
fn run_dirs(ws: &Workspace, name: &str) -> Vec<PathBuf> {
    crate::common::dirs_in(&ws.path(&format!("runs/{name}")))
}

#[track_caller]
fn the_run_dir(ws: &Workspace, name: &str) -> PathBuf {
    let mut dirs = run_dirs(ws, name);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// A file of the first run directory of `name` exists and is not empty.
fn first_run_has(ws: &Workspace, name: &str, file: &str) -> bool {
    run_dirs(ws, name)
        .first()
        .and_then(|d| std::fs::metadata(d.join(file)).ok())
        .is_some_and(|m| m.len() > 0)
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&read(&dir.join("summary.json"))).unwrap()
}

/// The journal's request intents, and how many of them were withdrawn (never sent).
fn intents(dir: &Path) -> (u64, u64) {
    let events = jsonl(&dir.join("events.jsonl"));
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count() as u64;
    (count("intent"), count("withdrawn"))
}

/// Exit 3, and the run directory says the run was interrupted (so it can be resumed).
#[track_caller]
fn assert_stopped(out: &Exited, dir: &Path) {
    assert_eq!(
        out.code,
        Some(3),
        "a stop is exit 3\n{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(summary(dir)["status"], "interrupted", "{}", out.stdout);
}

/// `since` is less than `limit` ago.
#[track_caller]
fn assert_within(what: &str, since: Instant, limit: Duration) {
    let took = since.elapsed();
    assert!(took < limit, "{what} took {took:?}, over {limit:?}");
}

/// Every source row in exactly one of created / failed / rejected (or skipped), no line
/// twice, the summary's counts adding up; the created rows.
#[track_caller]
fn assert_each_row_once(dir: &Path, total: u64) -> BTreeSet<u64> {
    let [created, failed, rejected] = ["created", "failed", "rejected"].map(|f| {
        let lines = jsonl(&dir.join(format!("{f}.jsonl")));
        let rows: BTreeSet<u64> = lines.iter().map(|l| l["row"].as_u64().unwrap()).collect();
        assert_eq!(rows.len(), lines.len(), "a row twice in {f}.jsonl");
        rows
    });
    assert!(
        created.is_disjoint(&failed)
            && created.is_disjoint(&rejected)
            && failed.is_disjoint(&rejected),
        "a row in two result files"
    );
    let s = summary(dir);
    let c = &s["counts"];
    assert_eq!(c["rows"], total, "{s}");
    let skipped = c["skipped"].as_u64().unwrap();
    assert_eq!(
        (created.len() + failed.len() + rejected.len()) as u64 + skipped,
        total,
        "{s}"
    );
    created
}

/// Each created row has a customer of its own, and the simulators wrote `written`
/// customers in all: one write per created row means no batch was sent twice. (Their
/// `/__sim/customers` view of 173,000 customers takes half a minute in a debug build.)
#[track_caller]
fn assert_written_once(dir: &Path, written: u64) {
    let created = jsonl(&dir.join("created.jsonl"));
    let ids: BTreeSet<i64> = created
        .iter()
        .map(|l| l["customer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), created.len(), "two rows with one customer id");
    assert_eq!(
        written,
        created.len() as u64,
        "customers written by the simulator"
    );
}

/// Customers the simulator has written (created or merged into).
fn written(sim: &SimProcess) -> u64 {
    sim.get("/__sim/stats")["customers_written"]
        .as_u64()
        .unwrap()
}

/// Import `rows` leads into the simulator at `sim` (for the exports to have something).
fn seed(sim: &SimProcess, rows: u64) {
    let ws = import(&sim.url, rows, 8);
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(None))
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "seeding: {}{}", out.stdout, out.stderr);
}

/// Every request is answered 1003: the requests sent before the first answer came are
/// all there are (one per request slot at most), and the process ends at once.
#[test]
fn a_wrong_secret_stops_a_200k_row_import_at_once_after_at_most_concurrency_requests() {
    let sim = SimProcess::start(&[]);
    let ws = import(&sim.url, ROWS, 8);
    let started = Instant::now();
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(Some("wrong-secret")))
        .wait_within(Duration::from_secs(60));
    assert_within(
        "stopping on a wrong secret",
        started,
        Duration::from_secs(30),
    );
    let dir = the_run_dir(&ws, "t");
    assert_stopped(&out, &dir);
    let stats = sim.get("/__sim/stats");
    let sent = stats["requests"].as_u64().unwrap();
    assert!(
        (1..=CONCURRENCY).contains(&sent),
        "{sent} requests sent: {stats}"
    );
    assert_eq!(stats["codes"]["1003"], sent, "{stats}");
    let (intents, withdrawn) = intents(&dir);
    assert_eq!(
        intents - withdrawn,
        sent,
        "every request sent was journaled"
    );
    assert_lock_free(&ws.path("runs/t/.lock"));
}

/// SIGTERM once the first batch is committed: the process ends within the grace, sends
/// nothing after the signal, and a resume (against a simulator with the same state, on the
/// same address, without the latency) creates every row exactly once.
#[test]
fn sigterm_stops_a_200k_row_import_and_the_resume_creates_each_row_once() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("sim.jsonl");
    let state_arg = state_file.to_str().unwrap();
    let sim = SimProcess::start(&["--latency-ms", "100", "--state", state_arg]);
    let ws = import(&sim.url, ROWS, 8);
    let mut child = ws.spawn(&["run", "job.yaml"], sim_env(None));
    child.wait_for("first commit", Duration::from_secs(30), || {
        first_run_has(&ws, "t", "created.jsonl")
    });
    child.signal("TERM");
    let signalled = Instant::now();
    // Whatever was sent before the signal has reached the simulator by now: 50 ms was not
    // always enough on a loaded machine (3 requests of the moment of the signal arrived
    // later). A run that went on sending would send many more batches than those in the
    // 15 s drain, and every request sent must still be one the journal has.
    std::thread::sleep(Duration::from_millis(500));
    let sent_by_then = sim.requests();
    let out = child.wait_within(Duration::from_secs(60));
    assert_within("stopping on SIGTERM", signalled, Duration::from_secs(20));
    let dir = the_run_dir(&ws, "t");
    assert_stopped(&out, &dir);
    let sent = sim.requests();
    assert_eq!(sent, sent_by_then, "a request was sent after the signal");
    let (intents, withdrawn) = intents(&dir);
    assert_eq!(
        intents - withdrawn,
        sent,
        "every request sent was journaled"
    );
    let rows = summary(&dir)["counts"]["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < ROWS, "stopped mid-run: {rows} rows done");
    assert_lock_free(&ws.path("runs/t/.lock"));

    let written_before = written(&sim);
    let addr = sim.addr().to_string();
    drop(sim);
    let sim = SimProcess::start_at(&addr, &["--state", state_arg]);
    let out = ws
        .spawn(&["resume", dir.to_str().unwrap()], sim_env(None))
        .wait_within(Duration::from_secs(120));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(summary(&dir)["status"], "finished");
    let created = assert_each_row_once(&dir, ROWS);
    assert_eq!(created, valid_leads(ROWS));
    assert_written_once(&dir, written_before + written(&sim));
    assert_lock_free(&ws.path("runs/t/.lock"));
}

/// The API goes down for good once the run is under way (the simulator is replaced by one
/// that answers every request with 503): the run stops when a batch's retries are spent,
/// sends no new batch after that, says why, and leaves the lock free for the next run.
#[test]
fn a_total_outage_stops_a_200k_row_import_once_retries_are_exhausted() {
    let max_retries = 2;
    let healthy = SimProcess::start(&["--latency-ms", "20"]);
    let ws = import(&healthy.url, ROWS, max_retries);
    let mut child = ws.spawn(&["run", "job.yaml"], sim_env(None));
    child.wait_for("first commit", Duration::from_secs(30), || {
        first_run_has(&ws, "t", "created.jsonl")
    });
    let addr = healthy.addr().to_string();
    drop(healthy);
    let down = SimProcess::start_at(&addr, &["--fail-5xx", "1.0"]);
    let outage = Instant::now();
    let out = child.wait_within(Duration::from_secs(60));
    assert_within("stopping on the outage", outage, Duration::from_secs(30));
    let dir = the_run_dir(&ws, "t");
    assert_stopped(&out, &dir);
    let stats = down.get("/__sim/stats");
    // Only the batches in flight when the API went down are tried, each at most 1 +
    // max_retries times.
    let tried = stats["requests"].as_u64().unwrap();
    assert!(
        tried > 0 && tried <= CONCURRENCY * (1 + max_retries as u64),
        "{tried} requests during the outage: {stats}"
    );
    let why = read(&dir.join("summary.json"));
    assert!(
        why.contains(&format!("gave up after {} attempts", 1 + max_retries)),
        "the summary says why: {why}"
    );
    let rows = summary(&dir)["counts"]["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < ROWS, "stopped mid-run: {rows} rows done");
    assert_lock_free(&ws.path("runs/t/.lock"));

    // The next run is not refused: it takes the lock, and stops on the outage as well.
    let next = ws
        .spawn(&["run", "job.yaml"], sim_env(None))
        .wait_within(Duration::from_secs(60));
    assert!(
        !next
            .stderr
            .contains("another run of this job is in progress"),
        "{}",
        next.stderr
    );
    assert_eq!(next.code, Some(3), "{}{}", next.stdout, next.stderr);
    let dirs = run_dirs(&ws, "t");
    assert_eq!(dirs.len(), 2, "the second run made its own run directory");
    for dir in &dirs {
        assert_eq!(summary(dir)["status"], "interrupted", "{}", dir.display());
    }
    assert_lock_free(&ws.path("runs/t/.lock"));
}

/// Not stopped, a source larger than the buffers runs to its end: exit 1 (the rejected
/// rows), every row accounted for, each customer created once.
#[test]
fn a_200k_row_import_runs_to_its_end() {
    let sim = SimProcess::start(&[]);
    let ws = import(&sim.url, ROWS, 8);
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(None))
        .wait_within(Duration::from_secs(180));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws, "t");
    assert_eq!(summary(&dir)["status"], "finished");
    let created = assert_each_row_once(&dir, ROWS);
    assert_eq!(created, valid_leads(ROWS));
    let rejected = jsonl(&dir.join("rejected.jsonl")).len() as u64;
    assert_eq!(
        rejected,
        (1..=ROWS).filter(|i| i % 10 == 0 && i % 15 != 0).count() as u64
    );
    assert_written_once(&dir, written(&sim));
    assert_lock_free(&ws.path("runs/t/.lock"));
}

/// SIGTERM once the first page is written: the export ends within the grace and asks
/// for no page after the signal.
#[test]
fn sigterm_stops_an_export_promptly_and_sends_nothing_after_the_signal() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().join("sim.jsonl");
    let state_arg = state_arg.to_str().unwrap();
    seed(&SimProcess::start(&["--state", state_arg]), 3_000);
    // 2,600 customers in pages of 50 at 40 ms a page: about two seconds of paging.
    let sim = SimProcess::start(&["--latency-ms", "40", "--state", state_arg]);
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url));
    let mut child = ws.spawn(&["run", "job.yaml"], sim_env(None));
    child.wait_for("first page", Duration::from_secs(30), || {
        first_run_has(&ws, "e", "checkpoint.json")
    });
    child.signal("TERM");
    let signalled = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let sent_by_then = sim.requests();
    let out = child.wait_within(Duration::from_secs(60));
    assert_within("stopping on SIGTERM", signalled, Duration::from_secs(20));
    let dir = the_run_dir(&ws, "e");
    assert_stopped(&out, &dir);
    assert_eq!(
        sim.requests(),
        sent_by_then,
        "a request was sent after the signal"
    );
    assert!(
        sent_by_then < 2_600 / 50,
        "stopped mid-export: {sent_by_then} pages asked for"
    );
    assert_lock_free(&ws.path("runs/e/.lock"));
}

/// The first page is refused with 1003: no other page is asked for, the export ends.
#[test]
fn a_wrong_secret_stops_an_export_after_its_first_request() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 3_000);
    let before = sim.requests();
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url));
    let started = Instant::now();
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(Some("wrong-secret")))
        .wait_within(Duration::from_secs(60));
    assert_within(
        "stopping on a wrong secret",
        started,
        Duration::from_secs(30),
    );
    let dir = the_run_dir(&ws, "e");
    assert_stopped(&out, &dir);
    let stats = sim.get("/__sim/stats");
    assert_eq!(
        stats["requests"].as_u64().unwrap() - before,
        1,
        "one page asked for, refused: {stats}"
    );
    assert_eq!(stats["codes"]["1003"], 1, "{stats}");
    assert_lock_free(&ws.path("runs/e/.lock"));
}

/// `Running` fails a test whose process outlives its deadline instead of hanging it.
#[test]
#[should_panic(expected = "still running")]
fn a_process_that_does_not_stop_fails_the_test() {
    let ws = Workspace::new();
    // A simulator runs until stopped.
    let _ = ws
        .spawn(&["sim", "--listen", "127.0.0.1:0"], sim_env(None))
        .wait_within(Duration::from_millis(300));
}
