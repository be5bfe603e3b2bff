//! `cdpjob plan`: the dry run's preview and exact counts.

use serde_json::{Value, json};

use crate::common::{API, Workspace, cdpjob, repo, run};

fn plan_json(cmd: assert_cmd::Command) -> Value {
    let out = run(cmd);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{}", out.stdout))
}

#[test]
fn quickstart_plan_has_the_documented_partition() {
    let mut c = cdpjob();
    c.args(["plan", "--json", "--limit", "100"])
        .arg(repo().join("jobs/quickstart.yaml"));
    let p = plan_json(c);
    assert_eq!(
        p["counts"],
        json!({"rows": 50, "valid": 39, "rejected": 8, "skipped": 3, "unchanged": 0})
    );
    assert_eq!(p["batches"], 2);
    assert_eq!(p["requests"], 2);
    let reasons: Vec<(String, String, Vec<u64>)> = p["rejected_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["field"].as_str().unwrap().to_string(),
                g["rule"].as_str().unwrap().to_string(),
                serde_json::from_value(g["example_rows"].clone()).unwrap(),
            )
        })
        .collect();
    let expect = |f: &str, r: &str, rows: &[u64]| (f.to_string(), r.to_string(), rows.to_vec());
    assert_eq!(
        reasons,
        vec![
            expect("source", "unreadable", &[36, 48]),
            expect("whats_app_phone", "template", &[7]),
            expect("full_name", "required", &[12]),
            expect("contact", "contact_channel", &[15]),
            expect("email", "max_length", &[19]),
            expect("birthday", "template", &[23]),
            expect("weight", "range", &[28]),
        ]
    );
    // Every valid row is previewed with --limit 100; none of the dirty or skipped ones.
    let rows: Vec<u64> = p["preview"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows.len(), 39);
    for bad in [7, 12, 15, 19, 23, 28, 31, 36, 40, 45, 48] {
        assert!(!rows.contains(&bad), "row {bad} must not be valid");
    }
    assert!(
        rows.contains(&49) && rows.contains(&50),
        "rows after the broken quote are read"
    );
}

#[test]
fn the_preview_is_exactly_what_the_api_would_receive() {
    let mut c = cdpjob();
    c.args(["plan", "--json", "--limit", "1"])
        .arg(repo().join("jobs/quickstart.yaml"));
    let p = plan_json(c);
    assert_eq!(
        p["preview"][0],
        json!({"row": 1, "customer": {
            "full_name": "Jun Silva", "first_name": "Jun", "last_name": "Silva",
            "whats_app_phone": "8613687366946", "country": "CN",
            "email": "jun.silva1@example.com", "birthday": "1994-02-02",
            "tagStr": "wholesale,imported", "gender": 1,
            "customize_field": "{\"customize_1_14\":\"WHOLESALE\"}", "weight": 5
        }})
    );
}

