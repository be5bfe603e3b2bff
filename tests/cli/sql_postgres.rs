//! The SQL scenarios on a private PostgreSQL (started per test, stopped when it ends), the
//! errors a server gives (unreachable: exit 3 and no run directory; a wrong password or a
//! query that does not compile: exit 2 with the server's message), and the password's
//! canary: it appears in no output and no file of the run.

use serde_json::json;

use crate::common::{Workspace, run, run_dirs};
use crate::servers::{self, Postgres};
use crate::sql::{self, CHANGE_LEADS, Db, LEAD_MAPPING, cmd, job};

impl Db for Postgres {
    fn url(&self, _ws: &Workspace) -> String {
        Postgres::url(self, servers::PASSWORD)
    }

    fn exec(&self, _ws: &Workspace, sql: &str) {
        Postgres::exec(self, sql);
    }
}

fn leads(n: u64) -> String {
    format!(
        "CREATE TABLE leads (id int PRIMARY KEY, name text, phone text);
         INSERT INTO leads SELECT i, 'Lead ' || i, '86139' || lpad(i::text, 8, '0') FROM generate_series(1, {n}) i;"
    )
}

#[test]
fn postgres_column_types_and_nulls() {
    let Some(pg) = Postgres::start() else { return };
    let types = r#"CREATE TABLE types (id int PRIMARY KEY, phone text, t_small smallint, t_int integer, t_big bigint, t_num numeric(20,6), t_real real, t_float double precision, t_bool boolean, t_text text, t_varchar varchar(20), t_char char(3), t_bytes bytea, t_json json, t_jsonb jsonb, t_uuid uuid, t_date date, t_time time, t_ts timestamp, t_tstz timestamptz, t_arr int[]);
        INSERT INTO types VALUES (1, NULL, -7, 42, 9007199254740993, 12345678901234.123456, 0.1, 0.1, true, 'héllo, 世界', 'v', 'ab', '\x00ff10', '{"a": [1, 2]}', '{"b": 1, "a": 2}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-05', '07:08:09.5', '2024-03-05 07:08:09.123', '2024-03-05 07:08:09+08', '{1,2}');
        INSERT INTO types (id) VALUES (2);
        INSERT INTO types (id, phone) VALUES (3, '8613800000003');"#;
    sql::column_types_and_nulls(
        &pg,
        types,
        json!({
            "id": "1", "phone": null, "t_small": "-7", "t_int": "42", "t_big": "9007199254740993",
            "t_num": "12345678901234.123456", "t_real": "0.1", "t_float": "0.1", "t_bool": "true",
            "t_text": "héllo, 世界", "t_varchar": "v", "t_char": "ab ", "t_bytes": "00ff10",
            "t_json": "{\"a\": [1, 2]}", "t_jsonb": "{\"a\": 2, \"b\": 1}",
            "t_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "t_date": "2024-03-05",
            "t_time": "07:08:09", "t_ts": "2024-03-05 07:08:09", "t_tstz": "2024-03-04 23:08:09",
            "t_arr": "{1,2}"
        }),
    );
}

#[test]
fn postgres_ten_thousand_rows_stream() {
    let Some(pg) = Postgres::start() else { return };
    sql::ten_thousand_rows(&pg, leads);
}

#[test]
fn postgres_kill_and_resume_after_the_table_changed_sends_the_spooled_rows() {
    let Some(pg) = Postgres::start() else { return };
    sql::kill_and_resume_after_the_table_changed(&pg, leads, CHANGE_LEADS);
}

/// Nothing listens on the port: exit 3 (try again later), naming host and database, and
/// no run directory. The password of the URL appears nowhere. Needs no server.
#[test]
fn an_unreachable_postgres_is_exit_3_naming_host_and_database() {
    let ws = Workspace::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://cdp:{}@127.0.0.1:{port}/crm", servers::PASSWORD);
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    for command in ["plan", "run"] {
        let mut c = ws.cmd(&[command, "job.yaml"]);
        crate::common::with_sim_credentials(&mut c);
        c.env("DATABASE_URL", &url);
        let out = run(c);
        assert_eq!(out.code, 3, "{command}: {}{}", out.stdout, out.stderr);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains(&format!("postgres database crm on 127.0.0.1:{port}")),
            "{said}"
        );
        assert!(!said.contains(servers::PASSWORD), "{said}");
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
}

