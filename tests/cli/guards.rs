//! Guards (SPEC §7, §12 R10): a mapping broken by a renamed key is refused before any
//! request and before any run directory (exit 4, the counts by reason); a target that fails
//! too many rows stops the run as answers arrive (exit 4, journaled, resumable), a plain
//! `resume` stops again at once, `resume --no-guard` finishes it with every row in exactly
//! one outcome; `validate` refuses `max_rejected` on standard input; `guard:` changes alone
//! do not block a resume (R3). The sources are far larger than the pipeline's buffers, so
//! a guard that only looked at the first chunks, or a stop that waited on the reader,
//! would show.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Exited, SimProcess, Workspace, assert_lock_free, jsonl, read, run, sim_env};

/// A job `g` against `url` reading `source` (csv or jsonl), with `extra` lines at the end.
fn job(url: &str, source: &str, extra: &str) -> String {
    let kind = source.rsplit('.').next().unwrap();
    format!(
        "version: 1
name: g
kind: batch_create
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  concurrency: {CONCURRENCY}
  max_retries: 2
  timeout_secs: 10
source: {{type: {kind}, path: {source}}}
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: 100
{extra}"
    )
}

const CONCURRENCY: u64 = 4;

/// `rows` customers as JSON Lines; every 10th row (10%) came from a system that renamed
/// `phone` to `mobile`, so the mapping's `row.phone` is undefined there.
fn write_renamed(path: &Path, rows: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 1..=rows {
        let key = if i % 10 == 0 { "mobile" } else { "phone" };
        writeln!(out, r#"{{"name": "Lead {i}", "{key}": "86139{i:08}"}}"#).unwrap();
    }
    out.flush().unwrap();
}

/// `rows` customers as CSV; every 10th (10%) names an agent the simulator does not have,
/// which with `strict_binding: true` fails that row (12148) and creates the others.
fn write_unknown_agents(path: &Path, rows: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "name,phone,agent").unwrap();
    for i in 1..=rows {
        let agent = if i % 10 == 0 { "nobody" } else { "agent-1" };
        writeln!(out, "Lead {i},86139{i:08},{agent}").unwrap();
    }
    out.flush().unwrap();
}

/// A job of `leads.csv` whose rows fail at the API for an unknown agent, with `max_failed`.
fn agents_job(url: &str, max_failed: &str) -> String {
    job(
        url,
        "leads.csv",
        &format!("strict_binding: true\nguard:\n  max_failed: {max_failed}\n"),
    )
    .replace(
        "batch_size:",
        "  belong_seat_user: \"{{ row.agent }}\"\nbatch_size:",
    )
}

/// `cdpjob ARGS` in `ws` with the simulator's credentials, waited for with a generous bound.
#[track_caller]
fn cdpjob(ws: &Workspace, args: &[&str]) -> Exited {
    ws.spawn(args, sim_env(None))
        .wait_within(Duration::from_secs(180))
}

