//! Retries of what failed (SPEC §7, §12 R9): `cdpjob retry` and `cdpjob rows`, against the
//! simulator over real HTTP, its customers and stats the proof of what was sent.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Output, SimProcess, Workspace, jsonl, read, repo, run, with_sim_credentials};

fn cmd(ws: &Workspace, args: &[&str]) -> Output {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    run(c)
}

/// A job on the simulator at `url` (`sim` for the embedded one) reading `source`, with
/// `strict_binding: true` and the agent from the `agent` column.
fn job(url: &str, source: &str, phone: &str) -> String {
    format!(
        "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 0\nsource: {{type: csv, path: {source}}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{phone}\"\n  belong_seat_user: \"{{{{ row.agent }}}}\"\nstrict_binding: true\nbatch_size: 10\n"
    )
}

const PHONE: &str = "{{ row.phone }}";

/// `rows` leads, `name,phone,agent`: the agent of row i is `agent(i)`.
fn leads(rows: u64, agent: impl Fn(u64) -> &'static str) -> String {
    let mut s = String::from("name,phone,agent\n");
    for i in 1..=rows {
        s.push_str(&format!("Lead {i},86139{i:08},{}\n", agent(i)));
    }
    s
}

fn phone(row: u64) -> String {
    format!("86139{row:08}")
}

fn run_dirs(ws: &Workspace) -> Vec<PathBuf> {
    crate::common::run_dirs(&ws.path("runs/t"))
}

/// The one run directory that `before` did not have.
#[track_caller]
fn new_run(ws: &Workspace, before: &[PathBuf]) -> PathBuf {
    let new: Vec<PathBuf> = run_dirs(ws)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new.into_iter().next().unwrap()
}

