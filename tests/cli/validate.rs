//! `cdpjob validate` and `cdpjob schema`: every problem at its line, all at once.

use crate::common::{API, Workspace, cdpjob, read, repo, run};

const CSV: &str = "first,last,phone,email\nAnn,Lee,13912345678,a@b.c\n";

fn job_with(body: &str) -> String {
    format!(
        "{API}source:\n  type: csv\n  path: leads.csv\nmapping:\n  full_name: \"{{{{ row.first }}}}\"\n  email: \"{{{{ row.email }}}}\"\n{body}"
    )
}

/// Validate `yaml` and assert exit 2 with `job.yaml:LINE:` followed by `needle`.
#[track_caller]
fn assert_rejected(yaml: &str, line: usize, needle: &str) {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write("job.yaml", yaml);
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "exit code; stderr:\n{}", out.stderr);
    let hit = out
        .stderr
        .lines()
        .any(|l| l.starts_with(&format!("job.yaml:{line}:")) && l.contains(needle));
    assert!(
        hit,
        "expected job.yaml:{line}: … {needle:?} in:\n{}",
        out.stderr
    );
}

#[test]
fn every_shipped_job_validates() {
    let jobs: Vec<_> = std::fs::read_dir(repo().join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(jobs.len() >= 3, "quickstart, jsonl and export examples");
    for job in &jobs {
        let first = read(job).lines().next().unwrap_or_default().to_string();
        assert_eq!(
            first,
            "# yaml-language-server: $schema=../schemas/job.schema.json",
            "{} must start with the schema line",
            job.display()
        );
    }
    let out = run({
        let mut c = cdpjob();
        c.args(["validate"]).args(&jobs);
        c
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.matches(": ok (").count(),
        jobs.len(),
        "{}",
        out.stdout
    );
}

#[test]
fn a_good_job_validates() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write("job.yaml", job_with(""));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "job.yaml: ok (t, batch_create)\n");
}

#[test]
fn unknown_key() {
    assert_rejected(
        &job_with("bogus: 1\n"),
        14,
        "unknown key `bogus` at the top level",
    );
}

