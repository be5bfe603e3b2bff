//! `cdpjob run`, `resume` and `status` against a real `cdpjob sim` process: every row in
//! exactly one of created / failed / rejected / skipped, across faults, kills and resumes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

#[cfg(feature = "failpoints")]
use crate::common::crash_at;
use crate::common::{SimProcess, Workspace, jsonl, read, repo, run, with_sim_credentials};

/// `rows` leads; every 10th has no contact channel (rejected), every 15th is inactive
/// (skipped by the filter).
fn leads(rows: u64) -> String {
    let mut s = String::from("name,phone,email,status,agent\n");
    for i in 1..=rows {
        let phone = if i % 10 == 0 {
            String::new()
        } else {
            format!("86139{i:08}")
        };
        let status = if i % 15 == 0 { "inactive" } else { "active" };
        s.push_str(&format!("Lead {i},{phone},,{status},agent-1\n"));
    }
    s
}

fn expected_valid(rows: u64) -> BTreeSet<u64> {
    (1..=rows).filter(|i| i % 15 != 0 && i % 10 != 0).collect()
}

fn job(url: &str, batch_size: usize, extra_mapping: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 8\n  timeout_secs: 5\n  concurrency: 4\nsource: {{type: csv, path: leads.csv}}\nfilter: \"row.status != 'inactive'\"\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\n{extra_mapping}batch_size: {batch_size}\n{extra}"
    )
}

fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

fn the_run_dir(ws: &Workspace) -> PathBuf {
    let root = ws.path("runs/t");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

fn rows_of(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| l["row"].as_u64().unwrap()).collect()
}