fn rows_of(path: &Path) -> BTreeSet<u64> {
    jsonl(path)
        .iter()
        .map(|l| l["row"].as_u64().unwrap())
        .collect()
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// The simulator's customers' phones.
fn phones(sim: &SimProcess) -> BTreeSet<String> {
    sim.customers()
        .iter()
        .map(|c| c["whatsApp_phone"].as_str().unwrap().to_string())
        .collect()
}

fn written(sim: &SimProcess) -> u64 {
    sim.get("/__sim/stats")["customers_written"]
        .as_u64()
        .unwrap()
}

fn d(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 12148 with strict binding: the rows of an agent that does not exist fail, one by one.
/// The agent added (the simulator restarted with it), `retry` sends exactly those rows,
/// which keep their row numbers; the rows of a second missing agent fail again, and once it
/// is added too, a retry of the retry sends them; then nothing is left to retry.
#[test]
fn failures_12148_are_retried_once_the_agent_exists_and_a_retry_is_retried() {
    let agent = |i: u64| match i % 7 {
        0 => "agent-9",
        3 => "agent-8",
        _ => "agent-1",
    };
    let of = |a: &str| -> BTreeSet<u64> { (1..=40).filter(|i| agent(*i) == a).collect() };
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(40, agent));
    ws.write("job.yaml", job(&sim.url, "leads.csv", PHONE));
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let first = run_dirs(&ws).pop().unwrap();
    let failed = jsonl(&first.join("failed.jsonl"));
    let missing: BTreeSet<u64> = of("agent-9").union(&of("agent-8")).copied().collect();
    assert_eq!(rows_of(&first.join("failed.jsonl")), missing);
    assert!(
        failed
            .iter()
            .all(|l| l["error_code"] == 12148 && l["record"]["agent"].is_string())
    );

    // The agent-9 exists now: a fresh simulator on the same address, so what it holds is
    // exactly what the retry sent.
    let addr = sim.addr().to_string();
    drop(sim);
    let sim = SimProcess::start_at(&addr, &["--agent", "agent-1", "--agent", "agent-9"]);
    let before = run_dirs(&ws);
    let out = cmd(&ws, &["retry", d(&first)]);
    assert_eq!(
        out.code, 1,
        "agent-8 still fails\n{}{}",
        out.stdout, out.stderr
    );
    let retry = new_run(&ws, &before);
    assert_eq!(rows_of(&retry.join("created.jsonl")), of("agent-9"));
    assert_eq!(rows_of(&retry.join("failed.jsonl")), of("agent-8"));
    let expected: BTreeSet<String> = of("agent-9").into_iter().map(phone).collect();
    assert_eq!(
        phones(&sim),
        expected,
        "exactly the failed customers were sent"
    );
    assert_eq!(written(&sim), of("agent-9").len() as u64);
    assert_eq!(sim.requests(), 2, "{} rows in batches of 10", missing.len());
    let summary = json_of(&retry.join("summary.json"));
    assert_eq!(summary["counts"]["rows"], missing.len());
    assert_eq!(
        summary["retry_of"]["run_id"],
        json_of(&first.join("manifest.json"))["run_id"]
    );
    assert_eq!(summary["retry_of"]["failed"], missing.len());
    assert!(out.stdout.contains("retry of "), "{}", out.stdout);
    let manifest = json_of(&retry.join("manifest.json"));
    assert_eq!(
        manifest["kind"]["batch_create"]["retry_of"]["run_dir"],
        d(&first)
    );

    // A retry of the retry, once agent-8 exists too.
    let addr = sim.addr().to_string();
    drop(sim);
    let sim = SimProcess::start_at(
        &addr,
        &[
            "--agent", "agent-1", "--agent", "agent-8", "--agent", "agent-9",
        ],
    );
    let before = run_dirs(&ws);
    let out = cmd(&ws, &["retry", d(&retry)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let second = new_run(&ws, &before);
    assert_eq!(rows_of(&second.join("created.jsonl")), of("agent-8"));
    let expected: BTreeSet<String> = of("agent-8").into_iter().map(phone).collect();
    assert_eq!(phones(&sim), expected);
    let manifest = json_of(&second.join("manifest.json"));
    assert_eq!(
        manifest["kind"]["batch_create"]["retry_of"]["run_id"],
        json_of(&retry.join("manifest.json"))["run_id"]
    );
    assert_eq!(
        manifest["kind"]["batch_create"]["columns"],
        serde_json::json!(["name", "phone", "agent"]),
        "a retry keeps the source's columns"
    );

    // Nothing left: exit 0, no run directory, nothing sent.
    let before = run_dirs(&ws);
    let requests = sim.requests();
    for args in [
        vec!["retry", d(&second)],
        vec!["retry", d(&second), "--json"],
    ] {
        let out = cmd(&ws, &args);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert_eq!(run_dirs(&ws), before, "no run directory");
        if args.len() == 3 {
            let doc: Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(
                (doc["run_dir"].clone(), doc["format_version"].clone()),
                (Value::Null, 1.into())
            );
            assert_eq!(doc["retry_of"]["failed"], 0);
        } else {
            assert!(out.stdout.contains("nothing to retry"), "{}", out.stdout);
        }
    }
    assert_eq!(sim.requests(), requests);
}

/// A mapping that rejects rows is fixed; `retry --only rejected` sends those rows and not
/// the failed ones. A row that was never a record (a malformed line) keeps its text as
/// `raw` and is counted as not retryable.
#[test]
fn a_mapping_fix_then_retry_only_rejected_and_a_raw_row_is_not_retryable() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    let mut source = String::from("name,phone,agent\n");
    for i in 1..=20u64 {
        let (phone, agent) = match i {
            4 | 9 | 15 => (format!("139-{i:04}-0000"), "agent-1"), // dashes: rejected
            6 => (phone(i), "agent-9"),                            // 12148: failed
            _ => (phone(i), "agent-1"),
        };
        source.push_str(&format!("Lead {i},{phone},{agent}\n"));
        if i == 11 {
            source.push_str("a line,with too,many,fields\n"); // row 12: raw
        }
    }
    ws.write("leads.csv", &source);
    ws.write("job.yaml", job(&sim.url, "leads.csv", PHONE));
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let first = run_dirs(&ws).pop().unwrap();
    let rejected = jsonl(&first.join("rejected.jsonl"));
    // Source rows after the malformed line are one row further on.
    assert_eq!(
        rows_of(&first.join("rejected.jsonl")),
        BTreeSet::from([4, 9, 12, 16])
    );
    let raw: Vec<&Value> = rejected.iter().filter(|l| l["row"] == 12).collect();
    assert_eq!(raw[0]["raw"], "a line,with too,many,fields");
    assert!(raw[0].get("record").is_none());
    assert_eq!(rows_of(&first.join("failed.jsonl")), BTreeSet::from([6]));
    let created_before = phones(&sim);
    let requests = sim.requests();

    ws.write(
        "job.yaml",
        job(&sim.url, "leads.csv", "{{ row.phone | digits }}"),
    );
    let before = run_dirs(&ws);
    let out = cmd(&ws, &["retry", d(&first), "--only", "rejected", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let retry = new_run(&ws, &before);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        summary["counts"]["rows"], 3,
        "the raw row is not a row of the retry"
    );
    assert_eq!(summary["counts"]["created"], 3);
    assert_eq!(summary["retry_of"]["not_retryable"], 1);
    assert_eq!(summary["retry_of"]["rejected"], 3);
    assert_eq!(summary["retry_of"]["failed"], 0);
    assert_eq!(summary["retry_of"]["rows"], "rejected");
    assert_eq!(
        rows_of(&retry.join("created.jsonl")),
        BTreeSet::from([4, 9, 16])
    );
    assert_eq!(sim.requests(), requests + 1);
    let new: BTreeSet<String> = phones(&sim).difference(&created_before).cloned().collect();
    let fixed: BTreeSet<String> = [4u64, 9, 15]
        .iter()
        .map(|i| format!("139{i:04}0000"))
        .collect();
    assert_eq!(
        new, fixed,
        "the rejected rows, mapped again, and nothing else"
    );
}

/// The rejected rows as CSV — the source's columns in its order, then `_row` and
/// `_reason` — work after the source is gone; fixed by hand, the file is the source of a
/// new run of the same mapping, which creates exactly those customers.
#[test]
fn a_rejected_csv_from_rows_fixed_by_hand_is_the_source_of_a_new_run() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    let source = "phone,agent,name\n\
                  8613900000001,agent-1,Ann\n\
                  8613900000002,agent-1,\n\
                  8613900000003,agent-1,\"Smith, \"\"Bo\"\"\"\n\
                  n/a,agent-1,Cy\n\
                  broken,line\n\
                  8613900000006,agent-1,\n";
    ws.write("leads.csv", source);
    let job_text = job(&sim.url, "leads.csv", "{{ row.phone | phone('86') }}");
    ws.write("job.yaml", &job_text);
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let first = run_dirs(&ws).pop().unwrap();
    std::fs::remove_file(ws.path("leads.csv")).unwrap();

    let out = cmd(
        &ws,
        &[
            "rows",
            d(&first),
            "--outcome",
            "rejected",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "phone,agent,name,_row,_reason");
    assert_eq!(
        lines.len(),
        4,
        "rows 2, 4 and 6; the broken line has no columns\n{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("8613900000002,agent-1,,2,full_name"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("n/a,agent-1,Cy,4,"), "{}", lines[2]);
    assert!(
        out.stderr.contains("1 row never read as a record (row 5)"),
        "{}",
        out.stderr
    );
    // Fixed by hand: names filled in, the phone corrected.
    let fixed = out
        .stdout
        .replace("8613900000002,agent-1,,", "8613900000002,agent-1,Di,")
        .replace("n/a,agent-1,Cy", "8613900000004,agent-1,Cy")
        .replace("8613900000006,agent-1,,", "8613900000006,agent-1,Ed,");
    ws.write("fixed.csv", fixed);
    ws.write(
        "fix.yaml",
        job_text
            .replace("name: t\n", "name: fix\n")
            .replace("path: leads.csv", "path: fixed.csv"),
    );
    let before = phones(&sim);
    let out = cmd(&ws, &["run", "fix.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let new: BTreeSet<String> = phones(&sim).difference(&before).cloned().collect();
    let expected: BTreeSet<String> = [2, 4, 6]
        .iter()
        .map(|i| format!("86139000000{i:02}"))
        .collect();
    assert_eq!(new, expected);
    let names: BTreeSet<String> = sim
        .customers()
        .iter()
        .filter(|c| expected.contains(c["whatsApp_phone"].as_str().unwrap()))
        .map(|c| c["full_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Di".into(), "Cy".into(), "Ed".into()])
    );

    // The created rows as CSV, and the JSON Lines as they are, in row order.
    let out = cmd(
        &ws,
        &["rows", d(&first), "--outcome", "created", "--format", "csv"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let created: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(created[0], "row,customer_id,whats_app_phone");
    assert!(
        created[1].starts_with("1,") && created[2].starts_with("3,"),
        "{}",
        out.stdout
    );
    let out = cmd(&ws, &["rows", d(&first), "--outcome", "rejected"]);
    let rows: Vec<u64> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["row"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(rows, vec![2, 4, 5, 6]);
}

/// A JSON source has no header: `rows --format csv` lays its rejected rows out in the keys
/// of their records, in the order first seen.
#[test]
fn rows_of_a_json_source_take_the_keys_in_the_order_first_seen() {
    let ws = Workspace::new();
    ws.write(
        "leads.jsonl",
        "{\"name\": \"A\", \"phone\": \"8613900000001\"}\n\
         {\"phone\": \"x\", \"name\": \"B\", \"tier\": 2}\n\
         {\"name\": \"C\", \"note\": {\"k\": 1}, \"phone\": \"y\"}\n\
         [1]\n",
    );
    ws.write(
        "job.yaml",
        "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: sim\n  tenant_id: 123\n  app_key: k\nsource: {type: jsonl, path: leads.jsonl}\nmapping:\n  full_name: \"{{ row.name }}\"\n  whats_app_phone: \"{{ row.phone | phone('86') }}\"\n",
    );
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = run_dirs(&ws).pop().unwrap();
    assert_eq!(
        json_of(&dir.join("manifest.json"))["kind"]["batch_create"]["columns"],
        Value::Null
    );
    let out = cmd(
        &ws,
        &["rows", d(&dir), "--outcome", "rejected", "--format", "csv"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "phone,name,tier,note,_row,_reason");
    assert!(lines[1].starts_with("x,B,2,,2,"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("y,C,,\"{\"\"k\"\":1}\",3,"),
        "{}",
        lines[2]
    );
    assert_eq!(lines.len(), 3, "the array line is raw: {}", out.stdout);
}

/// A retry killed after a request was sent and before its answer was recorded, then resumed
/// with the run it retries gone: its copy is its source; every row ends in exactly one
/// outcome, once; nothing is sent twice beyond the request in doubt.
#[cfg(feature = "failpoints")]
#[test]
fn a_killed_retry_resumes_from_its_copy_whatever_became_of_the_old_run() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "leads.csv",
        leads(95, |i| if i % 3 == 0 { "agent-1" } else { "agent-9" }),
    );
    // One request at a time, so that what was sent when the process died is known.
    let one_at_a_time = job(&sim.url, "leads.csv", PHONE)
        .replace("max_retries: 0\n", "max_retries: 0\n  concurrency: 1\n");
    ws.write("job.yaml", one_at_a_time);
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let first = run_dirs(&ws).pop().unwrap();
    let failed = rows_of(&first.join("failed.jsonl"));
    assert_eq!(failed.len(), 64);

    let addr = sim.addr().to_string();
    drop(sim);
    let sim = SimProcess::start_at(&addr, &["--agent", "agent-1", "--agent", "agent-9"]);
    let before = run_dirs(&ws);
    let mut c = ws.cmd(&["retry", d(&first)]);
    with_sim_credentials(&mut c);
    crate::common::crash_at(c, "before_outcome", "3");
    let retry = new_run(&ws, &before);
    assert!(retry.join("retry-input.jsonl").exists());
    assert!(!retry.join("summary.json").exists(), "killed: no summary");
    // Two outcomes recorded; the third batch answered, and perhaps the fourth sent, when the
    // process died: those are in doubt.
    let sent = written(&sim);
    assert!(sent == 30 || sent == 40, "{sent}");

    // The old run goes away; the retry does not need it.
    std::fs::rename(&first, ws.path("elsewhere")).unwrap();
    let status = cmd(&ws, &["status", d(&retry), "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["status"], "interrupted");
    let out = cmd(&ws, &["resume", d(&retry)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let created = jsonl(&retry.join("created.jsonl"));
    let rows: Vec<u64> = created.iter().map(|l| l["row"].as_u64().unwrap()).collect();
    assert_eq!(rows.len(), failed.len(), "no row written twice");
    assert_eq!(rows.iter().copied().collect::<BTreeSet<u64>>(), failed);
    assert!(jsonl(&retry.join("failed.jsonl")).is_empty());
    let expected: BTreeSet<String> = failed.iter().copied().map(phone).collect();
    assert_eq!(phones(&sim), expected, "each customer once");
    // The batches in doubt (sent, their outcomes never recorded) are sent again; nothing else.
    assert_eq!(written(&sim), failed.len() as u64 + (sent - 20));
    let summary = json_of(&retry.join("summary.json"));
    assert_eq!(summary["counts"]["rows"], failed.len());
    assert_eq!(summary["counts"]["created"], failed.len());
}

/// `retry --dry-run` is the plan of the retry: the old run's records mapped by the job as
/// it is now, no run directory, no request.
#[test]
fn retry_dry_run_is_the_plan_of_it() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "leads.csv",
        leads(12, |i| if i % 4 == 0 { "agent-9" } else { "agent-1" }),
    );
    ws.write("job.yaml", job(&sim.url, "leads.csv", PHONE));
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let first = run_dirs(&ws).pop().unwrap();
    let requests = sim.requests();
    let before = run_dirs(&ws);
    let out = cmd(&ws, &["retry", d(&first), "--dry-run"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("rows              3\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("row     4  {"),
        "original row numbers: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("3 failed and 0 rejected rows taken"),
        "{}",
        out.stdout
    );
    let out = cmd(&ws, &["retry", d(&first), "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (doc["format_version"].clone(), doc["run_dir"].clone()),
        (1.into(), Value::Null)
    );
    assert_eq!(doc["counts"]["rows"], 3);
    assert_eq!(doc["preview"][0]["row"], 4);
    assert_eq!(doc["retry_of"]["rows"], "both");
    assert_eq!(run_dirs(&ws), before, "no run directory");
    assert_eq!(sim.requests(), requests, "no request");
}

/// A run directory whose result lines carry no records is refused, naming the version
/// that wrote it: one of cdpjob 0.1.0 (its manifest already says so), and one whose
/// failed lines lack `record`.
#[test]
fn a_run_directory_without_records_is_refused_naming_its_version() {
    let ws = Workspace::new();
    let fixture = repo().join("tests/fixtures/run-0.1.0/run");
    let old = ws.path("runs/old/20261130T120000Z-0a1b");
    std::fs::create_dir_all(&old).unwrap();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), old.join(entry.file_name())).unwrap();
    }
    std::fs::write(
        old.join("failed.jsonl"),
        "{\"row\":1,\"error_code\":12148,\"error_message\":\"x\"}\n",
    )
    .unwrap();
    for args in [
        vec!["retry", d(&old)],
        vec!["rows", d(&old), "--outcome", "failed", "--format", "csv"],
    ] {
        let out = cmd(&ws, &args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("written by cdpjob 0.1.0"),
            "{}",
            out.stderr
        );
    }

    let sim = SimProcess::start(&[]);
    ws.write(
        "leads.csv",
        leads(5, |i| if i == 2 { "agent-9" } else { "agent-1" }),
    );
    ws.write("job.yaml", job(&sim.url, "leads.csv", PHONE));
    assert_eq!(cmd(&ws, &["run", "job.yaml"]).code, 1);
    let dir = run_dirs(&ws).pop().unwrap();
    let stripped: String = jsonl(&dir.join("failed.jsonl"))
        .into_iter()
        .map(|mut l| {
            l.as_object_mut().unwrap().remove("record");
            format!("{l}\n")
        })
        .collect();
    // Same length as before is not needed: the checkpoint counts bytes, so cut it to fit.
    let mut cp = json_of(&dir.join("checkpoint.json"));
    cp["failed_len"] = stripped.len().into();
    std::fs::write(dir.join("checkpoint.json"), cp.to_string()).unwrap();
    std::fs::write(dir.join("failed.jsonl"), stripped).unwrap();
    let before = run_dirs(&ws);
    let version = json_of(&dir.join("manifest.json"))["cdpjob_version"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["retry", d(&dir)],
        vec!["rows", d(&dir), "--outcome", "failed", "--format", "csv"],
    ] {
        let out = cmd(&ws, &args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "its lines carry no \"record\" (the run was written by cdpjob {version};"
            )),
            "{}",
            out.stderr
        );
    }
    assert_eq!(run_dirs(&ws), before);
}
