//! `cdpjob explain JOB --row N [--run RUN_DIR]`: one row end to end, pinned as snapshots
//! (tests/cli/snapshots/cli__explain__*.snap) for a created, a rejected, a skipped and a
//! bisected row and the `--json` of one, each checked against the run's own files too; a row
//! past the end; the agreement of the native fast path and minijinja, and its alarm.

use serde_json::Value;

use crate::common::{Output, Workspace, jsonl, repo, run};

/// A secret in the environment that must never show (explain reads none: it is offline).
const CANARY: &str = "secret-canary-Xy7Q";

/// Pinned with the snapshot filters of tests/cli/snapshots.rs (here, so that the snapshots
/// are named after this module).
#[track_caller]
fn assert_contract(name: &str, command: &str, text: &str) {
    assert!(
        text.ends_with('\n') && !text.ends_with("\n\n"),
        "{command}: the output must end in exactly one newline: {text:?}"
    );
    insta::with_settings!({
        filters => crate::snapshots::filters(),
        description => command,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

/// `cdpjob ARGS` in `ws`, the canary as the secret; it must show nowhere.
fn cdpjob(ws: &Workspace, args: &[&str]) -> Output {
    let mut c = ws.cmd(args);
    // The embedded simulator of the runs takes its secret from there too.
    c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", CANARY)
        .env_remove("CDPJOB_FAILPOINT");
    let out = run(c);
    assert!(
        !out.stdout.contains(CANARY) && !out.stderr.contains(CANARY),
        "the secret showed: {}{}",
        out.stdout,
        out.stderr
    );
    out
}

/// A workspace with the quickstart job and its data (runs go to `runs/`).
fn quickstart() -> Workspace {
    let ws = Workspace::new();
    for f in ["quickstart.yaml", "data/leads.csv"] {
        ws.write(
            &format!("jobs/{f}"),
            std::fs::read(repo().join("jobs").join(f)).unwrap(),
        );
    }
    ws
}

/// Run `job` into the embedded simulator; its run directory, relative to the workspace.
#[track_caller]
fn run_job(ws: &Workspace, job: &str, name: &str) -> String {
    let out = cdpjob(ws, &["run", job]);
    assert!(out.code <= 1, "{}{}", out.stdout, out.stderr);
    let dirs = crate::common::run_dirs(&ws.path(&format!("runs/{name}")));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    format!(
        "runs/{name}/{}",
        dirs[0].file_name().unwrap().to_str().unwrap()
    )
}

/// The line of `file` in the run directory for `row`.
#[track_caller]
fn result_line(ws: &Workspace, dir: &str, file: &str, row: u64) -> Value {
    jsonl(&ws.path(&format!("{dir}/{file}")))
        .into_iter()
        .find(|l| l["row"] == row)
        .unwrap_or_else(|| panic!("no row {row} in {file}"))
}

#[track_caller]
fn explain_ok(ws: &Workspace, args: &[&str]) -> String {
    let out = cdpjob(ws, args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr, "", "no warning expected");
    out.stdout
}

#[test]
fn a_created_row_shows_both_render_paths_and_its_customer_id() {
    let ws = quickstart();
    let dir = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let args = [
        "explain",
        "jobs/quickstart.yaml",
        "--row",
        "1",
        "--run",
        &dir,
    ];
    let text = explain_ok(&ws, &args);
    let id = result_line(&ws, &dir, "created.jsonl", 1)["customer_id"]
        .as_i64()
        .unwrap();
    assert!(
        text.contains(&format!("outcome  created, customer id {id}\n")),
        "{text}"
    );
    // The quickstart mixes templates the native path renders and ones only minijinja can.
    for line in [
        r#"  first_name                      "Jun"                     native = minijinja  {{ row.first | trim }}"#,
        r#"  full_name                       "Jun Silva"               minijinja only      {{ (row.first ~ ' ' ~ row.last) | trim }}"#,
        "batch 0 (rows 1–25: 25 row(s), 20 customer(s) sent): position 1 of 20 in its batch_create request",
        "the native fast path and minijinja agree on every template and on the outcome",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_contract(
        "created_row",
        "cdpjob explain jobs/quickstart.yaml --row 1 --run RUN_DIR",
        &text,
    );
}

#[test]
fn the_json_of_a_created_row_carries_both_paths_and_the_run() {
    let ws = quickstart();
    let dir = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let args = [
        "explain",
        "jobs/quickstart.yaml",
        "--row",
        "2",
        "--run",
        &dir,
        "--json",
    ];
    let text = explain_ok(&ws, &args);
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["run_dir"], dir.as_str());
    assert_eq!(doc["resumable"], false);
    assert_eq!(doc["outcome"], "valid");
    assert_eq!(doc["paths_agree"], true);
    let paths: Vec<&str> = doc["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["native_path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"rendered") && paths.contains(&"no_native_form"),
        "{paths:?}"
    );
    for slot in doc["mapping"].as_array().unwrap() {
        assert_eq!(slot["agree"], true, "{slot}");
        if slot["native_path"] == "rendered" {
            assert_eq!(slot["native"], slot["minijinja"], "{slot}");
        }
    }
    let line = result_line(&ws, &dir, "created.jsonl", 2);
    assert_eq!(doc["run"]["customer_id"], line["customer_id"]);
    assert_eq!(doc["run"]["result_line"], line);
    assert_eq!(doc["batch"]["position"], 2);
    assert_eq!(doc["run"]["events"][0]["journal"]["event"], "intent");
    assert_contract(
        "created_row_json",
        "cdpjob explain jobs/quickstart.yaml --row 2 --run RUN_DIR --json",
        &text,
    );
}

#[test]
fn a_rejected_row_names_the_rule_and_takes_no_place() {
    let ws = quickstart();
    let dir = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let args = [
        "explain",
        "jobs/quickstart.yaml",
        "--row",
        "7",
        "--run",
        &dir,
    ];
    let text = explain_ok(&ws, &args);
    let line = result_line(&ws, &dir, "rejected.jsonl", 7);
    let message = line["errors"][0]["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("outcome  rejected: {message}\n")),
        "{text}"
    );
    assert!(
        text.contains("the row takes no place in a request"),
        "{text}"
    );
    assert_contract(
        "rejected_row",
        "cdpjob explain jobs/quickstart.yaml --row 7 --run RUN_DIR",
        &text,
    );
}

#[test]
fn a_skipped_row_shows_the_filter_verdict() {
    let ws = quickstart();
    let dir = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let args = [
        "explain",
        "jobs/quickstart.yaml",
        "--row",
        "31",
        "--run",
        &dir,
    ];
    let text = explain_ok(&ws, &args);
    for f in ["created.jsonl", "failed.jsonl", "rejected.jsonl"] {
        assert!(
            !jsonl(&ws.path(&format!("{dir}/{f}")))
                .iter()
                .any(|l| l["row"] == 31),
            "a skipped row has no result line"
        );
    }
    assert!(
        text.contains("  skips the row (native = minijinja)\n"),
        "{text}"
    );
    assert!(text.contains("  outcome  skipped\n"), "{text}");
    assert_contract(
        "skipped_row",
        "cdpjob explain jobs/quickstart.yaml --row 31 --run RUN_DIR",
        &text,
    );
}

/// Ten leads in batches of 8, row 7's agent unknown: the simulator refuses the first batch
/// as a whole (12148, strict_binding false) and the run bisects it down to row 7.
fn bisected() -> (Workspace, String) {
    let ws = Workspace::new();
    let mut csv = String::from("name,phone,agent\n");
    for i in 1..=10 {
        let agent = if i == 7 { "ghost" } else { "agent-1" };
        csv.push_str(&format!("L{i},86139{i:08},{agent}\n"));
    }
    ws.write("leads.csv", csv);
    ws.write(
        "job.yaml",
        "version: 1
name: bisect
kind: batch_create
api: {base_url: sim, tenant_id: 123, app_key: k}
source: {type: csv, path: leads.csv}
mapping:
  full_name: \"{{ row.name ~ '' }}\"
  whats_app_phone: \"{{ row.phone }}\"
  belong_seat_user: \"{{ row.agent }}\"
batch_size: 8
",
    );
    let dir = run_job(&ws, "job.yaml", "bisect");
    (ws, dir)
}

#[test]
fn a_bisected_row_shows_its_batch_split_down_to_it() {
    let (ws, dir) = bisected();
    let text = explain_ok(&ws, &["explain", "job.yaml", "--row", "7", "--run", &dir]);
    let failed = result_line(&ws, &dir, "failed.jsonl", 7);
    assert_eq!(failed["error_code"], 12148);
    assert!(text.contains("  outcome  failed: error 12148 "), "{text}");
    // Every split on the way to row 7 is marked, and the halves without it are not.
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Z  *  "))
        .map(|l| l.split("Z  *  ").nth(1).unwrap())
        .collect();
    let splits: Vec<&&str> = marked.iter().filter(|l| l.starts_with("bisect")).collect();
    assert_eq!(splits.len(), 3, "8 → 4 → 2 → 1: {marked:#?}");
    assert!(
        marked
            .iter()
            .any(|l| l.starts_with("intent   customer 7 (row 7)")),
        "{marked:#?}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Z     outcome  customers 1–4 (rows 1–4): 4 created")),
        "{text}"
    );
    // A created row of the same batch: its half is marked instead.
    let other = explain_ok(&ws, &["explain", "job.yaml", "--row", "2", "--run", &dir]);
    assert!(
        other
            .lines()
            .any(|l| l.contains("Z  *  outcome  customers 1–4 (rows 1–4): 4 created")),
        "{other}"
    );
    assert_contract(
        "bisected_row",
        "cdpjob explain job.yaml --row 7 --run RUN_DIR",
        &text,
    );
}

