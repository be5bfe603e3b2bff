//! Sources as a user feeds them: CSV edge cases, JSON Lines, JSON arrays, standard input.

use serde_json::{Value, json};

use crate::common::{API, Workspace, run};

fn job(source: &str, mapping: &str) -> String {
    format!("{API}source: {source}\nmapping:\n{mapping}")
}

const NAME_EMAIL: &str = "  full_name: \"{{ row.name }}\"\n  email: \"{{ row.email }}\"\n";

fn plan(ws: &Workspace, stdin: Option<&str>) -> Value {
    let mut c = ws.cmd(&["plan", "--json", "--limit", "1000", "job.yaml"]);
    if let Some(s) = stdin {
        c.write_stdin(s);
    }
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn valid_rows(p: &Value) -> Vec<u64> {
    p["preview"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["row"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_broken_csv_record_mid_file_keeps_the_rows_on_both_sides() {
    let ws = Workspace::new();
    let mut csv = String::from("name,email\n");
    for i in 1..=10 {
        match i {
            4 => csv.push_str("\"Dan,d@x.io\n"),     // unterminated quote
            6 => csv.push_str("Eve,e@x.io,extra\n"), // one field too many
            _ => csv.push_str(&format!("P{i},p{i}@x.io\n")),
        }
    }
    ws.write("in.csv", csv.as_bytes());
    ws.write("job.yaml", job("{type: csv, path: in.csv}", NAME_EMAIL));
    let p = plan(&ws, None);
    assert_eq!(
        p["counts"],
        json!({"rows": 10, "valid": 8, "rejected": 2, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(valid_rows(&p), vec![1, 2, 3, 5, 7, 8, 9, 10]);
    assert_eq!(p["preview"][3]["customer"]["full_name"], "P5");
}

#[test]
fn invalid_utf8_and_bom_and_semicolons() {
    let ws = Workspace::new();
    let mut bytes = b"\xEF\xBB\xBFname;email\r\nZo\xEB;z@x.io\r\nAnn;a@x.io\r\n".to_vec();
    bytes.extend_from_slice(b"\"Semi;colon\";s@x.io\r\n");
    ws.write("in.csv", &bytes);
    ws.write(
        "job.yaml",
        job("{type: csv, path: in.csv, delimiter: \";\"}", NAME_EMAIL),
    );
    let p = plan(&ws, None);
    assert_eq!(
        p["counts"],
        json!({"rows": 3, "valid": 2, "rejected": 1, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(p["rejected_by_reason"][0]["example_rows"], json!([1]));
    assert!(
        p["rejected_by_reason"][0]["example"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8")
    );
    assert_eq!(p["preview"][1]["customer"]["full_name"], "Semi;colon");
}

#[test]
fn headerless_csv_with_named_columns() {
    let ws = Workspace::new();
    ws.write("in.csv", "Ann,a@x.io\nBob,b@x.io\n");
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: in.csv, header: false, columns: [name, email]}",
            NAME_EMAIL,
        ),
    );
    let p = plan(&ws, None);
    assert_eq!(p["counts"]["valid"], 2);
    assert_eq!(p["preview"][0]["customer"]["full_name"], "Ann");
}

#[test]
fn jsonl_with_a_bad_line() {
    let ws = Workspace::new();
    ws.write("in.jsonl", "{\"name\":\"Ann\",\"email\":\"a@x.io\"}\nnot json\n\n{\"name\":\"Bob\",\"email\":\"b@x.io\"}\n[1,2]\n");
    ws.write("job.yaml", job("{type: jsonl, path: in.jsonl}", NAME_EMAIL));
    let p = plan(&ws, None);
    assert_eq!(
        p["counts"],
        json!({"rows": 4, "valid": 2, "rejected": 2, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(valid_rows(&p), vec![1, 3]);
}

#[test]
fn jsonl_missing_keys_reject_the_row_unless_defaulted() {
    let ws = Workspace::new();
    ws.write("in.jsonl", "{\"name\":\"Ann\",\"email\":\"a@x.io\",\"tier\":2}\n{\"name\":\"Bob\",\"email\":\"b@x.io\"}\n");
    ws.write(
        "job.yaml",
        job("{type: jsonl, path: in.jsonl}", &format!("{NAME_EMAIL}  weight: \"{{{{ row.tier }}}}\"\n  remark: \"{{{{ row.note | default('') }}}}\"\n")),
    );
    let p = plan(&ws, None);
    assert_eq!(
        p["counts"],
        json!({"rows": 2, "valid": 1, "rejected": 1, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(p["rejected_by_reason"][0]["field"], "weight");
    assert_eq!(p["rejected_by_reason"][0]["rule"], "template");
}

#[test]
fn json_array_of_objects() {
    let ws = Workspace::new();
    ws.write("in.json", "[\n {\"name\":\"Ann\",\"email\":\"a@x.io\"},\n 42,\n {\"name\":\"Bob\",\"email\":\"b@x.io\"}\n]\n");
    ws.write("job.yaml", job("{type: json, path: in.json}", NAME_EMAIL));
    let p = plan(&ws, None);
    assert_eq!(
        p["counts"],
        json!({"rows": 3, "valid": 2, "rejected": 1, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(valid_rows(&p), vec![1, 3]);
}

#[test]
fn stdin_source() {
    let ws = Workspace::new();
    ws.write("job.yaml", job("{type: csv, path: \"-\"}", NAME_EMAIL));
    let p = plan(&ws, Some("name,email\nAnn,a@x.io\nBob,b@x.io\n"));
    assert_eq!(p["counts"]["valid"], 2);
}

#[test]
fn list_and_map_values() {
    let ws = Workspace::new();
    ws.write(
        "in.csv",
        "name,email,tags,lvl,opts\nAnn,a@x.io,a|b||c,,1;2\n",
    );
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: in.csv}",
            &format!(
                "{NAME_EMAIL}  tagStr: [\"{{{{ row.tags | split('|') | join(',') }}}}\", \"\", \"imported\"]\n  customize_field:\n    customize_1_14: \"{{{{ row.lvl }}}}\"\n    customize_4_52: [\"{{{{ (row.opts | split(';'))[0] }}}}\", \"{{{{ (row.opts | split(';'))[1] }}}}\"]\n"
            ),
        ),
    );
    let p = plan(&ws, None);
    let c = &p["preview"][0]["customer"];
    assert_eq!(c["tagStr"], "a,b,,c,imported");
    assert_eq!(
        c["customize_field"], "{\"customize_4_52\":[\"1\",\"2\"]}",
        "empty customize_1_14 is left out"
    );
}