/// Every row once: no duplicate line, no row in two files, counts adding up.
#[track_caller]
fn assert_partition(dir: &Path, total: u64) -> (BTreeSet<u64>, BTreeSet<u64>, BTreeSet<u64>) {
    let sets = [
        dir.join("created.jsonl"),
        dir.join("failed.jsonl"),
        dir.join("rejected.jsonl"),
    ]
    .map(|p| {
        let rows = rows_of(&jsonl(&p));
        let set: BTreeSet<u64> = rows.iter().copied().collect();
        assert_eq!(set.len(), rows.len(), "a duplicate line in {}", p.display());
        set
    });
    let [created, failed, rejected] = sets;
    assert!(
        created.is_disjoint(&failed)
            && created.is_disjoint(&rejected)
            && failed.is_disjoint(&rejected)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let c = &summary["counts"];
    assert_eq!(c["rows"], total, "{summary}");
    assert_eq!(c["created"], created.len() as u64);
    assert_eq!(c["failed"], failed.len() as u64);
    assert_eq!(c["rejected"], rejected.len() as u64);
    let skipped = c["skipped"].as_u64().unwrap();
    assert_eq!(
        created.len() as u64 + failed.len() as u64 + rejected.len() as u64 + skipped,
        total
    );
    (created, failed, rejected)
}

/// A workspace holding the quickstart job and its sample, as in the repository.
fn quickstart() -> Workspace {
    let ws = Workspace::new();
    for f in ["jobs/quickstart.yaml", "jobs/data/leads.csv"] {
        ws.write(f, std::fs::read(repo().join(f)).unwrap());
    }
    ws
}

/// `cdpjob ARGS` with no credentials in the environment, as on a fresh machine.
fn as_a_newcomer(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    c.env_remove("NXCLOUD_ACCESS_KEY")
        .env_remove("NXCLOUD_ACCESS_SECRET");
    c
}

#[test]
fn the_quickstart_runs_out_of_the_box() {
    let ws = quickstart();
    let out = run(as_a_newcomer(&ws, &["run", "jobs/quickstart.yaml"]));
    assert_eq!(
        out.code, 1,
        "rejected rows make exit 1\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout
            .contains("rows 50: created 39, failed 0, rejected 8, skipped 3"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("rejected.jsonl (8)"), "{}", out.stdout);
    let root = ws.path("runs/quickstart");
    let dir = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let (created, _, rejected) = assert_partition(&dir, 50);
    assert_eq!(
        rejected.into_iter().collect::<Vec<_>>(),
        vec![7, 12, 15, 19, 23, 28, 36, 48]
    );
    assert_eq!(created.len(), 39);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for f in [
            "manifest.json",
            "events.jsonl",
            "checkpoint.json",
            "created.jsonl",
            "failed.jsonl",
            "rejected.jsonl",
            "summary.json",
        ] {
            let meta = std::fs::metadata(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(!text.contains("cdpjob-sim-secret"), "{f} holds the secret");
        }
    }
    // A second run matches the same customers: the store does not grow.
    let out = run(ws.cmd(&["run", "--json", "jobs/quickstart.yaml"]));
    assert_eq!(out.code, 1);
    let s: Value = serde_json::from_str(&out.stdout).expect("--json prints only the summary");
    assert_eq!(s["counts"]["created"], 39);
}

/// Another process holds the in-process simulator's state: the run stops resumably (exit 3,
/// saying why) before it creates a run directory: running it again once the state is free
/// works (SPEC §12 R1: exit 3 without a run directory means "run the command again").
#[test]
fn a_busy_simulator_state_stops_the_run_before_it_begins() {
    let ws = quickstart();
    // The quickstart's run root (`root: ../runs` from jobs/).
    let root = ws.path("runs");
    std::fs::create_dir_all(root.join(".sim")).unwrap();
    let holder = std::fs::File::create(root.join(".sim/state.jsonl")).unwrap();
    holder.lock().unwrap();
    let out = run(as_a_newcomer(
        &ws,
        &["run", "jobs/quickstart.yaml", "--json"],
    ));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("in use by another simulator"),
        "{}",
        out.stderr
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&doc["run_dir"], &doc["resumable"]),
        (&Value::Null, &Value::from(false))
    );
    assert!(
        !root.join("quickstart").exists()
            || std::fs::read_dir(root.join("quickstart"))
                .unwrap()
                .all(|e| !e.unwrap().path().is_dir())
    );
    drop(holder);
    let out = run(as_a_newcomer(&ws, &["run", "jobs/quickstart.yaml"]));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let dir = std::fs::read_dir(root.join("quickstart"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    assert_eq!(assert_partition(&dir, 50).0.len(), 39);
}

#[test]
fn a_dirty_file_is_partitioned_exactly() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(120));
    ws.write("job.yaml", job(&sim.url, 25, "", ""));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws);
    let (created, failed, rejected) = assert_partition(&dir, 120);
    assert_eq!(created, expected_valid(120));
    assert!(failed.is_empty());
    assert_eq!(
        rejected,
        (1..=120).filter(|i| i % 10 == 0 && i % 15 != 0).collect()
    );
    assert_eq!(sim.customers().len(), created.len());
    // Resuming a finished run changes nothing.
    let snapshot = || -> Vec<Vec<u8>> {
        [
            "created.jsonl",
            "failed.jsonl",
            "rejected.jsonl",
            "checkpoint.json",
            "events.jsonl",
        ]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
    };
    let before = snapshot();
    let requests = sim.get("/__sim/stats")["requests"].clone();
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("has already finished: nothing to do"),
        "{}",
        out.stderr
    );
    let after = snapshot();
    assert!(before == after, "a finished run's files are untouched");
    assert_eq!(
        sim.get("/__sim/stats")["requests"],
        requests,
        "no request was sent"
    );
    let ids: BTreeSet<i64> = jsonl(&dir.join("created.jsonl"))
        .iter()
        .map(|l| l["customer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), created.len());
    assert!(ids.iter().all(|id| *id > 1 << 53));
}

#[test]
fn one_unknown_agent_among_100_is_isolated_by_bisection() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    let mut csv = String::from("name,phone,agent\n");
    for i in 1..=100 {
        csv.push_str(&format!(
            "L{i},86139{i:08},{}\n",
            if i == 37 { "ghost" } else { "agent-1" }
        ));
    }
    ws.write("leads.csv", csv);
    let yaml = job(
        &sim.url,
        100,
        "  belong_seat_user: \"{{ row.agent }}\"\n",
        "",
    )
    .replace("filter: \"row.status != 'inactive'\"\n", "");
    ws.write("job.yaml", yaml);
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws);
    let (created, failed, _) = assert_partition(&dir, 100);
    assert_eq!(created.len(), 99);
    assert_eq!(failed.into_iter().collect::<Vec<_>>(), vec![37]);
    let f = &jsonl(&dir.join("failed.jsonl"))[0];
    assert_eq!(f["error_code"], 12148);
    assert!(f["error_message"].as_str().unwrap().contains("ghost"));
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(
        events.matches("\"event\":\"bisect\"").count() >= 7,
        "log2(100) splits are journaled"
    );
    assert_eq!(sim.customers().len(), 99);
}