#[test]
fn a_row_past_the_end_is_refused_naming_the_last_row() {
    let ws = quickstart();
    let out = cdpjob(&ws, &["explain", "jobs/quickstart.yaml", "--row", "51"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .contains("row 51 is past the end of jobs/data/leads.csv (csv): its last row is 50"),
        "{}",
        out.stderr
    );
    let out = cdpjob(
        &ws,
        &["explain", "jobs/quickstart.yaml", "--row", "51", "--json"],
    );
    assert_eq!(out.code, 2);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (doc["format_version"].as_u64(), doc["exit_code"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("its last row is 50")
    );
    // The last row itself is there.
    explain_ok(&ws, &["explain", "jobs/quickstart.yaml", "--row", "50"]);
}

#[test]
fn a_job_changed_since_the_run_is_warned_about() {
    let ws = quickstart();
    let dir = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let job = ws.path("jobs/quickstart.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replace("| trim | lower }}", "| trim }}")).unwrap();
    let out = cdpjob(
        &ws,
        &[
            "explain",
            "jobs/quickstart.yaml",
            "--row",
            "1",
            "--run",
            &dir,
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["run"]["job_changed"], true);
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap()
            .contains("differs from the job the run started with"),
        "{doc}"
    );
    // The mapping is the job's as it is now; the outcome the run's.
    assert_eq!(doc["run"]["outcome"], "created");
    let out = cdpjob(
        &ws,
        &[
            "explain",
            "jobs/quickstart.yaml",
            "--row",
            "1",
            "--run",
            &dir,
        ],
    );
    assert!(out.stderr.starts_with("warning: "), "{}", out.stderr);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_disagreement_of_the_two_paths_is_reported_as_a_bug_with_exit_1() {
    let ws = quickstart();
    let mut c = ws.cmd(&["explain", "jobs/quickstart.yaml", "--row", "1"]);
    c.env("CDPJOB_FAILPOINT", "explain_native_differs");
    let out = run(c);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("NATIVE ≠ MINIJINJA")
            && out
                .stdout
                .contains("THE NATIVE FAST PATH AND MINIJINJA DISAGREE"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(r#"first_name: native "Jun!", minijinja "Jun""#),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("this is a bug in cdpjob"),
        "{}",
        out.stderr
    );
    let mut c = ws.cmd(&["explain", "jobs/quickstart.yaml", "--row", "1", "--json"]);
    c.env("CDPJOB_FAILPOINT", "explain_native_differs");
    let out = run(c);
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["paths_agree"], false);
    assert_eq!(doc["mapping"][1]["agree"], false, "{}", doc["mapping"][1]);
}

