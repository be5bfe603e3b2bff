//! SQL sources as a user meets them, the same scenarios for every database (SQLite here;
//! PostgreSQL and MariaDB in `sql_servers`, on private servers the tests start): every
//! column type as text, NULL as JSON null and as `none`, 10,000 rows streamed, a kill and
//! a resume after the table changed (the resume sends the rows of the spool), a crash
//! while spooling (the resume queries again), a damaged spool, and the errors.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{SimProcess, Workspace, jsonl, run, run_dirs, sim_env, with_sim_credentials};

/// A database the scenarios can use.
pub trait Db {
    /// The connection string (what `DATABASE_URL` holds), for a job in `ws`.
    fn url(&self, ws: &Workspace) -> String;
    /// Run SQL statements (separated by `;`) on it.
    fn exec(&self, ws: &Workspace, sql: &str);
}

/// A job reading `query` from `DATABASE_URL`, sending to `base_url`.
pub fn job(base_url: &str, query: &str, mapping: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{base_url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 8\n  timeout_secs: 5\n  concurrency: 1\nsource: {{type: sql, url_env: DATABASE_URL, query: \"{query}\"}}\nmapping:\n{mapping}{extra}"
    )
}

pub const LEAD_MAPPING: &str =
    "  full_name: \"{{ row.name }}\"\n  whats_app_phone: \"{{ row.phone }}\"\n";

pub fn cmd(ws: &Workspace, db: &dyn Db, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c.env("DATABASE_URL", db.url(ws));
    c
}

fn rows_of(path: &Path) -> BTreeSet<u64> {
    jsonl(path)
        .iter()
        .map(|l| l["row"].as_u64().unwrap())
        .collect()
}

/// `types_sql` makes a table `types` (ordered by `id`) whose row 1 holds a value of every
/// column type and `phone` NULL, row 2 NULL everywhere but `id`, row 3 a phone and NULLs:
/// rows 1 and 2 are rejected (no contact channel) and their `"record"` is `expected_1`
/// and all-null; row 3 is sent, NULL rendering empty and `is none` true.
#[track_caller]
pub fn column_types_and_nulls(db: &dyn Db, types_sql: &str, expected_1: Value) {
    let ws = Workspace::new();
    db.exec(&ws, types_sql);
    let mapping = "  whats_app_phone: \"{{ row.phone }}\"\n  full_name: \"{{ 'was null' if row.t_text is none else row.t_text }}\"\n  remark: \"[{{ row.t_int }}]\"\n";
    ws.write(
        "job.yaml",
        job("sim", "SELECT * FROM types ORDER BY id", mapping, ""),
    );
    let out = run(cmd(&ws, db, &["plan", "--json", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["counts"]["rows"], 3, "{plan}");
    assert_eq!(
        plan["preview"][0]["customer"],
        json!({"whats_app_phone": "8613800000003", "full_name": "was null", "remark": "[]"}),
        "{plan}"
    );
    let out = run(cmd(&ws, db, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let rejected = jsonl(&dir.join("rejected.jsonl"));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0]["record"], expected_1);
    let nulls = rejected[1]["record"].as_object().unwrap();
    assert_eq!(nulls.len(), expected_1.as_object().unwrap().len());
    for (k, v) in nulls {
        if k != "id" {
            assert_eq!(v, &Value::Null, "{k} of row 2: {nulls:?}");
        }
    }
    assert_eq!(rows_of(&dir.join("created.jsonl")), BTreeSet::from([3]));
}

/// SQL that fills `leads(id, name, phone)` with `n` rows: `Lead i`, `86139<i, 8 digits>`.
pub type LeadsSql = fn(u64) -> String;

/// 10,000 rows stream through plan and run; the run's spool holds them all.
#[track_caller]
pub fn ten_thousand_rows(db: &dyn Db, leads: LeadsSql) {
    let ws = Workspace::new();
    db.exec(&ws, &leads(10_000));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "batch_size: 100\n",
        ),
    );
    let out = run(cmd(&ws, db, &["plan", "--json", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["counts"]["rows"], 10_000, "{plan}");
    assert_eq!(plan["counts"]["valid"], 10_000, "{plan}");
    let out = run(cmd(&ws, db, &["run", "job.yaml", "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["created"], 10_000, "{summary}");
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let kind = &manifest["kind"]["batch_create"];
    assert_eq!(kind["spool"], json!({"complete": true, "rows": 10_000}));
    let spool = dir.join("source.jsonl.zst");
    assert_eq!(
        kind["source"]["size"],
        std::fs::metadata(&spool).unwrap().len()
    );
    // Compressed: a 10,000-row spool is far smaller than its JSON lines.
    assert!(std::fs::metadata(&spool).unwrap().len() < 10_000 * 20);
}

/// SIGKILL mid-run, the table changed (names rewritten, rows deleted, rows added), then
/// `resume`: every original row is created once, with its original name (from the spool).
#[track_caller]
pub fn kill_and_resume_after_the_table_changed(db: &dyn Db, leads: LeadsSql, change: &str) {
    // 200 requests of 20 ms each, one at a time: seconds, so the kill lands mid-run.
    let sim = SimProcess::start(&["--latency-ms", "20"]);
    let ws = Workspace::new();
    db.exec(&ws, &leads(2_000));
    ws.write(
        "job.yaml",
        job(
            &sim.url,
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "batch_size: 10\n",
        ),
    );
    let mut env = sim_env(None).to_vec();
    env.push(("DATABASE_URL", db.url(&ws)));
    let mut running = ws.spawn(&["run", "job.yaml"], env);
    let root = ws.path("runs/t");
    let deadline = Instant::now() + Duration::from_secs(60);
    running.wait_for("a batch committed", Duration::from_secs(60), || {
        run_dirs(&root)
            .first()
            .is_some_and(|d| d.join("checkpoint.json").exists())
    });
    running.signal("KILL");
    let _ = running
        .wait_within(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(10));
    let dir = run_dirs(&root).pop().unwrap();
    let before = rows_of(&dir.join("created.jsonl")).len();
    assert!(before < 2_000, "the run finished before it was killed");
    db.exec(&ws, change);
    let out = run(cmd(&ws, db, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let created = rows_of(&dir.join("created.jsonl"));
    assert_eq!(created, (1..=2_000).collect::<BTreeSet<u64>>());
    let customers = sim.customers();
    assert_eq!(customers.len(), 2_000);
    for c in &customers {
        let text = c.to_string();
        assert!(
            text.contains("Lead ") && !text.contains("changed") && !text.contains("\"new\""),
            "a row of the changed table was sent: {c}"
        );
    }
}

/// The SQL a resume after a kill finds: every name changed, rows gone, a row added.
pub const CHANGE_LEADS: &str = "UPDATE leads SET name = 'changed'; DELETE FROM leads WHERE id > 1500; INSERT INTO leads (id, name, phone) VALUES (5000, 'new', '8613900005000')";

/// A query that compiles but fails while it runs (`query`: a division by zero on one row,
/// a subquery of several rows — `message` is the database's word for it): plan and run
/// exit 2 with that message, and the run is not left "resumable" — its resume would run
/// the same query and fail the same way. Nothing was sent, and no partial spool is kept.
#[track_caller]
pub fn a_query_failing_while_it_runs_is_exit_2(
    db: &dyn Db,
    leads: LeadsSql,
    query: &str,
    message: &str,
) {
    let ws = Workspace::new();
    db.exec(&ws, &leads(3_000));
    ws.write("job.yaml", job("sim", query, LEAD_MAPPING, ""));
    let out = run(cmd(&ws, db, &["plan", "job.yaml"]));
    assert_eq!(out.code, 2, "plan: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(message), "plan: {}", out.stderr);
    let out = run(cmd(&ws, db, &["run", "job.yaml", "--json"]));
    assert_eq!(out.code, 2, "run: {}{}", out.stdout, out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["resumable"], false, "{summary}");
    assert_eq!(summary["requests"], 0, "{summary}");
    let reason = summary["stopped_reason"].as_str().unwrap();
    assert!(reason.contains(message), "{reason}");
    assert!(reason.contains("start a new run"), "{reason}");
    assert!(!out.stderr.contains("resume with"), "{}", out.stderr);
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    assert!(!dir.join("source.jsonl.zst.partial").exists());
    assert!(!dir.join("source.jsonl.zst").exists());
    // A resume runs the query again: the same refusal, exit 2 again (never 3).
    let out = run(cmd(&ws, db, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 2, "resume: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(message), "resume: {}", out.stderr);
}