#[test]
fn strict_binding_fails_only_the_record() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", "name,phone,agent\nA,8613900000001,agent-1\nB,8613900000002,ghost\nC,8613900000003,agent-2\n");
    let yaml = job(
        &sim.url,
        100,
        "  belong_seat_user: \"{{ row.agent }}\"\n",
        "strict_binding: true\n",
    )
    .replace("filter: \"row.status != 'inactive'\"\n", "");
    ws.write("job.yaml", yaml);
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1);
    let dir = the_run_dir(&ws);
    let (created, failed, _) = assert_partition(&dir, 3);
    assert_eq!(
        (created.len(), failed.into_iter().collect::<Vec<_>>()),
        (2, vec![2])
    );
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(
        !events.contains("bisect"),
        "strict binding needs no bisection"
    );
}

#[test]
fn merge_mode_keep_leaves_existing_customers_alone() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "leads.csv",
        "name,phone,status\nFirst,8613900000001,active\n",
    );
    ws.write("job.yaml", job(&sim.url, 10, "", "merge: keep\n"));
    assert_eq!(run(cmd(&ws, &["run", "job.yaml"])).code, 0);
    ws.write(
        "leads.csv",
        "name,phone,status\nSecond,8613900000001,active\n",
    );
    assert_eq!(run(cmd(&ws, &["run", "job.yaml"])).code, 0);
    assert_eq!(sim.customers()[0]["full_name"], "First");
    ws.write("job.yaml", job(&sim.url, 10, "", "merge: replace\n"));
    assert_eq!(run(cmd(&ws, &["run", "job.yaml"])).code, 0);
    let all = sim.customers();
    assert_eq!(
        (all.len(), all[0]["full_name"].as_str()),
        (1, Some("Second"))
    );
}

#[test]
fn faults_still_create_every_valid_row_exactly_once() {
    let sim = SimProcess::start(&[
        "--fail-5xx",
        "0.15",
        "--fail-429",
        "0.05",
        "--drop",
        "0.2",
        "--latency-ms",
        "5",
        "--seed",
        "11",
    ]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(300));
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws);
    let (created, _, _) = assert_partition(&dir, 300);
    assert_eq!(created, expected_valid(300));
    let stats = sim.get("/__sim/stats");
    assert!(
        stats["dropped"].as_u64().unwrap() > 0 && stats["injected_5xx"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(
        sim.customers().len(),
        created.len(),
        "dropped answers were matched on retry, not duplicated"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary["retries"].as_u64().unwrap() > 0);
}

#[test]
fn a_wrong_secret_stops_the_run_resumably_with_advice() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(30));
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    let mut c = ws.cmd(&["run", "job.yaml"]);
    c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "wrong-secret");
    let out = run(c);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("signature rejected: check the secret"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("cdpjob resume"), "{}", out.stdout);
    let dir = the_run_dir(&ws);
    for f in ["events.jsonl", "summary.json"] {
        assert!(
            !std::fs::read_to_string(dir.join(f))
                .unwrap()
                .contains("wrong-secret")
        );
    }
    // With the right secret, the resume finishes the job.
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let (created, _, _) = assert_partition(&dir, 30);
    assert_eq!(created, expected_valid(30));
}

