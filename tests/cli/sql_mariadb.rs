//! The SQL scenarios on a private MariaDB (the mysql:// driver; started per test, stopped
//! when it ends), and its refusals: a wrong password or a query that does not compile is
//! exit 2 with the server's message.

use serde_json::json;

use crate::common::{Workspace, run, run_dirs};
use crate::servers::{self, Mariadb};
use crate::sql::{self, CHANGE_LEADS, Db, LEAD_MAPPING, cmd, job};

impl Db for Mariadb {
    fn url(&self, _ws: &Workspace) -> String {
        Mariadb::url(self, servers::PASSWORD)
    }

    fn exec(&self, _ws: &Workspace, sql: &str) {
        self.sql(servers::DATABASE, sql);
    }
}

fn leads(n: u64) -> String {
    format!(
        "CREATE TABLE leads (id INT PRIMARY KEY, name VARCHAR(50), phone VARCHAR(20));
         INSERT INTO leads SELECT seq, CONCAT('Lead ', seq), CONCAT('86139', LPAD(seq, 8, '0')) FROM seq_1_to_{n};"
    )
}

#[test]
fn mariadb_column_types_and_nulls() {
    let Some(db) = Mariadb::start() else { return };
    let types = r#"CREATE TABLE types (id INT PRIMARY KEY, phone VARCHAR(20), t_tiny TINYINT, t_int INT, t_big BIGINT UNSIGNED, t_num DECIMAL(20,6), t_float FLOAT, t_double DOUBLE, t_bool BOOLEAN, t_text TEXT, t_varchar VARCHAR(20) CHARACTER SET utf8mb4, t_bytes VARBINARY(8), t_blob BLOB, t_json JSON, t_uuid UUID, t_date DATE, t_time TIME(3), t_dt DATETIME(3), t_ts TIMESTAMP NULL, t_year YEAR, t_enum ENUM('a','b'), t_bit BIT(8));
        INSERT INTO types VALUES (1, NULL, -7, 42, 18446744073709551615, 12345678901234.123456, 0.5, 0.1, TRUE, 'héllo, 世界', 'v', x'00ff10', x'0102', '{"a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-05', '07:08:09.5', '2024-03-05 07:08:09.123', '2024-03-05 07:08:09', 2024, 'b', b'00000101');
        INSERT INTO types (id) VALUES (2);
        INSERT INTO types (id, phone) VALUES (3, '8613800000003');"#;
    sql::column_types_and_nulls(
        &db,
        types,
        json!({
            "id": "1", "phone": null, "t_tiny": "-7", "t_int": "42",
            "t_big": "18446744073709551615", "t_num": "12345678901234.123456",
            "t_float": "0.5", "t_double": "0.1", "t_bool": "true", "t_text": "héllo, 世界",
            "t_varchar": "v", "t_bytes": "00ff10", "t_blob": "0102",
            "t_json": "{\"a\": [1, 2]}", "t_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "t_date": "2024-03-05", "t_time": "07:08:09", "t_dt": "2024-03-05 07:08:09",
            "t_ts": "2024-03-05 07:08:09", "t_year": "2024", "t_enum": "b", "t_bit": "05"
        }),
    );
}

#[test]
fn mariadb_ten_thousand_rows_stream() {
    let Some(db) = Mariadb::start() else { return };
    sql::ten_thousand_rows(&db, leads);
}

#[test]
fn mariadb_kill_and_resume_after_the_table_changed_sends_the_spooled_rows() {
    let Some(db) = Mariadb::start() else { return };
    sql::kill_and_resume_after_the_table_changed(&db, leads, CHANGE_LEADS);
}

#[test]
fn mariadb_refusals_are_exit_2_with_the_servers_message() {
    let Some(db) = Mariadb::start() else { return };
    let ws = Workspace::new();
    db.sql(servers::DATABASE, &leads(5));
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
    c.env("DATABASE_URL", db.url(wrong));
    let out = run(c);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("Access denied for user 'cdp'"),
        "{}",
        out.stderr
    );
    assert!(!format!("{}{}", out.stdout, out.stderr).contains(wrong));
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
    ws.write(
        "bad.yaml",
        job(
            "sim",
            "SELECT id, nmae FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let out = run(cmd(&ws, &db, &["plan", "bad.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("Unknown column 'nmae'"),
        "{}",
        out.stderr
    );
    let out = run(cmd(&ws, &db, &["validate", "--remote", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Nothing listens on the port: exit 3, naming host and database, no run directory, the
/// password nowhere. Needs no server.
#[test]
fn an_unreachable_mysql_is_exit_3_naming_host_and_database() {
    let ws = Workspace::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    for command in ["plan", "run", "validate --remote"] {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("job.yaml");
        let mut c = ws.cmd(&args);
        crate::common::with_sim_credentials(&mut c);
        c.env(
            "DATABASE_URL",
            format!("mysql://cdp:{}@127.0.0.1:{port}/crm", servers::PASSWORD),
        );
        let out = run(c);
        assert_eq!(out.code, 3, "{command}: {}{}", out.stdout, out.stderr);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains(&format!("mysql database crm on 127.0.0.1:{port}")),
            "{said}"
        );
        assert!(!said.contains(servers::PASSWORD), "{said}");
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
}

/// A subquery returning several rows: MariaDB says so only once the rows are being read.
#[test]
fn a_mariadb_query_failing_while_it_runs_is_exit_2_not_resumable() {
    let Some(db) = Mariadb::start() else { return };
    sql::a_query_failing_while_it_runs_is_exit_2(
        &db,
        leads,
        "SELECT id, name, phone, (SELECT id FROM leads WHERE id > 2) AS x FROM leads ORDER BY id",
        "Subquery returns more than 1 row",
    );
}

/// A connection string asking for TLS (cdpjob speaks none) is exit 2, not "cannot reach"
/// and exit 3: trying again later gives the same answer.
#[test]
fn a_mariadb_url_asking_for_tls_is_exit_2_not_unreachable() {
    let Some(db) = Mariadb::start() else { return };
    let ws = Workspace::new();
    db.exec(&ws, &leads(3));
    ws.write(
        "job.yaml",
        job(
            "sim",
            "SELECT id, name, phone FROM leads ORDER BY id",
            LEAD_MAPPING,
            "",
        ),
    );
    let url = format!("{}?require_ssl=true", db.url(servers::PASSWORD));
    for command in ["plan", "run"] {
        let mut c = ws.cmd(&[command, "job.yaml"]);
        crate::common::with_sim_credentials(&mut c);
        c.env("DATABASE_URL", &url);
        let out = run(c);
        assert_eq!(out.code, 2, "{command}: {}{}", out.stdout, out.stderr);
        assert!(
            !out.stderr.contains("cannot reach"),
            "{command}: {}",
            out.stderr
        );
    }
    assert!(run_dirs(&ws.path("runs/t")).is_empty());
}
