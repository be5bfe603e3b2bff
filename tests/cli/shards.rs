//! Shards (SPEC §10, §12 R19) against one `cdpjob sim` over HTTP: N real processes split a
//! job by the match key's hash, each with its own run directory, lock and checkpoint; the
//! same command again resumes a shard or says it finished; other runs are kept out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    SimProcess, Workspace, jsonl, run, sim_env, valid_leads, with_sim_credentials, write_leads,
};

const ROWS: u64 = 2_000;

fn job(url: &str, batch_size: u64, concurrency: u64) -> String {
    format!(
        "version: 1
name: t
kind: batch_create
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  max_retries: 0
  concurrency: {concurrency}
source: {{type: csv, path: leads.csv}}
filter: \"row.status != 'inactive'\"
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: {batch_size}
"
    )
}

fn workspace(url: &str, batch_size: u64, concurrency: u64) -> Workspace {
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), ROWS);
    ws.write("job.yaml", job(url, batch_size, concurrency));
    ws
}

fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c.env_remove("CDPJOB_SHARDS");
    c
}

fn shard_dir(ws: &Workspace, group: &str, k: u32, n: u32) -> PathBuf {
    ws.path(&format!("runs/t/{group}-{k}-of-{n}"))
}

fn rows_of(path: &Path) -> Vec<u64> {
    jsonl(path)
        .iter()
        .map(|l| l["row"].as_u64().unwrap())
        .collect()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Wait until the shard's run directory has committed a batch (the run is under way).
fn wait_for_checkpoint(running: &mut crate::common::Running, dir: &Path) {
    let checkpoint = dir.join("checkpoint.json");
    running.wait_for("a checkpoint", Duration::from_secs(30), || {
        checkpoint.exists()
    });
}

#[test]
fn four_shards_at_once_send_every_valid_row_exactly_once() {
    let sim = SimProcess::start(&["--latency-ms", "5"]);
    let ws = workspace(&sim.url, 25, 2);
    let shards: Vec<_> = (0..4)
        .map(|k| {
            let shard = format!("{k}/4");
            ws.spawn(
                &["run", "job.yaml", "--shard", &shard, "--group", "g1"],
                sim_env(None),
            )
        })
        .collect();
    for (k, s) in shards.into_iter().enumerate() {
        let out = s.wait_within(Duration::from_secs(120));
        // Rows without a phone are rejected, and go by row number (every 10th: shards 0
        // and 2 of 4): exit 1 there, 0 in the others.
        let code = if k % 2 == 0 { 1 } else { 0 };
        assert_eq!(
            out.code,
            Some(code),
            "shard {k}: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout
                .contains(&format!("shard {k} of 4 (group g1): of {ROWS} source rows")),
            "{}",
            out.stdout
        );
    }
    let (mut created, mut rejected, mut total) = (Vec::new(), Vec::new(), 0);
    for k in 0..4 {
        let dir = shard_dir(&ws, "g1", k, 4);
        let s = summary(&dir);
        assert_eq!(s["status"], "finished");
        let mine = rows_of(&dir.join("created.jsonl"));
        assert!(
            !mine.is_empty() && (mine.len() as u64) < ROWS / 2,
            "shard {k} took {} rows",
            mine.len()
        );
        created.extend(mine);
        rejected.extend(rows_of(&dir.join("rejected.jsonl")));
        let c = &s["counts"];
        assert_eq!(
            c["rows"].as_u64().unwrap(),
            ["created", "failed", "rejected", "skipped", "unchanged"]
                .iter()
                .map(|o| c[o].as_u64().unwrap())
                .sum::<u64>()
        );
        total += c["rows"].as_u64().unwrap();
        assert_eq!(s["shard"]["source_rows"], ROWS);
    }
    // Every source row is an outcome of exactly one shard.
    assert_eq!(total, ROWS);
    let created_set: BTreeSet<u64> = created.iter().copied().collect();
    assert_eq!(created.len(), created_set.len(), "a row created twice");
    assert_eq!(created_set, valid_leads(ROWS));
    let rejected_set: BTreeSet<u64> = rejected.iter().copied().collect();
    assert_eq!(rejected.len(), rejected_set.len());
    assert_eq!(
        rejected_set,
        (1..=ROWS).filter(|i| i % 10 == 0 && i % 15 != 0).collect()
    );
    // The simulator holds each customer once.
    let customers = sim.customers();
    let phones: BTreeSet<String> = customers
        .iter()
        .map(|c| c["whatsApp_phone"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(customers.len() as u64, valid_leads(ROWS).len() as u64);
    assert_eq!(phones.len(), customers.len());
}

#[test]
fn a_killed_shard_resumes_with_the_same_command_and_then_says_it_finished() {
    let sim = SimProcess::start(&["--latency-ms", "40"]);
    let ws = workspace(&sim.url, 10, 1);
    let args = ["run", "job.yaml", "--shard", "2/3", "--group", "g"];
    let dir = shard_dir(&ws, "g", 2, 3);
    let mut first = ws.spawn(&args, sim_env(None));
    wait_for_checkpoint(&mut first, &dir);
    first.signal("KILL");
    let _ = first.wait_within(Duration::from_secs(10));
    assert!(
        !dir.join("summary.json").exists(),
        "it finished before the kill"
    );
    let before = rows_of(&dir.join("created.jsonl")).len();
    assert!(before > 0);
    // `status JOB_ROOT` lists the shard, interrupted and resumable.
    let status = |ws: &Workspace| {
        let out = run(cmd(ws, &["status", "runs/t", "--json"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    let listed = status(&ws);
    assert_eq!(listed["format_version"], 1);
    let shards = listed["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 1, "{listed}");
    assert_eq!(
        (
            &shards[0]["group"],
            &shards[0]["index"],
            &shards[0]["count"]
        ),
        (&Value::from("g"), &Value::from(2), &Value::from(3))
    );
    assert_eq!(shards[0]["status"], "interrupted");
    assert_eq!(shards[0]["resumable"], true);
    // A sibling shard finishes meanwhile (a restarted pod comes back late): it holds other
    // customers, so it is no "newer run" that would refuse the resume (R4).
    let sibling = run(cmd(
        &ws,
        &["run", "job.yaml", "--shard", "0/3", "--group", "g"],
    ));
    assert!(sibling.code <= 1, "{}{}", sibling.stdout, sibling.stderr);

    let mut resumed = cmd(&ws, &args);
    resumed.args(["--metrics-file", "m.prom"]);
    let out = run(resumed);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("was interrupted: resuming"),
        "{}",
        out.stderr
    );
    let created = rows_of(&dir.join("created.jsonl"));
    let set: BTreeSet<u64> = created.iter().copied().collect();
    assert_eq!(set.len(), created.len(), "a row created twice");
    assert!(set.len() > before);
    // Exactly the valid rows of shard 2 (by R19's hash of the match key): no other's.
    let mine: BTreeSet<u64> = valid_leads(ROWS)
        .into_iter()
        .filter(|i| cdpjob::shard::of_key(&format!("whats_app_phone:86139{i:08}"), 3) == 2)
        .collect();
    assert_eq!(set, mine);
    assert_eq!(summary(&dir)["counts"]["created"], set.len() as u64);
    assert_eq!(summary(&dir)["status"], "finished");
    let metrics = std::fs::read_to_string(ws.path("m.prom")).unwrap();
    assert!(
        metrics.contains("cdpjob_up{job=\"t\",shard=\"2-of-3\"}"),
        "{metrics}"
    );
    let text = run(cmd(&ws, &["status", "runs/t"]));
    assert!(
        text.stdout.contains("g shard 2 of 3: finished"),
        "{}",
        text.stdout
    );
    let listed = status(&ws);
    let mine = listed["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["index"] == 2)
        .unwrap();
    assert_eq!(mine["status"], "finished");

    let requests = sim.requests();
    let again = run(cmd(&ws, &args));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("already finished"),
        "{}",
        again.stderr
    );
    assert_eq!(sim.requests(), requests, "a finished shard sent again");
    // `resume` of the shard's directory says the same.
    let resume = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert!(
        resume.stderr.contains("already finished"),
        "{}",
        resume.stderr
    );
}

#[test]
fn while_shards_run_a_run_without_shard_or_with_another_n_is_refused() {
    let sim = SimProcess::start(&["--latency-ms", "40"]);
    let ws = workspace(&sim.url, 10, 1);
    let dir = shard_dir(&ws, "g", 0, 2);
    let mut shard = ws.spawn(
        &["run", "job.yaml", "--shard", "0/2", "--group", "g"],
        sim_env(None),
    );
    wait_for_checkpoint(&mut shard, &dir);
    // Another shard of the same N shares the job (it is only started, then stopped).
    let whole = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(whole.code, 3, "{}{}", whole.stdout, whole.stderr);
    assert!(
        whole.stderr.contains("shards of this job"),
        "{}",
        whole.stderr
    );
    let other_n = run(cmd(
        &ws,
        &["run", "job.yaml", "--shard", "0/3", "--group", "g"],
    ));
    assert_eq!(other_n.code, 3, "{}{}", other_n.stdout, other_n.stderr);
    assert!(
        other_n.stderr.contains("shards of this job"),
        "{}",
        other_n.stderr
    );
    let same = run(cmd(
        &ws,
        &["run", "job.yaml", "--shard", "0/2", "--group", "g"],
    ));
    assert_eq!(same.code, 3, "{}{}", same.stdout, same.stderr);
    assert!(same.stderr.contains("in progress"), "{}", same.stderr);
    // Neither left a run directory behind.
    assert!(!shard_dir(&ws, "g", 0, 3).exists());
    let mut sibling = ws.spawn(
        &["run", "job.yaml", "--shard", "1/2", "--group", "g"],
        sim_env(None),
    );
    wait_for_checkpoint(&mut sibling, &shard_dir(&ws, "g", 1, 2));
    shard.signal("KILL");
    sibling.signal("KILL");
    let _ = shard.wait_within(Duration::from_secs(10));
    let _ = sibling.wait_within(Duration::from_secs(10));
    // Once the shards are gone, the job is free.
    let out = run(cmd(
        &ws,
        &[
            "run",
            "job.yaml",
            "--shard",
            "0/3",
            "--group",
            "h",
            "--dry-run",
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn the_shard_comes_from_the_environment_of_an_indexed_job() {
    let sim = SimProcess::start(&[]);
    let ws = workspace(&sim.url, 100, 2);
    let mut c = cmd(&ws, &["run", "job.yaml"]);
    c.env("JOB_COMPLETION_INDEX", "1")
        .env("CDPJOB_SHARDS", "2")
        .env("CDPJOB_RUN_GROUP", "nightly-28811");
    let out = run(c);
    // Shard 1 of 2 has odd rows only, so none of the rejected (every 10th): exit 0.
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dir = shard_dir(&ws, "nightly-28811", 1, 2);
    let s = summary(&dir);
    assert_eq!(
        (s["shard"]["index"].as_u64(), s["shard"]["count"].as_u64()),
        (Some(1), Some(2))
    );
    // JOB_COMPLETION_INDEX alone is no shard: Kubernetes sets it for every Indexed Job.
    let mut c = cmd(&ws, &["run", "job.yaml", "--json"]);
    c.env("JOB_COMPLETION_INDEX", "1");
    let out = run(c);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(doc.get("shard").is_none(), "{doc}");
    assert_eq!(doc["counts"]["rows"], ROWS);
}

#[test]
fn a_shard_out_of_range_or_an_export_is_a_usage_error() {
    let ws = workspace("sim", 100, 1);
    for args in [["--shard", "4/4"], ["--shard", "1/0"], ["--shard", "x"]] {
        let mut full = vec!["run", "job.yaml"];
        full.extend(args);
        let out = run(cmd(&ws, &full));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
    let mut c = cmd(&ws, &["run", "job.yaml"]);
    c.env("JOB_COMPLETION_INDEX", "3").env("CDPJOB_SHARDS", "3");
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("K must be below N"), "{}", out.stderr);
    assert!(!ws.path("runs/t").join("sync").exists());
    ws.write(
        "export.yaml",
        "version: 1\nname: e\nkind: query_export\napi:\n  base_url: sim\n  tenant_id: 123\n  app_key: k\nquery: {}\noutput: {path: out.csv}\n",
    );
    let out = run(cmd(&ws, &["run", "export.yaml", "--shard", "0/2"]));
    assert!(
        out.stderr.contains("query.parallel"),
        "{}{}",
        out.code,
        out.stderr
    );
    assert_eq!(out.code, 2);
}

#[test]
fn with_sync_changed_each_shard_keeps_its_own_state_and_another_n_starts_empty() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 300);
    ws.write("job.yaml", job(&sim.url, 50, 2) + "sync: changed\n");
    let shard = |ws: &Workspace, s: &str, g: &str| {
        let out = run(cmd(
            ws,
            &["run", "job.yaml", "--shard", s, "--group", g, "--json"],
        ));
        assert!(out.code <= 1, "{}{}", out.stdout, out.stderr);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        (doc, out.stderr)
    };
    let (first, _) = shard(&ws, "0/2", "a");
    assert!(first["counts"]["created"].as_u64().unwrap() > 0);
    assert!(ws.path("runs/t/sync/0-of-2").is_dir());
    // The same shard in another group: everything unchanged in its own state.
    let (again, _) = shard(&ws, "0/2", "b");
    assert_eq!(again["counts"]["created"], 0, "{again}");
    assert_eq!(again["counts"]["unchanged"], first["counts"]["created"]);
    // Shard 1 of 2 has no state of its own yet: its customers are new.
    let (other, _) = shard(&ws, "1/2", "b");
    assert!(other["counts"]["created"].as_u64().unwrap() > 0);
    // Another N starts empty, and says so.
    let (three, stderr) = shard(&ws, "0/3", "c");
    assert!(
        stderr.contains("this shard's state starts empty"),
        "{stderr}"
    );
    assert_eq!(three["counts"]["unchanged"], 0);
    assert!(ws.path("runs/t/sync/0-of-3").is_dir());

    // A retry of a shard's rows (its rejected ones, given an e-mail by a fixed mapping)
    // records what it creates in that shard's state, not in a state of the unsharded job.
    ws.write(
        "job.yaml",
        job(&sim.url, 50, 2).replace(
            "  whats_app_phone:",
            "  email: \"{{ row.name | replace(' ', '') | lower }}@example.com\"\n  whats_app_phone:",
        ) + "sync: changed\n",
    );
    let out = run(cmd(&ws, &["retry", "runs/t/a-0-of-2", "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(doc["counts"]["created"].as_u64().unwrap() > 0, "{doc}");
    let unsharded: Vec<_> = std::fs::read_dir(ws.path("runs/t/sync"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert!(
        unsharded.is_empty(),
        "a state of the unsharded job: {unsharded:?}"
    );
}