/// The run of `ws`'s leads.csv by a job whose API is port 9, where nothing listens: it
/// stops early, resumable (exit 3). Its run directory.
fn a_run_that_stops_before_sending(ws: &Workspace) -> PathBuf {
    ws.write(
        "job.yaml",
        job("http://127.0.0.1:9", 10, "", "").replace("max_retries: 8", "max_retries: 0"),
    );
    let out = run(cmd(ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    the_run_dir(ws)
}

/// A manifest written before the source's fingerprint was xxh3 names it `sha256`: a resume
/// of such a run still checks the source by SHA-256, finding a change that keeps the size.
#[test]
fn a_run_whose_manifest_fingerprints_the_source_by_sha256_still_resumes_by_it() {
    let ws = Workspace::new();
    let source = leads(20);
    ws.write("leads.csv", &source);
    let dir = a_run_that_stops_before_sending(&ws);
    let d = dir.to_str().unwrap();
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Value = serde_json::from_str(&read(&manifest_path)).unwrap();
    let recorded = manifest["kind"]["batch_create"]["source"]
        .as_object_mut()
        .unwrap();
    let xxh3 = recorded.remove("xxh3").expect("a new run records xxh3");
    assert_eq!(xxh3.as_str().unwrap().len(), 32, "{xxh3}");
    let sha256 = cdpjob::run_dir::sha256_hex(source.as_bytes());
    recorded.insert("sha256".into(), Value::from(sha256));
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();

    // The same size, other content: only the hash tells.
    let changed = source.replacen("Lead 1,", "Lead 9,", 1);
    assert_ne!(changed, source);
    assert_eq!(changed.len(), source.len());
    ws.write("leads.csv", &changed);
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("changed since the run started"),
        "{}",
        out.stderr
    );
    // The source as it was: the SHA-256 matches, and the resume goes on (and stops again,
    // as nothing listens).
    ws.write("leads.csv", &source);
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("changed since"), "{}", out.stderr);
}

#[test]
fn resume_refuses_a_changed_source_or_job_unless_forced() {
    let ws = Workspace::new();
    ws.write("leads.csv", leads(20));
    let dir = a_run_that_stops_before_sending(&ws);
    let d = dir.to_str().unwrap();
    ws.write("leads.csv", leads(21));
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("changed since the run started"),
        "{}",
        out.stderr
    );
    ws.write("leads.csv", leads(20));
    // What does not decide what is sent does not stop a resume (SPEC §12 R3): retries,
    // concurrency, a description, comments.
    ws.write(
        "job.yaml",
        "# retried more patiently\n".to_string()
            + &job("http://127.0.0.1:9", 10, "", "description: nightly\n")
                .replace("max_retries: 8", "max_retries: 1")
                .replace("concurrency: 4", "concurrency: 2"),
    );
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(
        out.code, 3,
        "resumed (and stopped again: nothing listens): {}",
        out.stderr
    );
    assert!(!out.stderr.contains("changed since"), "{}", out.stderr);
    // What is sent does.
    ws.write(
        "job.yaml",
        job("http://127.0.0.1:9", 5, "", "").replace("max_retries: 8", "max_retries: 1"),
    );
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("the job file") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    let out = run(cmd(&ws, &["resume", "--force", d]));
    assert_eq!(
        out.code, 3,
        "forced, it runs (and stops again: nothing listens)"
    );
}

#[test]
fn a_second_run_is_refused_while_the_lock_is_held_and_a_stale_lock_is_taken_over() {
    let ws = Workspace::new();
    let sim = SimProcess::start(&[]);
    ws.write("leads.csv", leads(5));
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    std::fs::create_dir_all(ws.path("runs/t")).unwrap();
    let lock_path = ws.path("runs/t/.lock");
    std::fs::write(&lock_path, "424242").unwrap();
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    holder.lock().unwrap();
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .contains("another run of this job is in progress (pid 424242)"),
        "{}",
        out.stderr
    );
    holder.unlock().unwrap();
    drop(holder);
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("taking over the lock left by pid 424242"),
        "{}",
        out.stderr
    );
}

