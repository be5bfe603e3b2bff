//! `cdpjob test`: a job's `tests:` cases run through its own mapping and filter (SPEC §10,
//! §12 R22), and `validate`'s checks of the block.

use serde_json::Value;

use crate::common::{API, Workspace, cdpjob, read, repo, run};

const CSV: &str =
    "first,last,phone,email,status,level\nAnn,Lee,13912345678,ann@example.com,active,3\n";

/// A CSV job with a filter and a var, then `tests` (the block's text, indented by two).
fn job(tests: &str) -> String {
    format!(
        "{API}vars:\n  cc: \"86\"\nsource:\n  type: csv\n  path: leads.csv\nfilter: \"{{{{ row.status != 'inactive' }}}}\"\nmapping:\n  full_name: \"{{{{ (row.first ~ ' ' ~ row.last) | trim }}}}\"\n  sms_phone: \"{{{{ row.phone | phone(vars.cc) }}}}\"\n  email: \"{{{{ row.email | trim | lower }}}}\"\n  weight: \"{{{{ row.level }}}}\"\n  tagStr: [\"{{{{ row.status }}}}\", imported]\ntests:\n{tests}"
    )
}

fn workspace(tests: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("leads.csv", CSV);
    ws.write("job.yaml", job(tests));
    ws
}

/// `cdpjob test --json` of the workspace's job: the document and each case's `passed`.
#[track_caller]
fn verdicts(ws: &Workspace) -> (i32, Vec<(String, bool)>) {
    let out = run(ws.cmd(&["test", "--json", "job.yaml"]));
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    let cases = doc["jobs"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["passed"] == true))
        .collect();
    (out.code, cases)
}

#[test]
fn the_quickstart_tests_pass() {
    let quickstart = repo().join("jobs/quickstart.yaml");
    let out = run({
        let mut c = cdpjob();
        c.current_dir(repo()).args(["test", "jobs/quickstart.yaml"]);
        c
    });
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.matches("\n  ok      ").count(),
        3,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("\ntest result: ok. 3 passed, 0 failed (1 job file)\n"),
        "{}",
        out.stdout
    );
    // One case of each kind: a customer, a rejection, a skip.
    let text = read(&quickstart);
    for kind in ["\n    expect:", "\n    reject: ", "\n    skip: true"] {
        assert!(text.contains(kind), "quickstart has a case with {kind:?}");
    }
}