/// A wrong password and a query that does not compile are exit 2 with the server's own
/// message; the password (right or wrong) is in no output and no file the run leaves.
#[test]
fn postgres_refusals_are_exit_2_and_the_password_appears_nowhere() {
    let Some(pg) = Postgres::start() else { return };
    let ws = Workspace::new();
    pg.exec(&leads(30));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let wrong = "wrong-canary-3Jk8";
    let mut c = ws.cmd(&["run", "job.yaml"]);
    crate::common::with_sim_credentials(&mut c);
    c.env("DATABASE_URL", pg.url(wrong));
    let out = run(c);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("password authentication failed for user \"cdp\""),
        "{}",
        out.stderr
    );
    assert!(!format!("{}{}", out.stdout, out.stderr).contains(wrong));
    assert!(run_dirs(&ws.path("runs/t")).is_empty());

    ws.write(
        "bad.yaml",
        job(
            "sim",
            "SELECT id, nmae, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let out = run(cmd(&ws, &pg, &["plan", "bad.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("column \"nmae\" does not exist"),
        "{}",
        out.stderr
    );

    // A run with the right password, its plan and validate --remote: not a trace of it.
    let mut said = String::new();
    for args in [
        vec!["validate", "--remote", "job.yaml"],
        vec!["plan", "job.yaml"],
        vec!["plan", "--json", "job.yaml"],
        vec!["run", "job.yaml"],
    ] {
        let out = run(cmd(&ws, &pg, &args));
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        said.push_str(&out.stdout);
        said.push_str(&out.stderr);
    }
    assert!(!said.contains(servers::PASSWORD), "{said}");
    let dir = run_dirs(&ws.path("runs/t")).pop().unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = if path.extension().is_some_and(|e| e == "zst") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes
        };
        assert!(
            !String::from_utf8_lossy(&text).contains(servers::PASSWORD),
            "the password is in {}",
            path.display()
        );
        files += 1;
    }
    assert!(files >= 6, "the run left only {files} files");
}

/// A division by zero on row 2,500: PostgreSQL says so only when the cursor reaches it.
#[test]
fn a_postgres_query_failing_while_it_runs_is_exit_2_not_resumable() {
    let Some(pg) = Postgres::start() else { return };
    sql::a_query_failing_while_it_runs_is_exit_2(
        &pg,
        leads,
        "SELECT id, name, phone, 1 / (id - 2500) AS x FROM leads ORDER BY id",
        "division by zero",
    );
}

/// A table the role has no grant on: PostgreSQL checks permissions when the query starts,
/// so `validate --remote`, plan and run all refuse it (exit 2) before any run directory.
#[test]
fn a_postgres_table_without_a_grant_is_refused_before_the_run_begins() {
    let Some(pg) = Postgres::start() else { return };
    let ws = Workspace::new();
    pg.psql(
        servers::DATABASE,
        "CREATE TABLE secret (id int, name text, phone text); INSERT INTO secret VALUES (1, 'a', '8613800000001')",
    );
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM secret ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    for args in [
        vec!["validate", "--remote", "job.yaml"],
        vec!["plan", "job.yaml"],
        vec!["run", "job.yaml"],
    ] {
        let out = run(cmd(&ws, &pg, &args));
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("permission denied for table secret"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("resume with"), "{}", out.stderr);
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
}

/// SIGINT while the query's rows are being copied into the spool (a query slowed down on
/// purpose: 2 ms a row): the run stops there — the spool still incomplete, nothing sent,
/// exit 3 — instead of copying on to the end first; the resume runs the query again and
/// sends every row once.
#[test]
fn a_signal_while_spooling_stops_the_run_there_and_the_resume_queries_again() {
    let Some(pg) = Postgres::start() else { return };
    let ws = Workspace::new();
    pg.exec(&leads(3_000));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone, pg_sleep(0.002)::text AS pause FROM leads",
            LEAD_MAPPING,
            "",
        ),
    );
    let mut env = crate::common::sim_env(None).to_vec();
    env.push(("DATABASE_URL", pg.url(servers::PASSWORD)));
    let mut running = ws.spawn(&["run", "job.yaml", "--json"], env);
    let root = ws.path("runs/t");
    running.wait_for(
        "the spool begun",
        std::time::Duration::from_secs(60),
        || {
            run_dirs(&root)
                .first()
                .is_some_and(|d| d.join("source.jsonl.zst.partial").exists())
        },
    );
    running.signal("INT");
    let out = running.wait_within(std::time::Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}{}", out.stdout, out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["resumable"], true, "{summary}");
    assert_eq!(summary["requests"], 0, "{summary}");
    assert!(
        summary["stopped_reason"]
            .as_str()
            .unwrap()
            .contains("interrupted by a signal while copying the query's rows"),
        "{summary}"
    );
    let dir = run_dirs(&root).pop().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["kind"]["batch_create"]["spool"]["complete"], false,
        "the copy went on to the end: {manifest}"
    );
    assert!(!dir.join("source.jsonl.zst").exists());

    let out = run(cmd(&ws, &pg, &["resume", dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["created"], 3_000, "{summary}");
}

/// A connection string that can never work — no password for a server that asks for one,
/// `sslmode=require` (cdpjob speaks no TLS) — is exit 2, not "cannot reach" and exit 3:
/// trying again later gives the same answer.
#[test]
fn postgres_setup_errors_are_exit_2_not_unreachable() {
    let Some(pg) = Postgres::start() else { return };
    let ws = Workspace::new();
    pg.exec(&leads(3));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let no_password = format!("postgres://cdp@127.0.0.1:{}/crm", pg.port);
    let tls = format!("{}?sslmode=require", pg.url(servers::PASSWORD));
    for (url, said) in [(no_password, "password missing"), (tls, "without TLS")] {
        for command in ["plan", "run"] {
            let mut c = ws.cmd(&[command, "job.yaml"]);
            crate::common::with_sim_credentials(&mut c);
            c.env("DATABASE_URL", &url);
            let out = run(c);
            assert_eq!(out.code, 2, "{command} {url}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains(said) && !out.stderr.contains("cannot reach"),
                "{command} {url}: {}",
                out.stderr
            );
        }
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
}
