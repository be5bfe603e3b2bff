//! Export formats, against the embedded simulator (`base_url: sim`) after an import of
//! customers with Chinese names, some of which a spreadsheet would run as formulas: the same
//! customers as CSV and as xlsx compared cell by cell, JSON Lines with chosen keys, the
//! CSV byte-order mark (written once, whatever the resumes) and the formula guard, and what
//! `plan` says of each format.

use std::path::{Path, PathBuf};

use calamine::{Data, Reader, Xlsx, open_workbook};
use serde_json::Value;

#[cfg(feature = "failpoints")]
use crate::common::crash_at;
use crate::common::{Workspace, jsonl, read, run};

/// Customers imported, 6 pages of 50 and a short one.
const CUSTOMERS: usize = 321;

/// The columns every export of these tests writes (a CSV, a workbook, a JSON Lines file).
const COLUMNS: &str = "[id, full_name, first_name, whatsApp_phone, email, tags, customize_1_14, gender, remark, created_at, updated_at]";

/// The name of customer `i` (0-based): Chinese, and every 7th one starting with something a
/// spreadsheet would run, or with a tab or a carriage return.
fn name(i: usize) -> String {
    const SURNAMES: [&str; 6] = ["王", "李", "张", "刘", "陈", "杨"];
    const GIVEN: [&str; 5] = ["芳", "伟", "娜", "秀英", "敏"];
    let plain = format!(
        "{}{}{i}",
        SURNAMES[i % SURNAMES.len()],
        GIVEN[i % GIVEN.len()]
    );
    match i % 7 {
        0 => format!("=HYPERLINK(\"http://example.invalid/?{i}\",\"{plain}\")"),
        1 => format!("+1 {plain}"),
        2 => format!("-x {plain}"),
        3 => format!("@SUM(A1) {plain}"),
        4 => format!("\t{plain}"),
        5 => format!("\r{plain}"),
        _ => plain,
    }
}

/// What the formula guard is for: a text a spreadsheet would run (or strip and run).
fn runs_in_a_spreadsheet(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A workspace whose simulator holds [`CUSTOMERS`] customers, imported with `cdpjob run`.
/// Their phones are written `+86 139…` in the source: the `phone` filter sends digits.
fn imported() -> Workspace {
    let ws = Workspace::new();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["name", "first", "phone", "email", "remark", "tags", "level"])
        .unwrap();
    for i in 0..CUSTOMERS {
        w.write_record([
            name(i),
            format!("名{i}"),
            format!("+86 139 {i:08}"),
            if i % 3 == 0 {
                String::new()
            } else {
                format!("c{i}@example.com")
            },
            if i % 5 == 0 {
                format!("第一行 {i}\n第二行")
            } else {
                String::new()
            },
            if i % 2 == 0 { "会员,new" } else { "" }.to_string(),
            format!("级别-{}", i % 4),
        ])
        .unwrap();
    }
    ws.write("customers.csv", w.into_inner().unwrap());
    ws.write(
        "import.yaml",
        "version: 1\nname: seed\nkind: batch_create\napi: {base_url: sim, tenant_id: 123, app_key: \"46oKF=os\"}\nsource: {type: csv, path: customers.csv}\nmapping:\n  full_name: \"{{ row.name }}\"\n  first_name: \"{{ row.first }}\"\n  whats_app_phone: \"{{ row.phone | phone('86') }}\"\n  email: \"{{ row.email }}\"\n  remark: \"{{ row.remark }}\"\n  tagStr: \"{{ row.tags }}\"\n  customize_field:\n    customize_1_14: \"{{ row.level }}\"\n",
    );
    let out = run(ws.cmd(&["run", "import.yaml", "--json"]));
    assert_eq!(out.code, 0, "the import: {}{}", out.stdout, out.stderr);
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["counts"]["created"], CUSTOMERS, "{s}");
    ws
}