/// More batches are in progress than requests allowed (they get ready while others are in
/// flight), yet the API never sees more than `concurrency` requests at once — and sees
/// that many.
#[test]
fn requests_in_flight_reach_the_concurrency_and_never_exceed_it() {
    let sim = SimProcess::start(&["--latency-ms", "40"]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(600));
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (created, _, _) = assert_partition(&the_run_dir(&ws), 600);
    assert_eq!(created, expected_valid(600));
    let stats = sim.get("/__sim/stats");
    assert_eq!(stats["max_in_flight"], 4, "{stats}");
}

/// One request in flight and the next batch ready for its slot (intent journaled) when the
/// signal comes: the request in flight is waited for and its outcome recorded; the ready
/// one is never sent (withdrawn, so nothing is in doubt); resume finishes the rest.
#[test]
fn sigterm_stops_sending_records_outcomes_and_resume_finishes() {
    let sim = SimProcess::start(&["--latency-ms", "1000"]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(40));
    ws.write(
        "job.yaml",
        job(&sim.url, 10, "", "").replace("concurrency: 4", "concurrency: 1"),
    );
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"));
    c.current_dir(ws.dir.path())
        .args(["run", "job.yaml"])
        .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret");
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Batch 0 is answered at ~1 s and committed; batch 1 is sent then, and batch 2 waits
    // for the slot until ~2 s. Signal in between (waiting for the commit, not by the clock
    // alone: on a loaded machine the process may not even have its signal handler yet).
    let started = std::time::Instant::now();
    while !std::fs::read_dir(ws.path("runs/t"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().join("checkpoint.json").exists())
        })
        .unwrap_or(false)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no batch was committed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    // Whatever was sent before the signal has reached the simulator by now.
    std::thread::sleep(Duration::from_millis(50));
    let sent_by_then = sim.get("/__sim/stats")["requests"].as_u64().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sim.get("/__sim/stats")["requests"].as_u64().unwrap(),
        sent_by_then,
        "a request was sent after the signal"
    );
    let dir = the_run_dir(&ws);
    let events = read(&dir.join("events.jsonl"));
    assert!(events.contains("\"withdrawn\""), "{events}");
    let status = run(ws.cmd(&["status", "--json", dir.to_str().unwrap()]));
    let s: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(s["status"], "interrupted");
    // Requests are the intents sent: the withdrawn one is not one.
    assert_eq!(s["requests"].as_u64().unwrap(), sent_by_then);
    assert_eq!(
        s["batches_in_doubt"],
        serde_json::json!([]),
        "in-flight requests were waited for"
    );
    assert!(s["counts"]["rows"].as_u64().unwrap() < 40);
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (created, _, _) = assert_partition(&dir, 40);
    assert_eq!(created, expected_valid(40));
    assert_eq!(sim.customers().len(), created.len());
}