#[test]
fn an_unchanged_row_of_a_sync_takes_no_place_in_its_run() {
    let ws = quickstart();
    let job = ws.path("jobs/quickstart.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(
        &job,
        text.replace("merge: update\n", "merge: update\nsync: changed\n"),
    )
    .unwrap();
    let first = run_job(&ws, "jobs/quickstart.yaml", "quickstart");
    let out = cdpjob(&ws, &["run", "jobs/quickstart.yaml"]);
    assert!(out.code <= 1, "{}", out.stderr);
    let dirs = crate::common::run_dirs(&ws.path("runs/quickstart"));
    let second = dirs
        .iter()
        .map(|d| {
            format!(
                "runs/quickstart/{}",
                d.file_name().unwrap().to_str().unwrap()
            )
        })
        .find(|d| *d != first)
        .unwrap();
    let explain = |dir: &str| -> Value {
        let out = cdpjob(
            &ws,
            &[
                "explain",
                "jobs/quickstart.yaml",
                "--row",
                "2",
                "--run",
                dir,
                "--json",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    // Each run compared with its own snapshot: the first sent the row, the second did not.
    let a = explain(&first);
    assert_eq!(
        (a["outcome"].as_str(), a["run"]["outcome"].as_str()),
        (Some("valid"), Some("created"))
    );
    let b = explain(&second);
    assert_eq!(
        (b["outcome"].as_str(), b["run"]["outcome"].as_str()),
        (Some("unchanged"), Some("unchanged"))
    );
    assert_eq!(b["batch"]["position"], Value::Null);
    assert_eq!(b["sync"]["match_key"], "whats_app_phone:8613805032582");
}

#[test]
fn the_retries_of_a_rows_batch_are_in_its_journal() {
    // Half the answers are a 500 (seeded): the batches are sent again, and each retry is
    // tied to its batch by the body's hash, which its intent names too.
    let sim = crate::common::SimProcess::start(&["--fail-5xx", "0.5", "--seed", "5"]);
    let ws = Workspace::new();
    let mut csv = String::from("name,phone\n");
    for i in 1..=30 {
        csv.push_str(&format!("L{i},86139{i:08}\n"));
    }
    ws.write("leads.csv", csv);
    ws.write(
        "job.yaml",
        format!(
            "version: 1
name: retried
kind: batch_create
api: {{base_url: \"{}\", tenant_id: 123, app_key: \"46oKF=os\", max_retries: 10}}
source: {{type: csv, path: leads.csv}}
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: 10
",
            sim.url
        ),
    );
    let sim_cmd = |args: &[&str]| {
        let mut c = ws.cmd(args);
        crate::common::with_sim_credentials(&mut c);
        run(c)
    };
    let out = sim_cmd(&["run", "job.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dirs = crate::common::run_dirs(&ws.path("runs/retried"));
    let dir = dirs[0].to_str().unwrap().to_string();
    let journal = jsonl(&dirs[0].join("events.jsonl"));
    let retried: Vec<&Value> = journal.iter().filter(|e| e["event"] == "retry").collect();
    assert!(!retried.is_empty(), "the seed gives retries: {journal:#?}");
    // Every retry of the run shows in the explanation of a row of its batch.
    let mut shown = 0;
    for row in [1, 11, 21] {
        let out = sim_cmd(&[
            "explain",
            "job.yaml",
            "--row",
            &row.to_string(),
            "--run",
            &dir,
        ]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("  retry  "))
            .collect();
        for l in &lines {
            assert!(l.contains("  *  retry    customers 1–10"), "{l}");
            assert!(l.contains("failed (") && l.contains("again in "), "{l}");
        }
        shown += lines.len();
    }
    assert_eq!(shown, retried.len(), "each retry under its own batch, once");
}
