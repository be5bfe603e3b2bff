//! A CSV written with another delimiter than the job's, tried as a new user would: a
//! `;`-separated export (or a TSV, or a `|` file) with the default `,`. `validate` names the
//! delimiter once instead of missing every `row.X`.

use std::io::Write;

use crate::common::{API, Workspace, run};

const MAPPING: &str = "mapping:\n  full_name: \"{{ row.first }} {{ row.last }}\"\n  whats_app_phone: \"{{ row.phone | phone('86') }}\"\n  email: \"{{ row.email }}\"\n";

fn job(source: &str, mapping: &str) -> String {
    format!("{API}source: {source}\n{mapping}")
}

#[test]
fn a_semicolon_file_gets_one_hint_naming_the_delimiter() {
    let ws = Workspace::new();
    ws.write(
        "leads.csv",
        "first;last;phone;email\nAnn;Lee;13800000000;a@x.io\n",
    );
    ws.write("job.yaml", job("{type: csv, path: leads.csv}", MAPPING));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("splits cleanly").count(),
        1,
        "said once: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "job.yaml:8:27: `source.delimiter`: the CSV header of leads.csv is one column, `first;last;phone;email`, read with the delimiter \",\"; it splits cleanly on \";\" into 4 columns: first, last, phone, email"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("= hint: set `source.delimiter: \";\"`"),
        "{}",
        out.stderr
    );
    // Not once per `row.X`: the columns exist, under the right delimiter.
    assert!(!out.stderr.contains("has no column"), "{}", out.stderr);
    assert!(
        out.stderr.contains("job.yaml: 1 problem found"),
        "{}",
        out.stderr
    );

    // A real typo is still named beside it, with a "did you mean" from the split columns.
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: leads.csv}",
            &MAPPING.replace("row.email", "row.emial"),
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.stderr.matches("splits cleanly").count(), 1);
    assert!(
        out.stderr.contains("has no column `emial`")
            && out.stderr.contains("did you mean `row.email`?"),
        "{}",
        out.stderr
    );

    // With the delimiter the hint names, the job is valid.
    ws.write(
        "job.yaml",
        job("{type: csv, path: leads.csv, delimiter: \";\"}", MAPPING),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn tabs_and_pipes_too_even_compressed() {
    let ws = Workspace::new();
    ws.write(
        "leads.tsv",
        "first\tlast\tphone\temail\nAnn\tLee\t1\ta@x.io\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"first|last|phone|email\nAnn|Lee|1|a@x.io\n")
        .unwrap();
    ws.write("leads.psv.gz", gz.finish().unwrap());
    for (file, written) in [("leads.tsv", "\"\\t\""), ("leads.psv.gz", "\"|\"")] {
        ws.write(
            "job.yaml",
            job(&format!("{{type: csv, path: {file}}}"), MAPPING),
        );
        let out = run(ws.cmd(&["validate", "job.yaml"]));
        assert_eq!(out.code, 2, "{file}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("= hint: set `source.delimiter: {written}`"))
                && out.stderr.contains("job.yaml: 1 problem found"),
            "{file}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_header_that_reads_fine_gets_no_delimiter_hint() {
    let ws = Workspace::new();
    // One column, and the mapping names it: nothing is missing, nothing to say.
    ws.write("one.csv", "name;email\nAnn;a@x.io\n");
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: one.csv}",
            "mapping:\n  full_name: \"{{ row['name;email'] }}\"\n  email: \"x@y.io\"\n",
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Two columns, one misspelt: a plain "did you mean", no delimiter.
    ws.write("two.csv", "first,last;name,phone,email\nA,B,1,a@x.io\n");
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: two.csv}",
            &MAPPING.replace("row.last", "row.lats"),
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(!out.stderr.contains("splits cleanly"), "{}", out.stderr);
}