/// SIGKILL the real process at random moments, sometimes the resume too; resume to the
/// end; the partition is exact, no result line is written twice, and the simulator holds
/// each customer once. Most kills come while the run is sending (timed from its manifest:
/// the run lasts ~0.3 s, its start varies with the machine's load); one trial in four is
/// timed from the spawn instead, to land in the run's beginning too. Only the trials
/// really killed mid-run count: SIGKILL ended the process, a run directory with a
/// manifest was left, and it had not finished; at least half must be.
#[cfg(unix)]
#[test]
fn the_kill_test() {
    use std::os::unix::process::ExitStatusExt;
    let trials = 20;
    let mut rng = fastrand::Rng::with_seed(2026);
    let started = Instant::now();
    let mut killed_mid_run = 0;
    for trial in 0..trials {
        let sim = SimProcess::start(&[
            "--latency-ms",
            "50",
            "--drop",
            "0.05",
            "--seed",
            &trial.to_string(),
        ]);
        let ws = Workspace::new();
        let rows = 150;
        ws.write("leads.csv", leads(rows));
        ws.write("job.yaml", job(&sim.url, 10, "", ""));
        let spawn = |args: &[&str]| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"));
            c.current_dir(ws.dir.path())
                .args(args)
                .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
                .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret");
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().unwrap()
        };
        let manifest = || {
            std::fs::read_dir(ws.path("runs/t"))
                .into_iter()
                .flatten()
                .map(|e| e.unwrap().path())
                .find(|p| p.is_dir() && p.join("manifest.json").exists())
        };
        let mut child = spawn(&["run", "job.yaml"]);
        if trial % 4 == 3 {
            std::thread::sleep(Duration::from_millis(rng.u64(0..100)));
        } else {
            let since = Instant::now();
            while manifest().is_none() && child.try_wait().unwrap().is_none() {
                assert!(
                    since.elapsed() < Duration::from_secs(20),
                    "trial {trial}: no manifest"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        }
        let _ = child.kill();
        let killed = child.wait().unwrap().signal() == Some(9);
        let Some(dir) = manifest() else {
            continue; // killed before the manifest was written: nothing to resume
        };
        let finished = std::fs::read_to_string(dir.join("summary.json"))
            .is_ok_and(|s| serde_json::from_str::<Value>(&s).unwrap()["status"] == "finished");
        if killed && !finished {
            killed_mid_run += 1;
        }
        let d = dir.to_str().unwrap().to_string();
        // Kill the resume, sometimes, too.
        if rng.bool() {
            let mut child = spawn(&["resume", &d]);
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
            let _ = child.kill();
            let _ = child.wait();
        }
        let out = run(cmd(&ws, &["resume", &d]));
        assert_eq!(out.code, 1, "trial {trial}: {}{}", out.stdout, out.stderr);
        let (created, _, _) = assert_partition(&dir, rows);
        assert_eq!(created, expected_valid(rows), "trial {trial}");
        let customers = sim.customers();
        let phones: BTreeSet<&str> = customers
            .iter()
            .map(|c| c["whatsApp_phone"].as_str().unwrap())
            .collect();
        assert_eq!(
            phones.len(),
            customers.len(),
            "trial {trial}: a customer twice in the simulator"
        );
        assert_eq!(customers.len(), created.len(), "trial {trial}");
    }
    eprintln!("the kill test: {killed_mid_run} of {trials} trials killed mid-run and resumed");
    assert!(
        killed_mid_run >= trials / 2,
        "only {killed_mid_run} of {trials} trials were killed mid-run"
    );
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "the kill test stays bounded"
    );
}

/// Crash at each boundary of the write path (a failpoint aborts the process right there),
/// then resume: the result is the same as if nothing had happened.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_every_boundary_is_followed_by_a_correct_resume() {
    for point in [
        "before_intent",
        "after_intent",
        "after_send",
        "before_outcome",
        "before_results",
        "before_checkpoint",
        "atomic_before_rename",
    ] {
        // The first atomic write is the manifest, before anything is sent: crashing there
        // leaves nothing to resume (a new run is the remedy); the later ones are checkpoints.
        let nths: &[&str] = if point == "atomic_before_rename" {
            &["2", "4"]
        } else {
            &["1", "3"]
        };
        for nth in nths {
            let sim = SimProcess::start(&[]);
            let ws = Workspace::new();
            ws.write("leads.csv", leads(60));
            ws.write("job.yaml", job(&sim.url, 10, "", ""));
            crash_at(cmd(&ws, &["run", "job.yaml"]), point, nth);
            let dir = the_run_dir(&ws);
            let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
            assert_eq!(out.code, 1, "{point}:{nth}: {}{}", out.stdout, out.stderr);
            let (created, _, _) = assert_partition(&dir, 60);
            assert_eq!(created, expected_valid(60), "{point}:{nth}");
            assert_eq!(sim.customers().len(), created.len(), "{point}:{nth}");
        }
    }
}