#[test]
fn a_passing_case_compares_the_customer_as_sent() {
    // Numbers compare by their text; tagStr as its joined text or a list; null is "absent"
    // (the row has no e-mail).
    let ws = workspace(
        "  - name: a clean lead
    row: {first: Ann, last: Lee, phone: 139 1234 5678, email: \" Ann@Example.com\", status: active, level: 3}
    expect: {full_name: Ann Lee, sms_phone: 8613912345678, email: ann@example.com, weight: 3, tagStr: [active, imported]}
  - name: tags as text
    row: {first: Ann, last: Lee, phone: \"13912345678\", status: active, level: 3}
    expect: {tagStr: \"active,imported\", email: null}
",
    );
    let out = run(ws.cmd(&["test", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        "job.yaml: 2 tests\n  ok      a clean lead\n  ok      tags as text\n\ntest result: ok. 2 passed, 0 failed (1 job file)\n"
    );
}

#[test]
fn a_failing_case_shows_its_diff_at_its_position() {
    let ws = workspace(
        "  - name: passes
    row: {first: Ann, last: Lee, phone: \"13912345678\", status: active}
    expect: {full_name: Ann Lee}
  - name: wrong e-mail and phone
    row: {first: Ann, last: Lee, phone: \"13912345678\", email: ANN@example.com, status: active, level: 2}
    expect:
      full_name: Ann Lee
      email: ann@example.org
      sms_phone: \"4413912345678\"
      weight: 2
  - name: a rejection expected, a customer made
    row: {first: Ann, last: Lee, phone: \"13912345678\", status: active}
    reject: sms_phone
",
    );
    let out = run(ws.cmd(&["test", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr, "");
    insta::with_settings!({ description => "cdpjob test job.yaml", omit_expression => true }, {
        insta::assert_snapshot!("test_failing_case", out.stdout);
    });
}

#[test]
fn reject_and_skip_cases_pass_only_on_their_outcome() {
    let ws = workspace(
        "  - name: rejected for its phone
    row: {first: Ann, last: Lee, phone: n/a, status: active}
    reject: sms_phone
  - name: rejected for another field than the one named
    row: {first: Ann, last: Lee, phone: n/a, status: active}
    reject: email
  - name: no contact channel left
    row: {first: Ann, last: Lee, status: active}
    reject: contact
  - name: skipped by the filter
    row: {first: Ann, phone: \"13912345678\", status: inactive}
    skip: true
  - name: a skip expected, a customer made
    row: {first: Ann, phone: \"13912345678\", status: active}
    skip: true
  - name: a customer expected, the row skipped
    row: {first: Ann, phone: \"13912345678\", status: inactive}
    expect: {full_name: Ann}
  - name: a customer expected, the row rejected
    row: {first: Ann, phone: \"13912345678\", status: active, level: 9}
    expect: {full_name: Ann}
",
    );
    let (code, cases) = verdicts(&ws);
    assert_eq!(code, 1);
    let passed: Vec<bool> = cases.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        passed,
        [true, false, true, true, false, false, false],
        "{cases:?}"
    );
    let out = run(ws.cmd(&["test", "job.yaml"]));
    assert!(
        out.stdout
            .contains("failed: expected a customer; the rejection names `weight`\n")
            && out.stdout.contains("  + rejected: weight (range): "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("test result: FAILED. 3 passed, 4 failed (1 job file)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_case_s_vars_override_the_job_s() {
    let ws = workspace(
        "  - name: the job's country code
    row: {first: Ann, phone: \"13912345678\", status: active}
    expect: {sms_phone: \"8613912345678\"}
  - name: the case's country code
    row: {first: Ann, phone: \"7700900123\", status: active}
    vars: {cc: \"44\"}
    expect: {sms_phone: \"447700900123\"}
  - name: the case's vars are its own
    row: {first: Ann, phone: \"7700900123\", status: active}
    expect: {sms_phone: \"867700900123\"}
",
    );
    let (code, cases) = verdicts(&ws);
    assert_eq!(code, 0, "{cases:?}");
    assert!(cases.iter().all(|(_, p)| *p), "{cases:?}");
}

#[test]
fn test_rows_are_text_for_csv_sources_and_typed_for_json() {
    // SPEC §12 R22: a CSV gives text, so YAML's 5 is "5" there; JSON keeps the number.
    let case = "  - name: level
    row: {first: Ann, phone: \"13912345678\", level: 5}
    expect: {remark: text}
";
    let mapping = "mapping:\n  full_name: \"{{ row.first }}\"\n  sms_phone: \"{{ row.phone }}\"\n  remark: \"{{ 'text' if row.level is string else 'number' }}\"\n";
    let ws = Workspace::new();
    ws.write("leads.csv", "first,phone,level\n");
    ws.write("leads.jsonl", "");
    ws.write(
        "csv.yaml",
        format!("{API}source: {{type: csv, path: leads.csv}}\n{mapping}tests:\n{case}"),
    );
    ws.write(
        "jsonl.yaml",
        format!("{API}source: {{type: jsonl, path: leads.jsonl}}\n{mapping}tests:\n{case}"),
    );
    let out = run(ws.cmd(&["test", "csv.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run(ws.cmd(&["test", "jsonl.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("  - remark: \"text\"\n  + remark: \"number\"\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_broken_tests_block_is_caught_by_validate_at_its_position() {
    let ws = workspace(
        "  - name: a typo in a field
    row: {first: Ann, phone: \"13912345678\", status: active}
    expect: {emial: ann@example.com}
  - name: no row
    expect: {full_name: Ann}
  - name: two expectations
    row: {first: Ann}
    reject: email
    skip: true
  - name: a rejection of a field not mapped
    row: {first: Ann}
    reject: whats_app_phone
",
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    // The block's first case is on line 21 of the job.
    for (at, needle) in [
        (
            "job.yaml:23:14:",
            "`tests[0].expect.emial`: `emial` is not a mapped field",
        ),
        (
            "job.yaml:24:5:",
            "`tests[1]` is missing the required key `row`",
        ),
        (
            "job.yaml:26:5:",
            "`tests[2]`: a test case is a mapping with `name`, `row` and exactly one of `expect`, `reject` or `skip`",
        ),
        (
            "job.yaml:32:13:",
            "`tests[3].reject`: a rejection never names `whats_app_phone`",
        ),
    ] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with(at) && l.contains(needle)),
            "{at} {needle:?} in:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("  = hint: did you mean `email`?\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("job.yaml: 4 problems found"),
        "{}",
        out.stderr
    );
    // `test` loads the job as `validate` does: it runs nothing and exits 2.
    let out = run(ws.cmd(&["test", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("job.yaml:23:14: "), "{}", out.stderr);
}

#[test]
fn an_export_job_has_no_tests_block() {
    let ws = Workspace::new();
    let export = read(&repo().join("jobs/export-customers.yaml"));
    ws.write(
        "job.yaml",
        format!("{export}tests:\n  - {{name: x, row: {{}}, skip: true}}\n"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(": `tests`: only kind: batch_create jobs have this key"),
        "{}",
        out.stderr
    );
}

#[test]
fn several_job_files_at_once() {
    let ws = workspace(
        "  - name: passes
    row: {first: Ann, phone: \"13912345678\", status: active}
    expect: {full_name: Ann}
",
    );
    ws.write(
        "failing.yaml",
        job("  - name: fails
    row: {first: Ann, phone: \"13912345678\", status: active}
    expect: {full_name: Bob}
"),
    );
    ws.write(
        "untested.yaml",
        format!(
            "{API}source: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.first }}}}\"\n  email: \"{{{{ row.email }}}}\"\n"
        ),
    );
    let out = run(ws.cmd(&["test", "job.yaml", "untested.yaml"]));
    assert_eq!(out.code, 0, "a job without tests passes: {}", out.stdout);
    assert!(
        out.stdout.contains("untested.yaml: no tests\n")
            && out
                .stdout
                .ends_with("test result: ok. 1 passed, 0 failed (2 job files, 1 without tests)\n"),
        "{}",
        out.stdout
    );

    let out = run(ws.cmd(&["test", "job.yaml", "failing.yaml", "untested.yaml"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("job.yaml: 1 test\n  ok      passes\n")
            && out
                .stdout
                .contains("failing.yaml: 1 test\n  FAILED  fails\n")
            && out
                .stdout
                .contains("failing.yaml:21:5: test `fails` failed: ")
            && out.stdout.ends_with(
                "test result: FAILED. 1 passed, 1 failed (3 job files, 1 without tests)\n"
            ),
        "{}",
        out.stdout
    );

    // A file that does not load is reported as `validate` reports it, after the others
    // ran, and makes it exit 2.
    ws.write("broken.yaml", "version: 1\nname: broken\n");
    let out = run(ws.cmd(&["test", "broken.yaml", "failing.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("  FAILED  fails\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("test result: FAILED. 0 passed, 1 failed (2 job files, 1 did not load)\n"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("broken.yaml: "), "{}", out.stderr);

    let out = run(ws.cmd(&["test", "--json", "job.yaml", "failing.yaml"]));
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["run_dir"], Value::Null);
    assert_eq!(doc["resumable"], false);
    assert_eq!(
        (doc["passed"].as_u64(), doc["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let failing = &doc["jobs"][1]["cases"][0];
    assert_eq!(
        (failing["line"].as_u64(), failing["col"].as_u64()),
        (Some(21), Some(5))
    );
    assert_eq!(
        failing["diff"],
        serde_json::json!([{"field": "full_name", "expected": "Bob", "rendered": "Ann"}])
    );
}

#[test]
fn the_tests_block_does_not_change_the_send_hash() {
    // SPEC §12 R3: tests decide nothing that is sent, so changing them does not block a
    // resume; the manifest's hash is the one `resume` compares.
    let hash_of = |tests: &str| {
        let ws = workspace(tests);
        let out = run(ws.cmd(&["run", "--json", "job.yaml"]));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        let manifest = ws
            .path(doc["run_dir"].as_str().unwrap())
            .join("manifest.json");
        let manifest: Value = serde_json::from_str(&read(&manifest)).unwrap();
        manifest["job_sha256"].as_str().unwrap().to_string()
    };
    let one = hash_of("  - {name: a, row: {first: Ann}, reject: contact}\n");
    let other = hash_of("  - {name: b, row: {first: Bob, status: inactive}, skip: true}\n");
    assert_eq!(one, other);
}