/// The run directories of job `g`.
fn run_dirs(ws: &Workspace) -> Vec<PathBuf> {
    crate::common::dirs_in(&ws.path("runs/g"))
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn events(dir: &Path) -> Vec<Value> {
    jsonl(&dir.join("events.jsonl"))
}

/// Each request the journal holds an intent for and did not withdraw was sent once.
fn requests_journaled(dir: &Path) -> u64 {
    let events = events(dir);
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count() as u64;
    count("intent") - count("withdrawn")
}

/// The last journal line is a `stopped` by the `max_failed` guard.
#[track_caller]
fn assert_guard_stop_journaled(dir: &Path) {
    let last = events(dir).pop().unwrap();
    assert_eq!(last["event"], "stopped", "{last}");
    assert_eq!(last["guard"], "max_failed", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("guard max_failed: "),
        "{last}"
    );
}

#[test]
fn a_renamed_key_is_refused_before_any_request_and_any_run_directory() {
    const ROWS: u64 = 100_000;
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_renamed(&ws.path("leads.jsonl"), ROWS);
    ws.write(
        "job.yaml",
        job(&sim.url, "leads.jsonl", "guard:\n  max_rejected: \"5%\"\n"),
    );

    let out = cdpjob(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, Some(4), "{}{}", out.stdout, out.stderr);
    assert_eq!(sim.requests(), 0, "nothing reached the API");
    assert!(
        run_dirs(&ws).is_empty(),
        "no run directory: {:?}",
        run_dirs(&ws)
    );
    assert_lock_free(&ws.path("runs/g/.lock"));
    // The reason, with the numbers, and the counts by reason as `plan` prints them.
    assert!(
        out.stderr.contains(
            "error: guard max_rejected: 10000 of 100000 rows rejected (10.0%), above the limit of 5%; the run was refused and nothing was sent"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "    10000  whats_app_phone / template  (rows 10, 20, 30, 40, 50, …)  e.g. whats_app_phone: undefined value: `row.phone` is undefined"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("fix the mapping"), "{}", out.stderr);
    assert_eq!(out.stdout, "", "the text goes to stderr");

    let out = cdpjob(&ws, &["run", "--json", "job.yaml"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["exit_code"], 4);
    assert_eq!(doc["run_dir"], Value::Null);
    assert_eq!(doc["resumable"], false);
    let guard = &doc["guard"];
    assert_eq!(guard["name"], "max_rejected");
    assert_eq!(guard["limit"], "5%");
    assert_eq!(
        (guard["rejected"].as_u64(), guard["of_rows"].as_u64()),
        (Some(10_000), Some(ROWS))
    );
    let reasons = guard["rejected_by_reason"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(
        (
            &reasons[0]["field"],
            &reasons[0]["rule"],
            &reasons[0]["count"]
        ),
        (
            &"whats_app_phone".into(),
            &"template".into(),
            &10_000.into()
        )
    );
    assert_eq!(sim.requests(), 0);
    assert!(run_dirs(&ws).is_empty());
}

#[test]
fn max_rejected_is_of_the_rows_the_filter_keeps_and_a_run_within_it_goes_on() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    // 2,000 rows, 200 of them renamed (rejected); the filter keeps those and rows 1–1,000,
    // skipping 900: 200 rejected of the 1,100 kept is 18.2%, though it is 10% of the file.
    write_renamed(&ws.path("leads.jsonl"), 2_000);
    let filtered = |limit: &str| {
        job(
            &sim.url,
            "leads.jsonl",
            &format!("guard:\n  max_rejected: \"{limit}\"\n"),
        )
        .replace(
            "mapping:",
            "filter: \"row_number % 10 == 0 or row_number <= 1000\"\nmapping:",
        )
    };
    ws.write("job.yaml", filtered("15%"));
    let plan = run(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(
        plan.code, 0,
        "plan exits 0 whatever its verdict: {}",
        plan.stderr
    );
    let doc: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        (&doc["counts"]["skipped"], &doc["counts"]["rejected"]),
        (&900.into(), &200.into())
    );
    let verdict = &doc["guard"]["max_rejected"];
    assert_eq!(verdict["verdict"], "would_refuse", "{verdict}");
    assert_eq!(
        (&verdict["rejected"], &verdict["of_rows"]),
        (&200.into(), &1100.into())
    );
    let text = run(ws.cmd(&["plan", "job.yaml"]));
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains(
            "guard max_rejected 15%: would refuse the run (exit 4, nothing sent): 200 of 1100 rows rejected (18.2%), above the limit of 15%\n"
        ),
        "{}",
        text.stdout
    );
    let out = cdpjob(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(sim.requests(), 0);

    ws.write("job.yaml", filtered("18.5%"));
    let text = run(ws.cmd(&["plan", "job.yaml"]));
    assert!(
        text.stdout.contains(
            "guard max_rejected 18.5%: would pass: 200 of 1100 rows rejected (18.2%), within the limit of 18.5%\n"
        ),
        "{}",
        text.stdout
    );
    let out = cdpjob(&ws, &["run", "--json", "job.yaml"]);
    assert_eq!(
        out.code,
        Some(1),
        "rows rejected, the run went on: {}",
        out.stderr
    );
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["counts"]["created"], 900);
    assert_eq!(summary["counts"]["rejected"], 200);
    assert_eq!(sim.requests(), 9, "900 customers in batches of 100");
}

#[test]
fn max_failed_stops_the_run_as_answers_arrive_and_resume_no_guard_finishes_it() {
    const ROWS: u64 = 50_000;
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_unknown_agents(&ws.path("leads.csv"), ROWS);
    ws.write("job.yaml", agents_job(&sim.url, "\"5%\""));
    let lock = ws.path("runs/g/.lock");

    // 10% of the rows fail: the first answers take the run past 5% of 100.
    let out = cdpjob(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, Some(4), "{}{}", out.stdout, out.stderr);
    let dirs = run_dirs(&ws);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    // As the run prints it: relative to the workspace.
    let dir_arg = format!("runs/g/{}", dir.file_name().unwrap().to_str().unwrap());
    let dir_arg = dir_arg.as_str();
    assert_lock_free(&lock);
    assert_guard_stop_journaled(dir);
    let summary = json_of(&dir.join("summary.json"));
    assert_eq!(summary["status"], "stopped_by_guard", "{summary}");
    assert_eq!(summary["resumable"], true);
    let counts = &summary["counts"];
    let (created, failed) = (
        counts["created"].as_u64().unwrap(),
        counts["failed"].as_u64().unwrap(),
    );
    assert!(
        created + failed >= 100 && failed * 20 > created + failed,
        "{counts}"
    );
    // No request after the stop: the batches waiting for a slot were withdrawn, so the API
    // saw only those in flight — a handful of the 500 batches.
    let sent = sim.requests();
    assert_eq!(
        sent,
        requests_journaled(dir),
        "every request sent is journaled once"
    );
    assert_eq!(summary["requests"], sent);
    assert!(
        sent <= 2 * CONCURRENCY,
        "{sent} requests: the guard did not stop the sending"
    );
    assert!(out.stdout.contains("stopped by a guard"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("cdpjob resume {dir_arg} --no-guard")),
        "{}",
        out.stdout
    );
    let status = run(ws.cmd(&["status", "--json", dir_arg]));
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        (&status["status"], &status["resumable"]),
        (&"stopped_by_guard".into(), &true.into())
    );

    // A plain resume checks the guard again, on what the run has done: it stops at once.
    let out = cdpjob(&ws, &["resume", "--json", dir_arg]);
    assert_eq!(out.code, Some(4), "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["status"], "stopped_by_guard");
    assert_eq!(
        (&doc["run_dir"], &doc["resumable"], &doc["requests"]),
        (&dir_arg.into(), &true.into(), &0.into())
    );
    assert_eq!(sim.requests(), sent, "the plain resume sent nothing");
    assert_guard_stop_journaled(dir);
    assert_lock_free(&lock);

    // --no-guard goes on past it to the end.
    let out = cdpjob(&ws, &["resume", "--no-guard", dir_arg]);
    assert_eq!(
        out.code,
        Some(1),
        "rows failed: exit 1\n{}{}",
        out.stdout,
        out.stderr
    );
    let summary = json_of(&dir.join("summary.json"));
    assert_eq!(summary["status"], "finished", "{summary}");
    let counts = &summary["counts"];
    assert_eq!(
        ["rows", "created", "failed", "rejected", "skipped"].map(|k| counts[k].as_u64().unwrap()),
        [ROWS, ROWS / 10 * 9, ROWS / 10, 0, 0],
        "{counts}"
    );
    assert_lock_free(&lock);
    // Every row in exactly one result file, once.
    let mut seen = BTreeSet::new();
    for file in ["created", "failed", "rejected"] {
        for line in jsonl(&dir.join(format!("{file}.jsonl"))) {
            let row = line["row"].as_u64().unwrap();
            assert!(seen.insert(row), "row {row} twice ({file})");
            if file == "failed" {
                assert_eq!(
                    (row % 10, &line["error_code"]),
                    (0, &12148.into()),
                    "{line}"
                );
            }
        }
    }
    assert_eq!(seen, (1..=ROWS).collect::<BTreeSet<u64>>());
    // Each of the 500 batches was sent once in all: none twice, none lost.
    assert_eq!(sim.requests(), ROWS / 100);
    assert_eq!(requests_journaled(dir), ROWS / 100);
}

#[test]
fn a_changed_guard_alone_does_not_block_a_resume() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_unknown_agents(&ws.path("leads.csv"), 5_000);
    ws.write("job.yaml", agents_job(&sim.url, "\"5%\""));
    let out = cdpjob(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    let dir = run_dirs(&ws).pop().unwrap();

    // A looser guard (R3: not part of what the run sends): the resume goes on under it.
    ws.write("job.yaml", agents_job(&sim.url, "\"15%\""));
    let out = cdpjob(&ws, &["resume", dir.to_str().unwrap()]);
    assert_eq!(
        out.code,
        Some(1),
        "finished, 10% of the rows failed\n{}{}",
        out.stdout,
        out.stderr
    );
    let summary = json_of(&dir.join("summary.json"));
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["counts"]["failed"], 500);
}

#[test]
fn validate_refuses_max_rejected_on_standard_input() {
    let ws = Workspace::new();
    let stdin_job =
        |guard: &str| job("sim", "leads.csv", guard).replace("path: leads.csv", "path: \"-\"");
    ws.write(
        "job.yaml",
        stdin_job("guard:\n  max_failed: 10\n  max_rejected: \"5%\"\n"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let line = read(&ws.path("job.yaml"))
        .lines()
        .position(|l| l.starts_with("  max_rejected:"))
        .unwrap()
        + 1;
    assert!(
        out.stderr.contains(&format!(
            "job.yaml:{line}:3: `guard.max_rejected` reads the whole source before the first request, and standard input (`source.path: \"-\"`) can be read only once"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 problem found"), "{}", out.stderr);

    // max_failed alone is checked as answers arrive: fine on standard input.
    ws.write("job.yaml", stdin_job("guard:\n  max_failed: 10\n"));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}
