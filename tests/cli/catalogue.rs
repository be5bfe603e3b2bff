//! `cdpjob fields` and `cdpjob validate --remote` against a real `cdpjob sim` process.

use serde_json::Value;

use crate::common::{SimProcess, Workspace, run, with_sim_credentials};

fn job(url: &str, custom: &str) -> String {
    format!(
        "version: 1\nname: c\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\nsource: {{type: csv, path: in.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  email: \"{{{{ row.email }}}}\"\n  customize_field:\n{custom}"
    )
}

fn workspace(url: &str, custom: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("in.csv", "name,email,seg\nAnn,ann@example.com,gold\n");
    ws.write("job.yaml", job(url, custom));
    ws
}

#[test]
fn fields_lists_the_tenants_fields_with_types_and_options() {
    let sim = SimProcess::start(&[]);
    let ws = workspace(&sim.url, "    customize_1_14: \"{{ row.seg }}\"\n");
    let mut c = ws.cmd(&["fields", "job.yaml"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("19 field(s) of tenant 123"),
        "{}",
        out.stdout
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("customize_3_7"))
        .unwrap();
    assert!(
        line.contains("single choice")
            && line.contains("Channel")
            && line.contains("options 1=web, 2=store, 3=partner"),
        "{line}"
    );

    let mut c = ws.cmd(&["fields", "job.yaml", "--json"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&doc["format_version"], &doc["run_dir"], &doc["resumable"]),
        (&Value::from(1), &Value::Null, &Value::from(false))
    );
    let fields = doc["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 19);
    let interests = fields
        .iter()
        .find(|f| f["name"] == "customize_4_52")
        .unwrap();
    assert_eq!(interests["type_name"], "multiple choice");
    assert_eq!(
        interests["options"][2],
        serde_json::json!({"id": "3", "name": "travel"})
    );
    assert_eq!(
        sim.get("/__sim/stats")["requests"],
        2,
        "one request per command"
    );
}

#[test]
fn validate_remote_reports_custom_field_problems_where_they_are() {
    let sim = SimProcess::start(&[]);
    let ws = workspace(
        &sim.url,
        "    customize_1_14: \"{{ row.seg }}\"\n    customize_1_41: x\n    customize_3_7: store\n    customize_4_52: [\"1\", \"9\", \"{{ row.seg }}\"]\n    customize_5_3: 2024-13-01\n",
    );
    // Offline validation cannot know the tenant's fields: the job is fine as far as it goes.
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);

    let mut c = ws.cmd(&["validate", "--remote", "job.yaml"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let e = &out.stderr;
    assert!(
        e.contains("job.yaml:14:5: `customize_1_41` is not a custom field of tenant 123; did you mean `customize_1_14`?"),
        "{e}"
    );
    assert!(
        e.contains("job.yaml:15:20: `mapping.customize_field.customize_3_7`: \"store\" is an option's name; send its id \"2\""),
        "{e}"
    );
    assert!(
        e.contains("job.yaml:16:27: ") && e.contains("\"9\" is not an option of this field"),
        "{e}"
    );
    assert!(
        e.contains("job.yaml:17:20: ") && e.contains("is not a date yyyy-MM-dd"),
        "{e}"
    );
    assert!(e.contains("4 problems found"), "{e}");

    // Fixed, it passes, and says what it checked.
    ws.write(
        "job.yaml",
        job(
            &sim.url,
            "    customize_1_14: \"{{ row.seg }}\"\n    customize_3_7: \"2\"\n",
        ),
    );
    let mut c = ws.cmd(&["validate", "--remote", "job.yaml"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("custom fields checked"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_remote_checks_the_custom_columns_of_an_export() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "export.yaml",
        format!(
            "version: 1\nname: x\nkind: query_export\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\nquery: {{page_size: 50}}\noutput:\n  path: out.csv\n  columns: [id, customize_1_15, customize_9_9]\n",
            sim.url
        ),
    );
    let mut c = ws.cmd(&["validate", "--remote", "export.yaml"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("export.yaml:11:33: `customize_9_9` is not a custom field of tenant 123\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 problem found"), "{}", out.stderr);
}

#[test]
fn fields_with_a_wrong_secret_says_what_to_check() {
    let sim = SimProcess::start(&[]);
    let ws = workspace(&sim.url, "    customize_1_14: x\n");
    let mut c = ws.cmd(&["fields", "job.yaml"]);
    c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "not-the-secret");
    let out = run(c);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("1003") && out.stderr.contains("NXCLOUD_ACCESS_SECRET"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-secret"));
}

#[test]
fn validate_remote_reports_every_file_even_when_one_api_is_unreachable() {
    let sim = SimProcess::start(&[]);
    let ws = workspace(&sim.url, "    customize_1_41: x\n");
    ws.write(
        "down.yaml",
        job("http://127.0.0.1:9", "    customize_1_14: x\n").replace(
            "app_key: \"46oKF=os\"",
            "app_key: \"46oKF=os\"\n  max_retries: 0",
        ),
    );
    let mut c = ws.cmd(&["validate", "--remote", "down.yaml", "job.yaml"]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("down.yaml: cannot read the field catalogue"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`customize_1_41` is not a custom field"),
        "{}",
        out.stderr
    );
}