#[test]
fn human_plan_shows_customers_counts_and_requests() {
    let mut c = cdpjob();
    c.args(["plan", "--limit", "2"])
        .arg(repo().join("jobs/quickstart.yaml"));
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("first 2 customer(s) as the API would receive them:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(r#"row     1  {"full_name":"Jun Silva""#),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("rows             50\nvalid            39\nunchanged         0  (sync: all, every valid row is sent)\nrejected          8\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("email / max_length  (row 19)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("skipped           3  (filter)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("2 batch(es) of up to 20 → 2 batch_create request(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn plan_works_from_any_directory_and_needs_no_credentials() {
    let ws = Workspace::new();
    let out = run({
        let mut c = ws.cmd(&["plan", "--json"]);
        c.arg(repo().join("jobs/quickstart.yaml"))
            .env_remove("NXCLOUD_ACCESS_KEY")
            .env_remove("NXCLOUD_ACCESS_SECRET");
        c
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", out.stderr);
}

#[test]
fn var_overrides_change_the_rendering() {
    let mut c = cdpjob();
    c.args(["plan", "--json", "--limit", "1", "--var", "country_code=44"])
        .arg(repo().join("jobs/quickstart.yaml"));
    let p = plan_json(c);
    assert_eq!(
        p["preview"][0]["customer"]["whats_app_phone"],
        "4413687366946"
    );
}

#[test]
fn plan_of_an_invalid_job_exits_2_with_an_error_document_on_stdout() {
    let ws = Workspace::new();
    ws.write("job.yaml", format!("{API}batch_size: 0\n"));
    let out = run(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(out.code, 2);
    // Still one JSON document on stdout (SPEC §12 R1, R2): what went wrong, no run.
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["run_dir"], serde_json::Value::Null);
    assert_eq!(doc["resumable"], false);
    assert!(
        doc["error"].as_str().unwrap().contains("batch_size"),
        "{doc}"
    );
    assert!(out.stderr.contains("job.yaml:"), "{}", out.stderr);
}

#[test]
fn filter_and_render_errors_are_counted_per_row() {
    let ws = Workspace::new();
    ws.write(
        "people.csv",
        "name,phone,born,kind,score\nAnn,+1 415 555 0100,1990-01-31,a,3\nBob,,1990-02-30,a,2\nCid,139,1990-03-01,b,1\nDee,0044 20 7946 0000,,a,x\n",
    );
    ws.write(
        "job.yaml",
        format!(
            "{API}source: {{type: csv, path: people.csv}}\nfilter: \"row.kind == 'a'\"\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  sms_phone: \"{{{{ row.phone | phone('86') }}}}\"\n  birthday: \"{{{{ row.born | date('%Y-%m-%d') }}}}\"\n  weight: \"{{{{ row.score }}}}\"\n"
        ),
    );
    let p = plan_json(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(
        p["counts"],
        json!({"rows": 4, "valid": 1, "rejected": 2, "skipped": 1, "unchanged": 0})
    );
    assert_eq!(
        p["preview"][0]["customer"],
        json!({"full_name": "Ann", "sms_phone": "14155550100", "birthday": "1990-01-31", "weight": 3})
    );
    let groups = p["rejected_by_reason"].as_array().unwrap();
    let find = |field: &str| {
        groups
            .iter()
            .find(|g| g["field"] == field)
            .unwrap_or_else(|| panic!("{field} in {groups:?}"))
    };
    assert_eq!(find("birthday")["example_rows"], json!([2]));
    assert_eq!(find("weight")["example_rows"], json!([4]));
    assert_eq!(find("weight")["rule"], "integer");
}

#[test]
fn export_plan_shows_the_first_request_and_the_state_it_read() {
    let ws = Workspace::new();
    ws.write(
        "runs/exp/state.json",
        r#"{"last_end_time": "2025-03-01 00:00:00"}"#,
    );
    ws.write(
        "job.yaml",
        "version: 1\nname: exp\nkind: query_export\napi: {base_url: sim, tenant_id: 7, app_key: k}\nvars: {seg: \"42\"}\nquery:\n  start_time: \"{{ state.last_end_time | default('2024-01-01 00:00:00') }}\"\n  end_time: \"2025-04-01 00:00:00\"\n  tags: [{id: \"{{ vars.seg }}\", tag_name: vip}]\n  tags_logic_type: and\n  page_size: 20\noutput: {path: \"out-{{ run.id }}.jsonl\", format: jsonl}\n",
    );
    let p = plan_json(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(
        p["first_request"],
        json!({"tenant_id": 7, "app_key": "k", "start_time": "2025-03-01 00:00:00", "end_time": "2025-04-01 00:00:00",
               "tags": [{"id": 42, "tag_name": "vip"}], "tags_logic_type": "and", "limit": 20})
    );
    assert_eq!(p["state"]["last_end_time"], "2025-03-01 00:00:00");
    // Without state, the default applies.
    std::fs::remove_file(ws.path("runs/exp/state.json")).unwrap();
    let p = plan_json(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(p["first_request"]["start_time"], "2024-01-01 00:00:00");
}

#[test]
fn export_plan_refuses_a_time_in_the_wrong_format() {
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        "version: 1\nname: exp\nkind: query_export\napi: {base_url: sim, tenant_id: 7, app_key: k}\nquery:\n  start_time: \"2024-01-01\"\noutput: {path: out.csv}\n",
    );
    let out = run(ws.cmd(&["plan", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("yyyy-MM-dd HH:mm:ss"), "{}", out.stderr);
}

/// Chinese column names are plain `row.名字` attributes (minijinja's `unicode` feature), in
/// `validate`'s column check as in the rendering.
#[test]
fn chinese_column_names_work_as_row_attributes() {
    let ws = Workspace::new();
    ws.write("l.csv", "名字,电话\n张三,13800000001\n");
    let job = format!(
        "{API}source: {{type: csv, path: l.csv}}\nmapping:\n  full_name: \"{{{{ row.名字 }}}}\"\n  whats_app_phone: \"{{{{ row.电话 | phone('86') }}}}\"\n"
    );
    ws.write("job.yaml", &job);
    let p = plan_json(ws.cmd(&["plan", "--json", "job.yaml"]));
    assert_eq!(
        p["preview"][0]["customer"],
        json!({"full_name": "张三", "whats_app_phone": "8613800000001"})
    );
    ws.write("job.yaml", job.replace("row.名字", "row.名"));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("has no column `名`") && out.stderr.contains("名字, 电话"),
        "{}",
        out.stderr
    );
}