/// Write the export job `NAME.yaml` (every customer of the simulator) with these `output`
/// lines.
fn export_job(ws: &Workspace, name: &str, ext: &str, output: &str) -> String {
    let file = format!("{name}.yaml");
    ws.write(
        &file,
        format!(
            "version: 1\nname: {name}\nkind: query_export\napi: {{base_url: sim, tenant_id: 123, app_key: \"46oKF=os\"}}\nquery:\n  page_size: 50\noutput:\n  path: \"out/{name}-{{{{ run.id }}}}.{ext}\"\n{output}"
        ),
    );
    file
}

/// `cdpjob run JOB --json`, which must exit 0: the file it wrote.
#[track_caller]
fn export(ws: &Workspace, job: &str) -> PathBuf {
    let out = run(ws.cmd(&["run", job, "--json"]));
    assert_eq!(out.code, 0, "{job}: {}{}", out.stdout, out.stderr);
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["rows"], CUSTOMERS, "{s}");
    PathBuf::from(s["output"].as_str().unwrap())
}

/// A CSV export's records, the header first; the byte-order mark, if any, is checked to
/// come once, first, and removed.
#[track_caller]
fn csv_rows(path: &Path, bom: bool) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let mark = "\u{feff}".as_bytes();
    let marks = bytes.windows(3).filter(|w| *w == mark).count();
    assert_eq!(
        marks,
        usize::from(bom),
        "byte-order marks in {}",
        path.display()
    );
    assert_eq!(bytes.starts_with(mark), bom);
    let body = if bom { &bytes[3..] } else { &bytes[..] };
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Every sheet of a workbook: its name and its rows, each cell's text ("" for an empty
/// cell); a cell that is not text fails the test.
#[track_caller]
pub(crate) fn sheets(path: &Path) -> Vec<(String, Vec<Vec<String>>)> {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    book.worksheets()
        .into_iter()
        .map(|(name, range)| {
            assert_eq!(range.start(), Some((0, 0)), "{name} starts at A1");
            let rows = range
                .rows()
                .map(|r| {
                    r.iter()
                        .map(|c| match c {
                            Data::String(s) => s.clone(),
                            Data::Empty => String::new(),
                            other => panic!("{name}: a cell that is not text: {other:?}"),
                        })
                        .collect()
                })
                .collect();
            (name, rows)
        })
        .collect()
}

