//! The SQL scenarios on SQLite (a file beside the job: nothing to start), and what only a
//! file database makes easy to test: a crash while spooling, a damaged or missing spool,
//! a query that does not compile, `validate`'s warning and `validate --remote`.

use serde_json::json;

#[cfg(feature = "failpoints")]
use crate::common::crash_at;
use crate::common::{Workspace, run, run_dirs};
use crate::sql::{self, CHANGE_LEADS, Db, LEAD_MAPPING, cmd, job};

struct Sqlite;

impl Db for Sqlite {
    fn url(&self, _ws: &Workspace) -> String {
        // Relative to the job file's directory (SPEC §8).
        "sqlite://data/c.db".into()
    }

    fn exec(&self, ws: &Workspace, sql: &str) {
        std::fs::create_dir_all(ws.path("data")).unwrap();
        let conn = rusqlite::Connection::open(ws.path("data/c.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

fn leads(n: u64) -> String {
    format!(
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, name TEXT, phone TEXT);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
         INSERT INTO leads SELECT i, 'Lead ' || i, '86139' || printf('%08d', i) FROM s;"
    )
}

#[test]
fn sqlite_column_types_and_nulls() {
    let types = "CREATE TABLE types (id INTEGER PRIMARY KEY, phone TEXT, t_int INTEGER, t_big INTEGER, t_float REAL, t_whole REAL, t_bool BOOLEAN, t_text TEXT, t_bytes BLOB, t_date DATE, t_ts DATETIME);
        INSERT INTO types VALUES (1, NULL, 42, 9007199254740993, 0.1, 3.0, 1, 'héllo, 世界', x'00ff10', '2024-03-05', '2024-03-05 07:08:09');
        INSERT INTO types (id) VALUES (2);
        INSERT INTO types (id, phone) VALUES (3, '8613800000003');";
    sql::column_types_and_nulls(
        &Sqlite,
        types,
        json!({"id": "1", "phone": null, "t_int": "42", "t_big": "9007199254740993", "t_float": "0.1", "t_whole": "3", "t_bool": "true", "t_text": "héllo, 世界", "t_bytes": "00ff10", "t_date": "2024-03-05", "t_ts": "2024-03-05 07:08:09"}),
    );
}

#[test]
fn sqlite_ten_thousand_rows_stream() {
    sql::ten_thousand_rows(&Sqlite, leads);
}

#[test]
fn sqlite_kill_and_resume_after_the_table_changed_sends_the_spooled_rows() {
    sql::kill_and_resume_after_the_table_changed(&Sqlite, leads, CHANGE_LEADS);
}

#[cfg(feature = "failpoints")]
fn leads_job(ws: &Workspace) {
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "batch_size: 10\n",
        ),
    );
}

/// SPEC §12 R12: a crash while spooling leaves a run that has not started; its resume runs
/// the query again, from scratch, and sends what the table holds then.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_while_spooling_is_resumed_by_querying_again() {
    let ws = Workspace::new();
    Sqlite.exec(&ws, &leads(50));
    leads_job(&ws);
    crash_at(cmd(&ws, &Sqlite, &["run", "job.yaml"]), "spool_row", "20");
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"complete\": false"), "{manifest}");
    assert!(!dir.join("source.jsonl.zst").exists());
    Sqlite.exec(&ws, "DELETE FROM leads WHERE id > 30");
    let out = run(cmd(
        &ws,
        &Sqlite,
        &["resume", dir.to_str().unwrap(), "--json"],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["created"], 30, "{summary}");
    assert!(!dir.join("source.jsonl.zst.partial").exists());
}

/// Once the spool is complete nothing re-queries: a damaged or missing spool stops the
/// resume with exit 2, `--force` included.
#[cfg(feature = "failpoints")]
#[test]
fn a_damaged_or_missing_spool_is_exit_2_even_forced() {
    let ws = Workspace::new();
    Sqlite.exec(&ws, &leads(50));
    leads_job(&ws);
    crash_at(cmd(&ws, &Sqlite, &["run", "job.yaml"]), "after_intent", "2");
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let spool = dir.join("source.jsonl.zst");
    let mut bytes = std::fs::read(&spool).unwrap();
    let good = bytes.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&spool, &bytes).unwrap();
    for args in [vec!["resume"], vec!["resume", "--force"]] {
        let mut args = args.clone();
        args.push(dir.to_str().unwrap());
        let out = run(cmd(&ws, &Sqlite, &args));
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("is not the one this run wrote"),
            "{}",
            out.stderr
        );
    }
    std::fs::remove_file(&spool).unwrap();
    let out = run(cmd(
        &ws,
        &Sqlite,
        &["resume", "--force", dir.to_str().unwrap()],
    ));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cannot be read"), "{}", out.stderr);
    // The spool as written: the resume finishes the run from it.
    std::fs::write(&spool, good).unwrap();
    let out = run(cmd(&ws, &Sqlite, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_query_that_does_not_compile_is_exit_2_with_the_databases_message_and_no_run_dir() {
    let ws = Workspace::new();
    Sqlite.exec(&ws, &leads(3));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM nowhere ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    for command in ["plan", "run"] {
        let out = run(cmd(&ws, &Sqlite, &[command, "job.yaml"]));
        assert_eq!(out.code, 2, "{command}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("no such table: nowhere"),
            "{}",
            out.stderr
        );
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
    // A missing variable says which one.
    let mut c = ws.cmd(&["plan", "job.yaml"]);
    c.env_remove("DATABASE_URL");
    let out = run(c);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("DATABASE_URL is not set"),
        "{}",
        out.stderr
    );
}

/// `validate` stays offline and warns about a query without ORDER BY (exit 0);
/// `validate --remote` asks the database for the query's columns and checks every `row.X`.
#[test]
fn validate_warns_without_order_by_and_remote_checks_the_columns() {
    let ws = Workspace::new();
    Sqlite.exec(&ws, &leads(3));
    let mapping = "  full_name: \"{{ row.nmae }}\"\n  whats_app_phone: \"{{ row.phone }}\"\n";
    ws.write(
        "job.yaml",
        job("sim", "SELECT id, name, phone FROM leads", mapping, ""),
    );
    // Offline: no database at all is needed.
    let mut c = ws.cmd(&["validate", "job.yaml"]);
    c.env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/none");
    let out = run(c);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("warning: `source.query` has no ORDER BY"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("job.yaml: ok"), "{}", out.stdout);
    let out = run(cmd(&ws, &Sqlite, &["validate", "--remote", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("`row.nmae`: the query of `source.query` has no column `nmae`")
            && out.stderr.contains("did you mean `row.name`?"),
        "{}",
        out.stderr
    );
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let out = run(cmd(&ws, &Sqlite, &["validate", "--remote", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}
