//! `sync: changed` against a real `cdpjob sim` process, with the simulator's own count of
//! the customers it was sent as the proof of what went over the wire: a second run sends
//! nothing, an edit sends exactly the edited rows, kills and failed state commits lose
//! nothing and record nothing unconfirmed, and a broken state is refused with a way out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{SimProcess, Workspace, assert_lock_free, jsonl, run, with_sim_credentials};

/// A source of `rows` customers (`phone` 86137<row>), with `name` edited where `edit` says.
fn write_customers(path: &Path, rows: u64, edit: impl Fn(u64) -> Option<String>) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "name,phone,status").unwrap();
    for i in 1..=rows {
        let name = edit(i).unwrap_or_else(|| format!("Customer {i}"));
        writeln!(out, "{name},86137{i:08},active").unwrap();
    }
    out.flush().unwrap();
}

fn job(url: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: s\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 8\n  timeout_secs: 5\n  concurrency: 4\nsource: {{type: csv, path: customers.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\nbatch_size: 50\nsync: changed\n{extra}"
    )
}

struct Sync {
    ws: Workspace,
    sim: SimProcess,
}

impl Sync {
    fn new(sim_args: &[&str], extra: &str) -> Sync {
        let ws = Workspace::new();
        let sim = SimProcess::start(sim_args);
        ws.write("job.yaml", job(&sim.url, extra));
        Sync { ws, sim }
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.ws.cmd(args);
        with_sim_credentials(&mut c);
        c
    }

    /// `cdpjob run job.yaml --json ARGS`: the summary, and the customers the simulator
    /// was sent meanwhile.
    #[track_caller]
    fn run(&self, args: &[&str], expect: i32) -> (Value, u64) {
        let before = self.written();
        let mut all = vec!["run", "job.yaml", "--json"];
        all.extend_from_slice(args);
        let out = run(self.cmd(&all));
        assert_eq!(out.code, expect, "{}{}", out.stdout, out.stderr);
        let summary: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
        (summary, self.written() - before)
    }

    fn written(&self) -> u64 {
        self.sim.get("/__sim/stats")["customers_written"]
            .as_u64()
            .unwrap()
    }

    /// The run directories of the job.
    fn run_dirs(&self) -> Vec<PathBuf> {
        crate::common::run_dirs(&self.ws.path("runs/s"))
    }

    /// The one run directory that has no summary: the run that was interrupted.
    fn unfinished(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = self
            .run_dirs()
            .into_iter()
            .filter(|d| !d.join("summary.json").exists())
            .collect();
        let [dir] = dirs.try_into().unwrap();
        dir
    }

    fn state_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.ws.path("runs/s/sync"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    /// The simulator's customers' names, by phone.
    fn names(&self) -> std::collections::BTreeMap<String, String> {
        self.sim
            .customers()
            .iter()
            .map(|c| {
                (
                    c["whatsApp_phone"].as_str().unwrap_or_default().to_string(),
                    c["full_name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

fn rows_of(path: &Path) -> Vec<u64> {
    let mut rows: Vec<u64> = jsonl(path)
        .iter()
        .map(|l| l["row"].as_u64().unwrap())
        .collect();
    rows.sort_unstable();
    rows
}

fn counts(summary: &Value) -> (u64, u64, u64) {
    let c = &summary["counts"];
    (
        c["rows"].as_u64().unwrap(),
        c["created"].as_u64().unwrap(),
        c["unchanged"].as_u64().unwrap(),
    )
}

impl Sync {
    /// A summary's run directory (relative to the workspace, where the runs ran).
    fn dir_of(&self, summary: &Value) -> PathBuf {
        self.ws.path(summary["run_dir"].as_str().unwrap())
    }
}

#[test]
fn a_second_run_sends_nothing_and_an_edit_sends_exactly_what_changed() {
    let s = Sync::new(&[], "");
    let src = s.ws.path("customers.csv");
    write_customers(&src, 500, |_| None);

    let (first, sent) = s.run(&[], 0);
    assert_eq!((counts(&first), sent), ((500, 500, 0), 500));
    assert_eq!(first["format_version"], 1);
    assert_eq!(first["missing_since_last_sync"], 0);

    let before = s.sim.requests();
    let (second, sent) = s.run(&[], 0);
    assert_eq!((counts(&second), sent), ((500, 0, 500), 0));
    assert_eq!(
        s.sim.requests(),
        before,
        "an unchanged sync sends no request at all"
    );

    // Seven rows edited, five added: exactly those twelve are sent.
    let edited = [3u64, 50, 51, 199, 200, 333, 500];
    write_customers(&src, 505, |i| {
        edited.contains(&i).then(|| format!("Edited {i}"))
    });
    let (third, sent) = s.run(&[], 0);
    assert_eq!((counts(&third), sent), ((505, 12, 493), 12));
    let mut expected: Vec<u64> = edited.to_vec();
    expected.extend(501..=505);
    assert_eq!(rows_of(&s.dir_of(&third).join("created.jsonl")), expected);
    assert_eq!(s.names()["8613700000050"], "Edited 50");

    // --full sends everything again, and the state stays as complete as it was.
    let (full, sent) = s.run(&["--full"], 0);
    assert_eq!((counts(&full), sent), ((505, 505, 0), 505));
    let (after, sent) = s.run(&[], 0);
    assert_eq!((counts(&after), sent), ((505, 0, 505), 0));

    // Customers the source no longer has are counted, and nothing is done to them.
    write_customers(&src, 502, |i| {
        edited.contains(&i).then(|| format!("Edited {i}"))
    });
    let (shorter, sent) = s.run(&[], 0);
    assert_eq!(sent, 0);
    assert_eq!(shorter["missing_since_last_sync"], 3);

    let status = run(s.cmd(&["status", "--json", s.dir_of(&shorter).to_str().unwrap()]));
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["counts"]["unchanged"], 502);
}

#[test]
fn a_match_key_twice_in_one_source_is_rejected_naming_the_earlier_row() {
    let s = Sync::new(&[], "");
    let src = s.ws.path("customers.csv");
    std::fs::write(
        &src,
        "name,phone,status\nAda,8613700000001,active\nBob,8613700000002,active\nAda again,8613700000001,active\n",
    )
    .unwrap();
    let (summary, sent) = s.run(&[], 1);
    assert_eq!(sent, 2);
    assert_eq!(summary["counts"]["rejected"], 1);
    let rejected = jsonl(&s.dir_of(&summary).join("rejected.jsonl"));
    assert_eq!(rejected.len(), 1);
    let e = &rejected[0]["errors"][0];
    assert_eq!(rejected[0]["row"], 3);
    assert_eq!(
        (e["field"].as_str(), e["rule"].as_str()),
        (Some("whats_app_phone"), Some("duplicate_key"))
    );
    assert!(e["message"].as_str().unwrap().contains("row 1"), "{e}");
    assert_eq!(rejected[0]["record"]["name"], "Ada again");
}

#[test]
fn another_api_target_starts_its_own_state_and_keeps_the_first() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 40, |_| None);
    s.run(&[], 0);
    let other = SimProcess::start(&["--app-key", "other-app"]);
    let job_b = job(&other.url, "").replace("46oKF=os", "other-app");
    s.ws.write("job.yaml", job_b);
    let out = run(s.cmd(&["run", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no state yet: every customer counts as new"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("another API target"), "{}", out.stderr);
    assert_eq!(other.get("/__sim/stats")["customers_written"], 40);
    assert_eq!(s.state_files().len(), 2);
    // Back on the first target, its state is still there: nothing to send.
    s.ws.write("job.yaml", job(&s.sim.url, ""));
    let (summary, sent) = s.run(&[], 0);
    assert_eq!((counts(&summary), sent), ((40, 0, 40), 0));
}

#[test]
fn a_damaged_state_is_refused_with_the_way_out_and_full_moves_it_aside() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 60, |_| None);
    s.run(&[], 0);
    let [state] = s.state_files().try_into().unwrap();
    for damage in ["truncated", "garbage"] {
        let bytes = std::fs::read(&state).unwrap();
        match damage {
            "truncated" => std::fs::write(&state, &bytes[..bytes.len() / 3]).unwrap(),
            _ => std::fs::write(&state, b"this is not a sync state").unwrap(),
        }
        let runs_before = std::fs::read_dir(s.ws.path("runs/s")).unwrap().count();
        let before = s.written();
        let out = run(s.cmd(&["run", "job.yaml"]));
        assert_eq!(out.code, 2, "{damage}: {}{}", out.stdout, out.stderr);
        let name = state.file_name().unwrap().to_string_lossy();
        assert!(
            out.stderr.contains(&format!("sync/{name}")),
            "{damage}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("--full"), "{damage}: {}", out.stderr);
        assert_eq!(s.written(), before, "{damage}: nothing is sent");
        assert_eq!(
            std::fs::read_dir(s.ws.path("runs/s")).unwrap().count(),
            runs_before,
            "{damage}: no run directory is left behind"
        );
        std::fs::write(&state, &bytes).unwrap();
    }
    std::fs::write(&state, b"this is not a sync state").unwrap();
    let (summary, sent) = s.run(&["--full"], 0);
    assert_eq!((counts(&summary), sent), ((60, 60, 0), 60));
    let names: Vec<String> = s
        .state_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.contains(".sync.broken-")),
        "{names:?}"
    );
    let (again, sent) = s.run(&[], 0);
    assert_eq!((counts(&again), sent), ((60, 0, 60), 0));
}

#[test]
fn a_run_killed_mid_way_and_resumed_records_exactly_what_it_confirmed() {
    let s = Sync::new(&["--latency-ms", "60"], "");
    let src = s.ws.path("customers.csv");
    write_customers(&src, 6000, |_| None);
    s.run(&[], 0);
    // Every customer edited; the run that sends them is killed part of the way.
    write_customers(&src, 6000, |i| Some(format!("Renamed {i}")));
    let mut running = s.ws.spawn(
        &["run", "job.yaml"],
        [
            ("NXCLOUD_ACCESS_KEY", "cdpjob-sim"),
            ("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret"),
        ],
    );
    let root = s.ws.path("runs/s");
    let second = || {
        s.run_dirs()
            .into_iter()
            .find(|d| !d.join("summary.json").exists())
    };
    running.wait_for("some customers created", Duration::from_secs(60), || {
        second().is_some_and(|d| jsonl(&d.join("created.jsonl")).len() >= 300)
    });
    running.signal("KILL");
    running.wait_within(Duration::from_secs(10));
    let killed = s.unfinished();
    let done_before = jsonl(&killed.join("created.jsonl")).len();
    assert!(
        done_before < 6000,
        "the kill came too late to test anything"
    );
    assert_lock_free(&root.join(".lock"));
    assert!(killed.join("sync-snapshot.bin").exists());

    // Another run finishes in between and records every renamed customer in the state.
    let (between, sent) = s.run(&[], 0);
    assert_eq!((counts(&between), sent), ((6000, 6000, 0), 6000));
    // The late resume (--force: a newer run finished) still compares with the state as the
    // killed run found it: what it had not confirmed is sent, none of it is "unchanged".
    let out = run(s.cmd(&["resume", killed.to_str().unwrap(), "--json", "--force"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let resumed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(resumed["counts"]["created"], 6000, "{resumed}");
    assert_eq!(
        resumed["counts"]["unchanged"], 0,
        "a resume compares with the state as the run found it"
    );

    let (next, sent) = s.run(&[], 0);
    assert_eq!((counts(&next), sent), ((6000, 0, 6000), 0));
    let names = s.names();
    assert!(
        names.values().all(|n| n.starts_with("Renamed ")),
        "the server holds the new values"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_failed_state_commit_stops_resumably_and_the_resume_records_it_once() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 200, |_| None);

    // The commit fails: the run stops (exit 3), nothing is recorded, the resume records it.
    let mut c = s.cmd(&["run", "job.yaml", "--json"]);
    c.env("CDPJOB_FAILPOINT", "sync_commit:1:error");
    let out = run(c);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let stopped: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(stopped["resumable"], true);
    assert!(
        stopped["stopped_reason"]
            .as_str()
            .unwrap()
            .contains("sync state"),
        "{stopped}"
    );
    let dir = s.dir_of(&stopped);
    // Resumed from another working directory: it records in the job's own state.
    let mut resume = s.cmd(&["resume", dir.to_str().unwrap(), "--json"]);
    resume.current_dir(std::env::temp_dir());
    let out = run(resume);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let (next, sent) = s.run(&[], 0);
    assert_eq!((counts(&next), sent), ((200, 0, 200), 0));

    // A crash right after the commit, before the summary: the resume finds the run's
    // customers recorded already and finishes.
    write_customers(&s.ws.path("customers.csv"), 200, |i| {
        (i <= 20).then(|| format!("New {i}"))
    });
    let mut c = s.cmd(&["run", "job.yaml"]);
    c.env("CDPJOB_FAILPOINT", "after_sync_commit:1");
    let out = run(c);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("failpoint after_sync_commit reached"),
        "{}",
        out.stderr
    );
    let crashed = s.unfinished();
    let before = s.written();
    let out = run(s.cmd(&["resume", crashed.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let resumed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(resumed["counts"]["created"], 20);
    assert_eq!(
        s.written(),
        before,
        "the resume sends nothing: all was confirmed"
    );
    let (next, sent) = s.run(&[], 0);
    assert_eq!((counts(&next), sent), ((200, 0, 200), 0));
}

#[test]
fn validate_refuses_change_detection_without_a_match_key() {
    let ws = Workspace::new();
    ws.write(
        "customers.csv",
        "name,phone,status\nAda,8613700000001,active\n",
    );
    let text = job("sim", "").replace(
        "whats_app_phone: \"{{ row.phone }}\"",
        "viber_phone: \"{{ row.phone }}\"",
    );
    ws.write("job.yaml", &text);
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let line = text.lines().position(|l| l.starts_with("sync:")).unwrap() + 1;
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains(&format!("job.yaml:{line}:7")), "{all}");
    assert!(all.contains("match key"), "{all}");
    // With a key field it is valid.
    ws.write("job.yaml", job("sim", ""));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn plan_counts_what_would_be_sent_from_the_state_with_no_network_and_never_fails_on_a_held_one() {
    let s = Sync::new(&[], "");
    let src = s.ws.path("customers.csv");
    write_customers(&src, 300, |_| None);
    let plan = |s: &Sync| -> Value {
        let out = run(s.cmd(&["plan", "job.yaml", "--json"]));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let before = plan(&s);
    assert_eq!(
        (
            before["counts"]["valid"].as_u64(),
            before["counts"]["unchanged"].as_u64()
        ),
        (Some(300), Some(0))
    );
    s.run(&[], 0);
    write_customers(&src, 305, |i| (i % 100 == 0).then(|| format!("Edited {i}")));
    let requests = s.sim.requests();
    let after = plan(&s);
    assert_eq!(s.sim.requests(), requests, "plan touches no network");
    let c = &after["counts"];
    assert_eq!(
        (c["valid"].as_u64(), c["unchanged"].as_u64()),
        (Some(8), Some(297)),
        "{after}"
    );
    assert_eq!(after["sync"]["customers_in_state"], 300);
    assert_eq!(after["batches"], 1);
    let text = run(s.cmd(&["plan", "job.yaml"])).stdout;
    assert!(
        text.contains("to send") && text.contains("unchanged"),
        "{text}"
    );

    // A state held by another process (a run committing): plan says so and goes on.
    let [state] = s.state_files().try_into().unwrap();
    let held = redb::Database::open(&state).unwrap();
    let out = run(s.cmd(&["plan", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("in use by another cdpjob process"),
        "{}",
        out.stdout
    );
    drop(held);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_damaged_snapshot_of_a_stopped_run_is_refused_not_guessed_at() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 100, |_| None);
    let mut c = s.cmd(&["run", "job.yaml", "--json"]);
    c.env("CDPJOB_FAILPOINT", "sync_commit:1:error");
    let out = run(c);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let dir = s.dir_of(&serde_json::from_str(&out.stdout).unwrap());
    let snapshot = dir.join("sync-snapshot.bin");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();
    let out = run(s.cmd(&["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("sync snapshot"), "{}", out.stderr);
}

#[test]
fn a_state_of_a_newer_format_is_refused_and_full_sets_it_aside() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 30, |_| None);
    s.run(&[], 0);
    let [state] = s.state_files().try_into().unwrap();
    {
        let meta: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");
        let db = redb::Database::open(&state).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(meta)
            .unwrap()
            .insert("format_version", "2")
            .unwrap();
        txn.commit().unwrap();
    }
    let before = s.written();
    let out = run(s.cmd(&["run", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("newer cdpjob"), "{}", out.stderr);
    assert!(out.stderr.contains("--full"), "{}", out.stderr);
    assert_eq!(s.written(), before);
    let (full, sent) = s.run(&["--full"], 0);
    assert_eq!((counts(&full), sent), ((30, 30, 0), 30));
    assert_eq!(s.state_files().len(), 2, "the newer state is kept aside");
}

#[test]
fn a_run_waits_for_a_plan_reading_the_state_and_says_when_it_cannot() {
    let s = Sync::new(&[], "");
    write_customers(&s.ws.path("customers.csv"), 50, |_| None);
    s.run(&[], 0);
    let [state] = s.state_files().try_into().unwrap();
    // A reader (as `plan` holds it) that lets go after a second: the run waits for it.
    let reader = redb::ReadOnlyDatabase::open(&state).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        drop(reader);
    });
    write_customers(&s.ws.path("customers.csv"), 55, |_| None);
    let (summary, sent) = s.run(&[], 0);
    assert_eq!((counts(&summary), sent), ((55, 5, 50), 5));
    release.join().unwrap();

    // One that does not let go: exit 3 (trying again can succeed), nothing sent, no run
    // directory left.
    let reader = redb::ReadOnlyDatabase::open(&state).unwrap();
    let dirs = s.run_dirs().len();
    let before = s.written();
    let out = run(s.cmd(&["run", "job.yaml", "--json"]));
    drop(reader);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["run_dir"], Value::Null);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("in use by another cdpjob process"),
        "{doc}"
    );
    assert_eq!(s.written(), before);
    assert_eq!(s.run_dirs().len(), dirs);
}

#[test]
fn a_retry_of_a_sync_job_records_what_it_creates_and_leaves_duplicates_alone() {
    let s = Sync::new(&[], "");
    std::fs::write(
        s.ws.path("customers.csv"),
        "name,phone,status\nAda,8613700000001,active\nBob,8613700000002,active\nAda again,8613700000001,active\nCy,86137-00000004,active\n",
    )
    .unwrap();
    let (first, _) = s.run(&[], 1);
    assert_eq!(counts(&first), (4, 2, 0));
    // The mapping fixed: `digits` leaves the good phones as they were, so their hashes too.
    let fixed = job(&s.sim.url, "").replace("{{ row.phone }}", "{{ row.phone | digits }}");
    s.ws.write("job.yaml", &fixed);
    let first_dir = s.dir_of(&first);
    let dry = run(s.cmd(&["retry", first_dir.to_str().unwrap(), "--dry-run", "--json"]));
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry["sync"]["missing_since_last_sync"], Value::Null, "{dry}");
    assert_eq!(
        dry["counts"]["valid"], 1,
        "only row 4: row 3 is a duplicate, not retried"
    );

    let before = s.written();
    let out = run(s.cmd(&["retry", first_dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let retry: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s.written() - before, 1);
    assert_eq!(retry["retry_of"]["not_retryable"], 1, "{retry}");
    assert_eq!(retry.get("missing_since_last_sync"), None, "{retry}");
    let created = jsonl(&s.dir_of(&retry).join("created.jsonl"));
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["row"], 4);
    assert_eq!(
        s.names()["8613700000001"],
        "Ada",
        "the duplicate was not sent over Ada"
    );

    // The next run finds the retried customer in the state: nothing to send.
    let (next, sent) = s.run(&[], 1);
    assert_eq!(sent, 0);
    assert_eq!(counts(&next), (4, 0, 3));
}

#[test]
fn a_retry_that_would_reject_its_rows_again_is_refused_by_max_rejected() {
    let s = Sync::new(&[], "guard:\n  max_rejected: \"50%\"\n");
    let mut text = String::from("name,phone,status\n");
    for i in 1..=10 {
        let phone = if i <= 3 {
            format!("phone {i}")
        } else {
            format!("86137{i:08}")
        };
        text.push_str(&format!("C{i},{phone},active\n"));
    }
    std::fs::write(s.ws.path("customers.csv"), text).unwrap();
    let (first, _) = s.run(&[], 1);
    assert_eq!(first["counts"]["rejected"], 3);
    let dirs = s.run_dirs().len();
    let before = s.written();
    // Retried with the mapping unchanged: all three rejected again, 100% > 50%.
    let out = run(s.cmd(&["retry", s.dir_of(&first).to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["run_dir"], Value::Null);
    assert_eq!((s.written(), s.run_dirs().len()), (before, dirs));
}