/// The only files left in `out/`: the finished exports (no partial, no workbook in making).
#[track_caller]
fn assert_only_finished_files(ws: &Workspace, finished: usize) {
    let names: Vec<String> = std::fs::read_dir(ws.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), finished, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn the_same_customers_as_csv_and_as_xlsx_agree_cell_by_cell() {
    let ws = imported();
    let columns = format!("  columns: {COLUMNS}\n");
    let guarded = export_job(&ws, "guarded", "csv", &format!("{columns}  bom: true\n"));
    let raw = export_job(
        &ws,
        "raw",
        "csv",
        &format!("{columns}  formula_guard: false\n"),
    );
    let book = export_job(&ws, "book", "xlsx", &format!("  format: xlsx\n{columns}"));
    let lines = export_job(&ws, "lines", "jsonl", "  format: jsonl\n");
    let guarded = csv_rows(&export(&ws, &guarded), true);
    let raw = csv_rows(&export(&ws, &raw), false);
    let workbook = export(&ws, &book);
    let lines = jsonl(&export(&ws, &lines));
    assert_only_finished_files(&ws, 4);

    let sheets = sheets(&workbook);
    assert_eq!(sheets.len(), 1);
    let (sheet, cells) = &sheets[0];
    assert_eq!(sheet, "book", "the sheet is named after the job");
    let header: Vec<String> = COLUMNS
        .trim_matches(['[', ']'])
        .split(", ")
        .map(str::to_string)
        .collect();
    assert_eq!(cells[0], header);
    assert_eq!(cells.len(), CUSTOMERS + 1);
    // Cell by cell: the workbook holds what the unguarded CSV holds, and the guarded CSV
    // the same with a `'` before each text a spreadsheet would run.
    assert_eq!(raw.len(), cells.len());
    assert_eq!(guarded.len(), cells.len());
    let mut guards = 0;
    for (r, row) in cells.iter().enumerate() {
        assert_eq!(raw[r].len(), row.len(), "row {r}");
        for (c, cell) in row.iter().enumerate() {
            assert_eq!(&raw[r][c], cell, "row {r} column {}", header[c]);
            if r > 0 && runs_in_a_spreadsheet(cell) {
                guards += 1;
                assert_eq!(
                    guarded[r][c],
                    format!("'{cell}"),
                    "row {r} column {}",
                    header[c]
                );
            } else {
                assert_eq!(&guarded[r][c], cell, "row {r} column {}", header[c]);
            }
        }
    }
    // Six of every seven names are guarded, and nothing else: the phones are digits (the
    // `+86` of the source is not what the API holds), times and ids never start so.
    assert_eq!(guards, (0..CUSTOMERS).filter(|i| i % 7 != 6).count());

    // The API's customers, as the JSON Lines export holds them, in the same order.
    assert_eq!(lines.len(), CUSTOMERS);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut names: Vec<String> = (0..CUSTOMERS).map(name).collect();
    let mut seen: Vec<String> = Vec::new();
    for (k, c) in lines.iter().enumerate() {
        let row = &cells[k + 1];
        // Ids exact: text cells with every digit of the API's 64-bit integer.
        let id = c["id"].as_u64().expect("an integer id");
        assert!(id > 1 << 53, "{id}");
        assert_eq!(row[col("id")], id.to_string());
        assert_eq!(row[col("created_at")], c["created_at"].as_str().unwrap());
        assert_eq!(row[col("updated_at")], c["updated_at"].as_str().unwrap());
        let phone = c["whatsApp_phone"].as_str().unwrap();
        assert!(phone.bytes().all(|b| b.is_ascii_digit()), "{phone}");
        assert_eq!(row[col("whatsApp_phone")], phone);
        assert_eq!(guarded[k + 1][col("whatsApp_phone")], phone);
        seen.push(row[col("full_name")].clone());
    }
    names.sort();
    seen.sort();
    assert_eq!(
        seen, names,
        "every name, exactly, tabs and carriage returns too"
    );
    let remark = cells
        .iter()
        .find(|r| r[col("remark")].starts_with("第一行"))
        .expect("a remark");
    assert!(remark[col("remark")].ends_with("\n第二行"), "{remark:?}");
    assert!(
        cells[1..]
            .iter()
            .all(|r| r[col("customize_1_14")].starts_with("级别-"))
    );
    assert!(cells[1..].iter().any(|r| r[col("tags")] == "会员,new"));
}

#[test]
fn jsonl_columns_keep_exactly_those_keys_in_that_order() {
    let ws = imported();
    let job = export_job(
        &ws,
        "picked",
        "jsonl",
        "  format: jsonl\n  columns: [customize_1_14, id, full_name, country, tags]\n",
    );
    let out = run(ws.cmd(&["validate", &job]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = export(&ws, &job);
    let text = read(&path);
    let lines = jsonl(&path);
    assert_eq!(lines.len(), CUSTOMERS);
    for (line, c) in text.lines().zip(&lines) {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["customize_1_14", "id", "full_name", "country", "tags"]
        );
        // The custom field out of customize_field; a field the answer lacks as null; the
        // id with all its digits; the name as it is (no guard in JSON).
        assert!(
            c["customize_1_14"].as_str().unwrap().starts_with("级别-"),
            "{c}"
        );
        assert_eq!(c["country"], Value::Null);
        let id = c["id"].as_u64().unwrap();
        assert!(line.contains(&format!("\"id\":{id},")), "{line}");
        assert!(c["tags"].is_array(), "{c}");
    }
    assert!(
        lines
            .iter()
            .any(|c| c["full_name"].as_str().unwrap().starts_with("=HYPERLINK"))
    );
}

#[test]
fn plan_shows_the_format_and_its_options() {
    let ws = Workspace::new();
    let csv = export_job(&ws, "c", "csv", "  columns: [id, full_name]\n  bom: true\n");
    let book = export_job(&ws, "book", "xlsx", "  format: xlsx\n");
    let whole = export_job(&ws, "whole", "jsonl", "  format: jsonl\n");
    let plan = |job: &str| {
        let out = run(ws.cmd(&["plan", job]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let text = out.stdout;
        let out = run(ws.cmd(&["plan", job, "--json"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json: Value = serde_json::from_str(&out.stdout).unwrap();
        (text, json["output_format"].clone())
    };

    let (text, json) = plan(&csv);
    assert!(
        text.contains("(csv, byte-order mark, formula guard on)\ncolumns: id, full_name\n"),
        "{text}"
    );
    assert_eq!(
        json,
        serde_json::json!({"format": "csv", "columns": ["id", "full_name"], "bom": true, "formula_guard": true})
    );

    let (text, json) = plan(&book);
    assert!(
        text.contains("(xlsx, sheet `book`, every cell text, a new sheet after 1048575 rows)\ncolumns: id, first_name, "),
        "{text}"
    );
    assert_eq!(json["format"], "xlsx");
    assert_eq!(json["sheet"], "book");
    assert_eq!(json["rows_per_sheet"], 1_048_575);
    assert_eq!(json["columns"].as_array().unwrap().len(), 24);
    assert!(json.get("formula_guard").is_none(), "{json}");

    let (text, json) = plan(&whole);
    assert!(
        text.contains("(jsonl, each customer whole, as received)\nno request"),
        "{text}"
    );
    assert_eq!(
        json,
        serde_json::json!({"format": "jsonl", "columns": null})
    );
}

/// The byte-order mark is the first page's: a crash before any checkpoint writes it again
/// into the cut-back file, a crash later leaves it where it is. Either way one mark, and
/// the file is the one an uninterrupted export writes.
#[cfg(feature = "failpoints")]
#[test]
fn the_bom_is_written_once_whatever_the_resumes() {
    let ws = imported();
    let job = export_job(&ws, "b", "csv", "  bom: true\n");
    let want = read(&export(&ws, &job));
    for nth in ["1", "3"] {
        crash_at(ws.cmd(&["run", &job]), "export_before_checkpoint", nth);
        let out = run(ws.cmd(&["resume", &unfinished_run_dir(&ws, "b"), "--json"]));
        assert_eq!(out.code, 0, "{nth}: {}{}", out.stdout, out.stderr);
        let s: Value = serde_json::from_str(&out.stdout).unwrap();
        let path = Path::new(s["output"].as_str().unwrap());
        assert_eq!(csv_rows(path, true).len(), CUSTOMERS + 1, "{nth}");
        assert_eq!(read(path), want, "{nth}");
    }
}

/// Crash before the workbook is written, after it is complete (the partial still there),
/// and after its move into place began; each resume ends with the same workbook in place
/// and nothing else left.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_around_the_workbook_is_followed_by_a_correct_resume() {
    let ws = imported();
    let job = export_job(
        &ws,
        "x",
        "xlsx",
        &format!("  format: xlsx\n  columns: {COLUMNS}\n"),
    );
    let want = sheets(&export(&ws, &job));
    for (k, point) in [
        "export_before_rename",
        "export_after_workbook",
        "export_after_link",
    ]
    .into_iter()
    .enumerate()
    {
        crash_at(ws.cmd(&["run", &job]), point, "1");
        let out = run(ws.cmd(&["resume", &unfinished_run_dir(&ws, "x"), "--json"]));
        assert_eq!(out.code, 0, "{point}: {}{}", out.stdout, out.stderr);
        let s: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(s["rows"], CUSTOMERS, "{point}");
        assert_eq!(
            sheets(Path::new(s["output"].as_str().unwrap())),
            want,
            "{point}"
        );
        assert_only_finished_files(&ws, k + 2);
    }
}

/// The run directory of job `name` that did not finish (the one just crashed): run ids
/// begun in the same second do not sort by time.
#[cfg(feature = "failpoints")]
#[track_caller]
fn unfinished_run_dir(ws: &Workspace, name: &str) -> String {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ws.path(&format!("runs/{name}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").exists())
        .filter(|p| {
            std::fs::read_to_string(p.join("summary.json")).map_or(true, |s| {
                serde_json::from_str::<Value>(&s).unwrap()["status"] != "finished"
            })
        })
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap().display().to_string()
}