#[test]
fn unknown_key_suggests_the_near_one() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write(
        "job.yaml",
        API.replace("app_key: k", "app_key: k\n  time_out_secs: 5"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert!(
        out.stderr
            .contains("job.yaml:8:3: unknown key `time_out_secs` in `api`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `timeout_secs`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn wrong_type() {
    assert_rejected(
        &job_with("").replace("tenant_id: 123", "tenant_id: \"abc\""),
        6,
        "`api.tenant_id` must be an integer, not the text \"abc\"",
    );
}

#[test]
fn batch_size_101() {
    assert_rejected(
        &job_with("batch_size: 101\n"),
        14,
        "`batch_size` must be between 1 and 100, found 101",
    );
}

/// A query_export job whose `output` block is `output` (lines indented by two).
fn export_with(output: &str) -> String {
    format!(
        "version: 1\nname: e\nkind: query_export\napi:\n  base_url: sim\n  tenant_id: 1\n  app_key: k\nquery:\n  page_size: 50\noutput:\n  path: out\n{output}"
    )
}

#[test]
fn columns_are_checked_for_every_format() {
    for format in ["csv", "jsonl", "xlsx"] {
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_with(&format!(
                "  format: {format}\n  columns: [id, full_name, customize_1_14, tags]\n"
            )),
        );
        let out = run(ws.cmd(&["validate", "job.yaml"]));
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
        assert_rejected(
            &export_with(&format!("  format: {format}\n  columns: [id, full_nmae]\n")),
            13,
            "`output.columns[1]`: unknown column `full_nmae`; did you mean `full_name`?",
        );
    }
}

#[test]
fn the_csv_options_are_refused_for_the_other_formats() {
    for format in ["jsonl", "xlsx"] {
        assert_rejected(
            &export_with(&format!("  format: {format}\n  bom: true\n")),
            13,
            &format!("`output.bom` applies to csv output, not {format}"),
        );
        assert_rejected(
            &export_with(&format!("  format: {format}\n  formula_guard: false\n")),
            13,
            &format!("`output.formula_guard` applies to csv output, not {format}"),
        );
    }
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_with("  format: csv\n  bom: true\n  formula_guard: false\n"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_rejected(&export_with("  bom: \"yes\"\n"), 12, "`output.bom` must be");
    assert_rejected(
        &export_with("  format: xls\n"),
        12,
        "`output.format` must be one of csv, jsonl, xlsx",
    );
}

#[test]
fn page_size_0() {
    let yaml = "version: 1\nname: e\nkind: query_export\napi:\n  base_url: sim\n  tenant_id: 1\n  app_key: k\nquery:\n  page_size: 0\noutput:\n  path: out.csv\n";
    assert_rejected(
        yaml,
        9,
        "`query.page_size` must be between 1 and 50, found 0",
    );
}

#[test]
fn missing_tenant_id() {
    assert_rejected(
        &job_with("").replace("  tenant_id: 123\n", ""),
        4,
        "`api` is missing the required key `tenant_id`",
    );
}

#[test]
fn literal_access_secret_names_the_env_setting() {
    assert_rejected(
        &job_with("").replace("app_key: k", "app_key: k\n  access_secret: hunter2"),
        8,
        "access_secret_env",
    );
}

#[test]
fn literal_secret_at_the_top_level_too() {
    assert_rejected(
        &job_with("secret: hunter2\n"),
        14,
        "secrets never go in a job file",
    );
}

#[test]
fn template_syntax_error_points_into_the_template() {
    assert_rejected(
        &job_with("").replace("\"{{ row.email }}\"", "\"{{ row.email }\""),
        13,
        "`mapping.email`: this template does not compile: syntax error",
    );
}

#[test]
fn unknown_filter_points_at_the_filter_name() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write(
        "job.yaml",
        job_with("").replace("{{ row.email }}", "{{ row.email | lowercase }}"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("job.yaml:13:26: `mapping.email`: unknown filter `lowercase`"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_source_file() {
    let ws = Workspace::new();
    ws.write("job.yaml", job_with(""));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("job.yaml:10:9: `source.path`: cannot read"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_column_missing_from_the_csv_header() {
    assert_rejected(
        &job_with("").replace("row.first", "row.frist"),
        12,
        "the CSV header of leads.csv has no column `frist`",
    );
}

#[test]
fn env_var_names_must_be_identifiers() {
    assert_rejected(
        &job_with("").replace("app_key: k", "app_key: k\n  access_key_env: MY-KEY"),
        8,
        "must be an environment variable name",
    );
}

#[test]
fn plain_http_only_to_loopback() {
    assert_rejected(
        &job_with("").replace("base_url: sim", "base_url: http://api.nxcloud.com"),
        5,
        "plain http:// is allowed only for loopback hosts",
    );
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write(
        "job.yaml",
        job_with("").replace("base_url: sim", "base_url: http://127.0.0.1:8787"),
    );
    assert_eq!(run(ws.cmd(&["validate", "job.yaml"])).code, 0);
}

#[test]
fn kind_specific_keys_are_refused_in_the_other_kind() {
    assert_rejected(
        &job_with("output:\n  path: x.csv\n"),
        14,
        "only kind: query_export jobs have this key",
    );
}

#[test]
fn invalid_yaml_is_reported_with_a_position() {
    assert_rejected(
        &format!("{API}mapping: {{full_name: \"x\"\n"),
        9,
        "this is not valid YAML",
    );
}

#[test]
fn duplicate_keys_are_refused() {
    assert_rejected(
        &job_with("batch_size: 10\nbatch_size: 20\n"),
        15,
        "duplicate",
    );
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    let yaml = job_with("batch_size: 0\nmerge: upsert\n")
        .replace("tenant_id: 123", "tenant_id: -1")
        .replace("{{ row.email }}", "{{ row.email | nope }}");
    ws.write("job.yaml", yaml);
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    for needle in [
        "job.yaml:6:14: `api.tenant_id` must be at least 1",
        "job.yaml:13:",
        "job.yaml:14:13: `batch_size` must be between 1 and 100, found 0",
        "job.yaml:15:8: `merge` must be one of replace, update, keep",
        "job.yaml: 4 problems found",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} missing from:\n{}",
            out.stderr
        );
    }
}

#[test]
fn diagnostics_show_the_line_and_a_caret() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write("job.yaml", job_with("batch_size: 101\n"));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert!(
        out.stderr
            .contains("14 | batch_size: 101\n   |             ^^^\n"),
        "{}",
        out.stderr
    );
}

/// A Chinese template value puts the error after wide characters: the caret must sit under
/// `bogus_filter` on screen (31 characters, 35 columns in), not 4 columns to its left.
#[test]
fn the_caret_lines_up_under_chinese_text() {
    let ws = Workspace::new();
    ws.write("leads.csv", "名字,email\n张三,a@b.c\n");
    ws.write(
        "job.yaml",
        format!(
            "{API}source:\n  type: csv\n  path: leads.csv\nmapping:\n  full_name: \"客户{{{{ row['名字'] | bogus_filter }}}}\"\n  email: \"{{{{ row.email }}}}\"\n"
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    let expected = format!(
        "job.yaml:12:32: `mapping.full_name`: unknown filter `bogus_filter`\n   |\n12 |   full_name: \"客户{{{{ row['名字'] | bogus_filter }}}}\"\n   | {}{}\n",
        " ".repeat(35),
        "^".repeat(12)
    );
    assert!(
        out.stderr.starts_with(&expected),
        "expected:\n{expected}\ngot:\n{}",
        out.stderr
    );
}

#[test]
fn validate_reports_each_file() {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write("good.yaml", job_with(""));
    ws.write("bad.yaml", job_with("batch_size: 500\n"));
    let out = run(ws.cmd(&["validate", "good.yaml", "bad.yaml"]));
    assert_eq!(out.code, 2);
    assert!(out.stdout.contains("good.yaml: ok"), "{}", out.stdout);
    assert!(out.stderr.contains("bad.yaml:14:13:"), "{}", out.stderr);
}

#[test]
fn schema_prints_the_shipped_schema() {
    let out = run({
        let mut c = cdpjob();
        c.arg("schema");
        c
    });
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, read(&repo().join("schemas/job.schema.json")));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
}