/// A resume sends a batch in doubt again only if it is the very body its intent journaled:
/// a job changed under `--force` (or a journal hash that does not match, here an older
/// journal's SHA-256) stops the resume, and no batch in doubt is sent with another body.
/// Other batches may go out before the stop: they are journaled like any other.
#[cfg(feature = "failpoints")]
#[test]
fn a_resume_that_would_send_another_body_than_its_intent_sends_nothing() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(60));
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    crash_at(cmd(&ws, &["run", "job.yaml"]), "after_intent", "1");
    let dir = the_run_dir(&ws);
    let d = dir.to_str().unwrap();
    let journaled = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let intents: Vec<Value> = journaled
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "intent")
        .collect();
    assert!(!intents.is_empty() && intents.iter().all(|i| i["payload_xxh3"].is_string()));
    // The run directory as the crash left it, put back before each resume below.
    let crashed: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
        .collect();
    let put_back = || {
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &crashed {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    // No customer of a batch in doubt is in the simulator: it was not sent again.
    let none_in_doubt_sent = |when: &str| {
        let phones: BTreeSet<String> = sim
            .customers()
            .iter()
            .map(|c| c["whatsApp_phone"].as_str().unwrap().to_string())
            .collect();
        for intent in &intents {
            let (first, last) = (intent["first_row"].as_u64(), intent["last_row"].as_u64());
            for row in first.unwrap()..=last.unwrap() {
                assert!(
                    !phones.contains(&format!("86139{row:08}")),
                    "{when}: row {row} of a batch in doubt was sent"
                );
            }
        }
    };

    ws.write("job.yaml", job(&sim.url, 10, "  remark: \"changed\"\n", ""));
    let out = run(cmd(&ws, &["resume", d, "--force"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("is not the batch the journal recorded"),
        "{}",
        out.stderr
    );
    none_in_doubt_sent("a changed job");

    // The job as it was, but the intents as an older cdpjob journaled them (SHA-256), of
    // another body: such an intent is checked, not skipped. (That a true SHA-256 passes is
    // `api::payload`'s test of `is_of`; this test cannot rebuild the body to hash it.)
    put_back();
    ws.write("job.yaml", job(&sim.url, 10, "", ""));
    let old_style: String = journaled
        .lines()
        .map(|l| {
            let mut e: Value = serde_json::from_str(l).unwrap();
            if e["event"] == "intent" {
                let fields = e.as_object_mut().unwrap();
                fields.remove("payload_xxh3").unwrap();
                fields.insert("payload_sha256".into(), "0".repeat(64).into());
            }
            serde_json::to_string(&e).unwrap() + "\n"
        })
        .collect();
    std::fs::write(dir.join("events.jsonl"), old_style).unwrap();
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("is not the batch the journal recorded"));
    none_in_doubt_sent("an older journal's hash");

    // Its own journal back: the resume sends the batches in doubt and the rest.
    put_back();
    let out = run(cmd(&ws, &["resume", d]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let (created, _, _) = assert_partition(&dir, 60);
    assert_eq!(created, expected_valid(60));
    assert_eq!(sim.customers().len(), created.len());
}

/// On a terminal, a progress bar (percent, ETA, rows/s); without one, none of that.
#[test]
fn a_terminal_gets_a_progress_bar_and_a_pipe_does_not() {
    let sim = SimProcess::start(&["--latency-ms", "60"]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(300));
    ws.write(
        "job.yaml",
        job(&sim.url, 10, "", "").replace("concurrency: 4", "concurrency: 1"),
    );
    // `script` (util-linux, always on Debian) runs the command on a pseudo-terminal and
    // copies what it draws to its own standard output.
    let bin = env!("CARGO_BIN_EXE_cdpjob");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} run job.yaml"), "/dev/null"])
        .current_dir(ws.dir.path())
        .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret")
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{screen}");
    assert!(
        screen.contains("% eta ") && screen.contains("rows/s") && screen.contains("batches"),
        "no progress bar on a terminal: {screen}"
    );
    let piped = run(cmd(&ws, &["run", "job.yaml", "--run-dir", "runs/t/piped"]));
    assert_eq!(piped.code, 1, "{}", piped.stderr);
    assert!(!piped.stderr.contains("% eta "), "{}", piped.stderr);
}
