//! The run lifecycle both kinds share: versioned documents, old run directories refused by
//! name, `status` finding the lock where the run took it, and `resume` refusing a run that
//! a newer finished run has overtaken (SPEC §12 R2, R4).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    SimProcess, Workspace, assert_lock_free, read, repo, run, run_dirs, sim_env,
    with_sim_credentials,
};

fn leads(rows: u64) -> String {
    let mut s = String::from("name,phone\n");
    for i in 1..=rows {
        s.push_str(&format!("Lead {i},86139{i:08}\n"));
    }
    s
}

fn job(url: &str, batch_size: usize, concurrency: usize) -> String {
    format!(
        "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 0\n  concurrency: {concurrency}\nsource: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\nbatch_size: {batch_size}\n"
    )
}

fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_document_a_run_writes_or_prints_carries_format_version() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(30));
    ws.write("job.yaml", job(&sim.url, 10, 2));
    let out = run(cmd(&ws, &["run", "job.yaml", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["format_version"], 1);
    assert_eq!(summary["resumable"], false);
    assert_eq!(summary["status"], "finished");
    let dir = PathBuf::from(summary["run_dir"].as_str().unwrap());
    let dir = ws.dir.path().join(dir);
    for file in ["manifest.json", "checkpoint.json", "summary.json"] {
        assert_eq!(json_of(&dir.join(file))["format_version"], 1, "{file}");
    }
    // Not of the journal's lines (R2).
    let first_event = read(&dir.join("events.jsonl"));
    let first_event: Value = serde_json::from_str(first_event.lines().next().unwrap()).unwrap();
    assert!(first_event.get("format_version").is_none());
    let manifest = json_of(&dir.join("manifest.json"));
    assert!(manifest["kind"]["batch_create"]["source"]["xxh3"].is_string());
    let out = run(cmd(&ws, &["status", dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["format_version"], 1);
    assert_eq!(status["status"], "finished");
    assert_eq!(status["resumable"], false);
    assert_eq!(status["run_dir"], dir.to_str().unwrap());
    assert_eq!(status["counts"]["created"], 30);
    // Present even with change detection off (R2).
    assert_eq!(status["counts"]["unchanged"], 0);
    assert_eq!(summary["counts"]["unchanged"], 0);
}

#[test]
fn a_run_directory_written_by_0_1_0_is_refused_naming_the_version() {
    let ws = Workspace::new();
    let fixture = repo().join("tests/fixtures/run-0.1.0");
    let dir = ws.path("runs/old/20261130T120000Z-0a1b");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture.join("run")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    for command in ["resume", "status"] {
        let out = run(cmd(&ws, &[command, dir.to_str().unwrap()]));
        assert_eq!(out.code, 2, "{command}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("written by cdpjob 0.1.0")
                && out.stderr.contains("start a new run"),
            "{command}: {}",
            out.stderr
        );
    }
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap(), "--json"]));
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (doc["exit_code"].as_u64(), doc["resumable"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(doc["run_dir"], dir.to_str().unwrap());
}

/// The regression: `status DIR` of a run started with `--run-dir DIR` outside the job root
/// looked for the lock next to DIR and said "interrupted" while the run ran.
#[test]
fn status_of_a_run_with_its_directory_elsewhere_says_running_while_it_runs() {
    let sim = SimProcess::start(&["--latency-ms", "100"]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(2_000));
    ws.write("job.yaml", job(&sim.url, 10, 1));
    let elsewhere = ws.path("elsewhere/r1");
    let running = ws.spawn(
        &["run", "job.yaml", "--run-dir", elsewhere.to_str().unwrap()],
        sim_env(None),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !elsewhere.join("checkpoint.json").exists() {
        assert!(Instant::now() < deadline, "the run never committed a batch");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = |ws: &Workspace| {
        let out = run(cmd(ws, &["status", elsewhere.to_str().unwrap(), "--json"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    let live = status(&ws);
    assert_eq!(live["status"], "running", "{live}");
    assert_eq!(live["resumable"], false);
    running.signal("KILL");
    let _ = running.wait_within(Duration::from_secs(10));
    let killed = status(&ws);
    assert_eq!(killed["status"], "interrupted", "{killed}");
    assert_eq!(killed["resumable"], true);
}

/// SPEC §12 R4: a late resume would send this run's older values over what a newer run
/// sent; it is refused unless forced.
#[test]
fn resume_is_refused_once_a_newer_run_of_the_job_has_finished() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(20));
    ws.write("job.yaml", job(&sim.url, 10, 1));
    // The first run's secret is wrong: 1003, stopped, resumable.
    let mut first = ws.cmd(&["run", "job.yaml"]);
    first
        .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "wrong");
    let out = run(first);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let stopped = run_dirs(&ws.path("runs/t")).pop().unwrap();
    // A second run of the same job finishes (its run id sorts later: a second apart).
    std::thread::sleep(Duration::from_millis(1_100));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run(cmd(&ws, &["resume", stopped.to_str().unwrap()]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("a newer run of this job") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    let out = run(cmd(&ws, &["resume", "--force", stopped.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Lines of a JSON Lines result file, by row number.
#[cfg(feature = "failpoints")]
fn rows_in(path: &Path) -> Vec<u64> {
    read(path)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["row"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// A failed write of the result files (an injected I/O error, as a full disk gives) stops
/// a run whose source is far larger than any buffer: exit 3, the lock released, and the
/// resume accounts for every row exactly once. The first 10,000 rows are sent; the other
/// 190,000 are skipped by the filter, so the reader still has most of the file ahead of it
/// when the run stops (the hang this pins), while the resume stays quick.
#[cfg(feature = "failpoints")]
#[test]
fn a_failed_write_stops_the_run_and_the_resume_loses_nothing() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    let (rows, sent) = (200_000u64, 10_000u64);
    let mut csv = String::from("name,phone,status\n");
    for i in 1..=rows {
        let status = if i <= sent { "active" } else { "later" };
        csv.push_str(&format!("Lead {i},86139{i:08},{status}\n"));
    }
    ws.write("leads.csv", csv);
    ws.write(
        "job.yaml",
        job(&sim.url, 100, 4) + "filter: \"row.status == 'active'\"\n",
    );
    let mut env = sim_env(None).to_vec();
    env.push(("CDPJOB_FAILPOINT", "before_results:20:error".into()));
    let out = ws
        .spawn(&["run", "job.yaml"], env)
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_lock_free(&ws.path("runs/t/.lock"));
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let summary = json_of(&dir.join("summary.json"));
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(summary["resumable"], true);
    assert!(
        summary["stopped_reason"]
            .as_str()
            .unwrap()
            .contains("injected I/O error"),
        "{summary}"
    );
    assert!(summary["counts"]["rows"].as_u64().unwrap() < sent);
    // The lock is free: the resume takes it, and finishes.
    let out = ws
        .spawn(&["resume", dir.to_str().unwrap()], sim_env(None))
        .wait_within(Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mut created = rows_in(&dir.join("created.jsonl"));
    created.sort_unstable();
    assert_eq!(
        created,
        (1..=sent).collect::<Vec<_>>(),
        "every sent row once"
    );
    let summary = json_of(&dir.join("summary.json"));
    assert_eq!(summary["counts"]["rows"], rows);
    assert_eq!(summary["counts"]["skipped"], rows - sent);
    assert_eq!(
        sim.customers().len() as u64,
        sent,
        "the simulator holds each customer once"
    );
}

/// The same for an export: a failed write of the partial output stops it (exit 3), and the
/// resume writes every customer exactly once.
#[cfg(feature = "failpoints")]
#[test]
fn a_failed_write_stops_an_export_and_the_resume_loses_nothing() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(2_000));
    ws.write("job.yaml", job(&sim.url, 100, 4));
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(None))
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    ws.write(
        "export.yaml",
        format!(
            "version: 1\nname: e\nkind: query_export\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\nquery:\n  start_time: \"2024-01-01 00:00:00\"\n  page_size: 50\noutput:\n  path: \"out-{{{{ run.id }}}}.csv\"\n  columns: [id, full_name]\n",
            sim.url
        ),
    );
    let mut env = sim_env(None).to_vec();
    env.push(("CDPJOB_FAILPOINT", "export_write:7:error".into()));
    let out = ws
        .spawn(&["run", "export.yaml"], env)
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_lock_free(&ws.path("runs/e/.lock"));
    let dir = run_dirs(&ws.path("runs/e")).pop().unwrap();
    assert_eq!(json_of(&dir.join("checkpoint.json"))["pages"], 6);
    let out = ws
        .spawn(&["resume", dir.to_str().unwrap()], sim_env(None))
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = json_of(&dir.join("summary.json"))["output"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids: Vec<String> = read(Path::new(&out))
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2_000);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2_000, "no customer twice");
}

/// A stdin source never reaches its end while its writer keeps the pipe open: SIGTERM still
/// ends the run at once (the reader, stuck in a read, is left behind), and since standard
/// input cannot be read again the stop is not resumable (exit 2, SPEC §12 R1).
#[test]
fn sigterm_ends_a_run_reading_a_pipe_that_stays_open_and_says_it_cannot_be_resumed() {
    use std::io::Write as _;
    let sim = SimProcess::start(&["--latency-ms", "20"]);
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        job(&sim.url, 10, 2).replace("path: leads.csv", "path: \"-\""),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"))
        .current_dir(ws.dir.path())
        .args(["run", "job.yaml", "--json"])
        .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // More than a chunk of the pipeline, so batches go out; then the writer goes quiet.
    stdin.write_all(leads(3_000).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let root = ws.path("runs/t");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run_dirs(&root)
        .iter()
        .any(|d| d.join("checkpoint.json").exists())
    {
        assert!(Instant::now() < deadline, "nothing was committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM, its stdin open");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    assert_eq!(status.code(), Some(2));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["resumable"], false, "{summary}");
    assert!(
        summary["stopped_reason"]
            .as_str()
            .unwrap()
            .contains("standard input"),
        "{summary}"
    );
    assert_lock_free(&root.join(".lock"));
}

/// `status` of a finished run says "finished" while another run of the same job holds the
/// job's lock; the running one says "running".
#[test]
fn status_tells_the_run_that_holds_the_lock_from_the_other_runs_of_the_job() {
    let sim = SimProcess::start(&["--latency-ms", "100"]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(20));
    ws.write("job.yaml", job(&sim.url, 10, 1));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let finished = run_dirs(&ws.path("runs/t")).pop().unwrap();
    ws.write("leads.csv", leads(2_000));
    let second = ws.path("runs/t/second");
    let running = ws.spawn(
        &["run", "job.yaml", "--run-dir", second.to_str().unwrap()],
        sim_env(None),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !second.join("checkpoint.json").exists() {
        assert!(Instant::now() < deadline, "the second run never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status_of = |dir: &Path| {
        let out = run(cmd(&ws, &["status", dir.to_str().unwrap(), "--json"]));
        serde_json::from_str::<Value>(&out.stdout).unwrap()["status"].clone()
    };
    assert_eq!(status_of(&finished), "finished");
    assert_eq!(status_of(&second), "running");
    running.signal("TERM");
    let out = running.wait_within(Duration::from_secs(20));
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_eq!(status_of(&second), "interrupted");
}

/// R4 looks at which run began later: of two stopped runs, resuming the older one to the
/// end does not block the newer one's resume.
#[test]
fn resuming_the_newer_of_two_stopped_runs_is_not_refused() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("leads.csv", leads(20));
    ws.write("job.yaml", job(&sim.url, 10, 1));
    let wrong = || {
        let mut c = ws.cmd(&["run", "job.yaml"]);
        c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
            .env("NXCLOUD_ACCESS_SECRET", "wrong");
        assert_eq!(run(c).code, 3);
    };
    wrong();
    std::thread::sleep(Duration::from_millis(1_100));
    wrong();
    let dirs = run_dirs(&ws.path("runs/t"));
    let (older, newer) = (&dirs[0], &dirs[1]);
    let out = run(cmd(&ws, &["resume", older.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run(cmd(&ws, &["resume", newer.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// A journal corrupted behind the run's back is not something a resume mends: exit 2,
/// `resumable: false`, and `status` says so too instead of guessing.
#[test]
fn a_corrupt_journal_is_not_resumable() {
    let ws = Workspace::new();
    ws.write("leads.csv", leads(20));
    ws.write("job.yaml", job("http://127.0.0.1:9", 10, 1));
    assert_eq!(run(cmd(&ws, &["run", "job.yaml"])).code, 3);
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let events = dir.join("events.jsonl");
    let mut lines: Vec<String> = read(&events).lines().map(str::to_string).collect();
    lines.insert(1, "{not json".into());
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["resumable"], false);
    assert!(doc["error"].as_str().unwrap().contains("corrupt"), "{doc}");
    let out = run(cmd(&ws, &["status", dir.to_str().unwrap()]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
}

/// With `base_url: sim`, a second run of a job that is running hears of the lock (exit 3,
/// naming the pid) at once, rather than waiting on the embedded simulator's state.
#[test]
fn a_second_run_of_a_sim_job_is_told_of_the_lock() {
    let ws = Workspace::new();
    ws.write("leads.csv", leads(100_000));
    ws.write("job.yaml", job("sim", 100, 4).replace("\"sim\"", "sim"));
    let first = ws.spawn(&["run", "job.yaml"], sim_env(None));
    let root = ws.path("runs/t");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run_dirs(&root)
        .iter()
        .any(|d| d.join("checkpoint.json").exists())
    {
        assert!(Instant::now() < deadline, "the first run never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("another run of this job is in progress (pid"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(3), "it waited");
    first.signal("TERM");
    assert_eq!(first.wait_within(Duration::from_secs(30)).code, Some(3));
}
