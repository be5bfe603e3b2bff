//! Spreadsheet sources (`type: xlsx`, SPEC §8) as a user feeds them: workbooks written here
//! with rust_xlsxwriter the way Excel stores them (phones as numbers, dates as serials),
//! a 1904-system workbook, the .xls and .ods fixtures, and the errors a wrong `sheet` or
//! `header_row` gets.

use std::io::{Read, Write};
use std::path::Path;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet};
use serde_json::{Value, json};

use crate::common::{API, Output, SimProcess, Workspace, jsonl, repo, run, with_sim_credentials};

fn job(source: &str, mapping: &str) -> String {
    format!("{API}source: {source}\nmapping:\n{mapping}")
}

/// Name, phone and email, the phone through the `phone` filter.
const MAPPING: &str = "  full_name: \"{{ row.name }}\"\n  whats_app_phone: \"{{ row.phone | phone('86') }}\"\n  email: \"{{ row.email }}\"\n";

fn cmd(ws: &Workspace, args: &[&str]) -> Output {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    run(c)
}

#[track_caller]
fn plan(ws: &Workspace) -> Value {
    let out = cmd(ws, &["plan", "--json", "--limit", "1000", "job.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

#[track_caller]
fn save(ws: &Workspace, name: &str, book: &mut Workbook) {
    book.save(ws.path(name)).expect("the workbook is written");
}

fn date_format() -> Format {
    Format::new().set_num_format("yyyy-mm-dd")
}

/// One sheet: a header and rows of text cells (`None`: no cell at all).
fn text_sheet(sheet: &mut Worksheet, first_row: u32, rows: &[&[Option<&str>]]) {
    for (r, cells) in rows.iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            if let Some(text) = cell {
                sheet
                    .write_string(first_row + r as u32, c as u16, *text)
                    .unwrap();
            }
        }
    }
}

/// Every kind of cell as Excel stores it, and a fully empty row in the middle: the
/// templates see what a CSV saved from the sheet would hold, and the empty row is no record.
#[test]
fn cells_become_the_text_a_csv_of_the_sheet_would_hold() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let header = [
        "name",
        "phone",
        "email",
        "birthday",
        "signed_up",
        "vip",
        "score",
        "note",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    // Row 2 of the sheet: the first record.
    sheet.write_string(1, 0, "Wang Fang").unwrap();
    sheet.write_number(1, 1, 8613812345678.0).unwrap(); // a phone typed as a number
    sheet.write_string(1, 2, "wf@example.com").unwrap();
    let birthday = ExcelDateTime::from_ymd(1990, 1, 1).unwrap();
    sheet
        .write_datetime_with_format(1, 3, &birthday, &date_format())
        .unwrap();
    let signed_up = ExcelDateTime::from_ymd(2024, 3, 5)
        .unwrap()
        .and_hms(14, 30, 5)
        .unwrap();
    sheet
        .write_datetime_with_format(1, 4, &signed_up, &when)
        .unwrap();
    sheet.write_boolean(1, 5, true).unwrap();
    sheet.write_number(1, 6, 3.25).unwrap();
    // Row 3: nothing at all; row 4: the second record, mostly empty cells.
    sheet.write_string(3, 0, "Li Lei").unwrap();
    sheet.write_string(3, 1, "+86 139 0000 1111").unwrap();
    sheet.write_boolean(3, 5, false).unwrap();
    sheet.write_number(3, 6, 0.1).unwrap();
    save(&ws, "leads.xlsx", &mut book);

    ws.write(
        "job.yaml",
        job(
            "{type: xlsx, path: leads.xlsx}",
            &format!(
                "{MAPPING}  birthday: \"{{{{ row.birthday }}}}\"\n  remark: \"{{{{ row.signed_up }}}}|{{{{ row.vip }}}}|{{{{ row.score }}}}|[{{{{ row.note }}}}]\"\n"
            ),
        ),
    );
    let p = plan(&ws);
    assert_eq!(
        p["counts"],
        json!({"rows": 2, "valid": 2, "rejected": 0, "skipped": 0, "unchanged": 0}),
        "{p}"
    );
    assert_eq!(p["source"], "leads.xlsx (xlsx, sheet `Sheet1`)");
    let first = &p["preview"][0];
    assert_eq!(first["row"], 1);
    assert_eq!(
        first["customer"],
        json!({
            "full_name": "Wang Fang",
            "whats_app_phone": "8613812345678",
            "email": "wf@example.com",
            "birthday": "1990-01-01",
            "remark": "2024-03-05 14:30:05|true|3.25|[]",
        })
    );
    let second = &p["preview"][1];
    assert_eq!(second["row"], 2, "the empty row is not a record");
    assert_eq!(second["customer"]["whats_app_phone"], "8613900001111");
    assert_eq!(second["customer"]["remark"], "|false|0.1|[]");
    assert!(second["customer"].get("birthday").is_none());
}

/// The same serial number in a cell formatted as a date is another day in a workbook that
/// counts from 1904 (Excel for Mac's old default): calamine reads the workbook's date system.
#[test]
fn a_1904_workbook_dates_its_serials_from_1904() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    text_sheet(
        sheet,
        0,
        &[&[Some("name"), Some("email"), Some("birthday")]],
    );
    sheet.write_string(1, 0, "Ann").unwrap();
    sheet.write_string(1, 1, "ann@example.com").unwrap();
    sheet
        .write_number_with_format(1, 2, 31412.0, &date_format())
        .unwrap();
    save(&ws, "1900.xlsx", &mut book);
    // rust_xlsxwriter cannot write a 1904 workbook (its date system is not public): the
    // same workbook with `date1904` set in its workbook.xml, as Excel writes it.
    set_1904(&ws.path("1900.xlsx"), &ws.path("1904.xlsx"));

    let mapping = "  full_name: \"{{ row.name }}\"\n  email: \"{{ row.email }}\"\n  birthday: \"{{ row.birthday }}\"\n";
    let birthday = |file: &str| {
        ws.write(
            "job.yaml",
            job(&format!("{{type: xlsx, path: {file}}}"), mapping),
        );
        plan(&ws)["preview"][0]["customer"]["birthday"].clone()
    };
    assert_eq!(birthday("1900.xlsx"), "1985-12-31");
    assert_eq!(birthday("1904.xlsx"), "1990-01-01");
}

/// Copy the workbook at `from` to `to`, switched to the 1904 date system.
fn set_1904(from: &Path, to: &Path) {
    let mut input = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut output = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..input.len() {
        let mut entry = input.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "xl/workbook.xml" {
            let xml = String::from_utf8(bytes).unwrap();
            assert!(xml.contains("<workbookPr "), "{xml}");
            bytes = xml
                .replace("<workbookPr ", "<workbookPr date1904=\"1\" ")
                .into_bytes();
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        output.start_file(name, options).unwrap();
        output.write_all(&bytes).unwrap();
    }
    output.finish().unwrap();
}

/// Two sheets, the second with a title and a blank row above its header: `sheet` by name or
/// by position and `header_row` pick it; the record's row numbers start after the header.
#[test]
fn a_sheet_by_name_or_position_and_its_header_row() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let first = book.add_worksheet().set_name("Notes").unwrap();
    text_sheet(first, 0, &[&[Some("nothing here")]]);
    let leads = book.add_worksheet().set_name("Leads").unwrap();
    text_sheet(
        leads,
        0,
        &[
            &[Some("Leads exported 2024-03-05")],
            &[],
            &[Some("name"), Some("phone"), Some("email")],
            &[Some("Ann"), Some("13900000001"), Some("ann@example.com")],
            &[Some("Bob"), None, Some("bob@example.com")],
        ],
    );
    save(&ws, "book.xlsx", &mut book);
    for sheet in ["Leads", "2"] {
        ws.write(
            "job.yaml",
            job(
                &format!("{{type: xlsx, path: book.xlsx, sheet: {sheet}, header_row: 3}}"),
                "  full_name: \"{{ row.name }}\"\n  email: \"{{ row.email }}\"\n",
            ),
        );
        let p = plan(&ws);
        assert_eq!(p["counts"]["rows"], 2, "{sheet}: {p}");
        assert_eq!(p["preview"][1]["row"], 2);
        assert_eq!(p["preview"][1]["customer"]["full_name"], "Bob");
        assert!(
            p["source"]
                .as_str()
                .unwrap()
                .ends_with("(xlsx, sheet `Leads`, header row 3)"),
            "{p}"
        );
    }
}

/// What `validate` says of a workbook it cannot use, each at `source`'s line and before
/// anything runs: a sheet that is not there (by name, with the near one; by position), an
/// empty header row, a file that is not a workbook, a `row.X` the header lacks, CSV keys on
/// a workbook and standard input.
#[test]
fn validate_names_what_is_wrong_with_the_workbook() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name("Leads").unwrap();
    text_sheet(
        sheet,
        0,
        &[
            &[Some("name"), Some("phone"), Some("email")],
            &[],
            &[Some("Ann"), Some("13900000001"), Some("ann@example.com")],
        ],
    );
    save(&ws, "book.xlsx", &mut book);
    ws.write("not-a-book.xlsx", "name,phone\nAnn,1390000\n");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "{type: xlsx, path: book.xlsx, sheet: leads}",
            MAPPING,
            &[
                "job.yaml:8:46: `source.sheet`: the workbook book.xlsx has no sheet `leads`; its sheets are `Leads`; did you mean `Leads`?",
            ],
        ),
        (
            "{type: xlsx, path: book.xlsx, sheet: 3}",
            MAPPING,
            &[
                "job.yaml:8:46: `source.sheet`: the workbook book.xlsx has 1 sheet(s) (`Leads`), so there is no sheet 3",
            ],
        ),
        (
            "{type: xlsx, path: book.xlsx, header_row: 2}",
            MAPPING,
            &[
                "job.yaml:8:51: `source.header_row`: row 2 of sheet `Leads` in book.xlsx is empty, so it cannot name the columns; the first row below it that holds anything is row 3",
            ],
        ),
        (
            "{type: xlsx, path: not-a-book.xlsx}",
            MAPPING,
            &["job.yaml:8:28: `source.path`: not-a-book.xlsx is not an xlsx workbook: "],
        ),
        (
            "{type: xlsx, path: book.xlsx}",
            "  full_name: \"{{ row.nmae }}\"\n  email: \"{{ row.email }}\"\n",
            &[
                "`row.nmae`: the header row of sheet `Leads` in book.xlsx has no column `nmae`",
                "did you mean `row.name`?",
            ],
        ),
        (
            "{type: xlsx, path: book.xlsx, delimiter: \";\"}",
            MAPPING,
            &["`source.delimiter` applies to text sources (csv, jsonl, json), not to a workbook"],
        ),
        (
            "{type: csv, path: book.csv, sheet: Leads}",
            MAPPING,
            &["`source.sheet` applies to `type: xlsx` sources only"],
        ),
        (
            "{type: xlsx, path: \"-\"}",
            MAPPING,
            &["a workbook cannot be read from standard input"],
        ),
    ];
    ws.write("book.csv", "name,phone,email\n");
    for (source, mapping, wanted) in cases {
        ws.write("job.yaml", job(source, mapping));
        let out = cmd(&ws, &["validate", "job.yaml"]);
        assert_eq!(out.code, 2, "{source}: {}{}", out.stdout, out.stderr);
        for w in *wanted {
            assert!(
                out.stderr.contains(w),
                "{source}: wanted {w:?} in\n{}",
                out.stderr
            );
        }
    }
    ws.write("job.yaml", job("{type: xlsx, path: book.xlsx}", MAPPING));
    let out = cmd(&ws, &["validate", "job.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A run's result lines name the row as the spreadsheet shows it (`sheet_row`, SPEC §12
/// R13) beside the record's `row`, and carry the record as column → text; the created rows
/// reach the API with the phone's digits.
#[test]
fn result_lines_carry_the_sheet_row_and_the_record() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    text_sheet(sheet, 0, &[&[Some("name"), Some("phone"), Some("email")]]);
    for (r, name) in [(1, "Ann"), (2, "Bob"), (5, "Cid"), (6, "Dee")] {
        sheet.write_string(r, 0, name).unwrap();
        sheet
            .write_string(r, 2, format!("{}@example.com", name.to_lowercase()))
            .unwrap();
    }
    for r in [1, 5, 6] {
        sheet
            .write_number(r, 1, 8613900000000.0 + f64::from(r))
            .unwrap();
    }
    sheet.write_string(2, 1, "n/a").unwrap(); // Bob: rejected
    save(&ws, "leads.xlsx", &mut book);
    ws.write(
        "job.yaml",
        job("{type: xlsx, path: leads.xlsx}", MAPPING)
            .replace("base_url: sim", &format!("base_url: \"{}\"", sim.url))
            .replace("app_key: k", "app_key: \"46oKF=os\""),
    );
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = crate::common::run_dirs(&ws.path("runs/t")).pop().unwrap();
    let rejected = jsonl(&dir.join("rejected.jsonl"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["row"], 2);
    assert_eq!(rejected[0]["sheet_row"], 3);
    assert_eq!(
        rejected[0]["record"],
        json!({"name": "Bob", "phone": "n/a", "email": "bob@example.com"})
    );
    let created = jsonl(&dir.join("created.jsonl"));
    let rows: Vec<&Value> = created.iter().map(|c| &c["row"]).collect();
    assert_eq!(
        rows,
        [&json!(1), &json!(3), &json!(4)],
        "rows 4 and 5 of the sheet are empty"
    );
    let mut phones: Vec<String> = sim
        .customers()
        .iter()
        .map(|c| c["whatsApp_phone"].as_str().unwrap().to_string())
        .collect();
    phones.sort();
    assert_eq!(phones, ["8613900000001", "8613900000005", "8613900000006"]);
}

/// The run's fingerprint is the workbook's bytes, as for a CSV: a workbook saved again with
/// one more row blocks the resume; the original bytes back, the resume goes on.
#[test]
fn resume_refuses_a_workbook_that_changed() {
    let ws = Workspace::new();
    let write = |rows: u32| {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        text_sheet(sheet, 0, &[&[Some("name"), Some("phone"), Some("email")]]);
        for r in 1..=rows {
            sheet.write_string(r, 0, format!("Lead {r}")).unwrap();
            sheet
                .write_number(r, 1, 8613900000000.0 + f64::from(r))
                .unwrap();
        }
        save(&ws, "leads.xlsx", &mut book);
    };
    write(5);
    let original = std::fs::read(ws.path("leads.xlsx")).unwrap();
    // Nothing listens on port 9: the run stops early, resumable.
    ws.write(
        "job.yaml",
        job("{type: xlsx, path: leads.xlsx}", MAPPING).replace(
            "base_url: sim",
            "base_url: http://127.0.0.1:9\n  max_retries: 0",
        ),
    );
    let out = cmd(&ws, &["run", "job.yaml"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let dir = crate::common::run_dirs(&ws.path("runs/t")).pop().unwrap();
    let d = dir.to_str().unwrap();
    write(6);
    let out = cmd(&ws, &["resume", d]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("changed since the run started"),
        "{}",
        out.stderr
    );
    std::fs::write(ws.path("leads.xlsx"), original).unwrap();
    let out = cmd(&ws, &["resume", d]);
    assert_eq!(
        out.code, 3,
        "the same bytes resume (and stop again at the API): {}",
        out.stderr
    );
}

/// A workbook whose sheet's zip entry is damaged half-way: bad input (exit 2), not a
/// resumable stop; the run sends every whole batch read before the break and names the
/// sheet row it stopped after and the rows it did not send.
#[test]
fn a_damaged_workbook_is_bad_input_and_every_row_read_is_counted() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    text_sheet(sheet, 0, &[&[Some("name"), Some("phone"), Some("email")]]);
    for r in 1..=30_000u32 {
        sheet.write_string(r, 0, format!("Lead {r}")).unwrap();
        sheet
            .write_number(r, 1, 8613900000000.0 + f64::from(r))
            .unwrap();
    }
    let mut bytes = book.save_to_buffer().unwrap();
    // The sheet's entry: its local header, then its deflated XML; damage the middle of it.
    // (Its size is in the central directory's entry, the name's second occurrence: the
    // local header may leave it to a descriptor after the data.)
    let name = b"xl/worksheets/sheet1.xml";
    let found: Vec<usize> = bytes
        .windows(name.len())
        .enumerate()
        .filter(|(_, w)| *w == name)
        .map(|(i, _)| i)
        .collect();
    let (at, central) = (found[0], found[1]);
    let compressed =
        u32::from_le_bytes(bytes[central - 26..central - 22].try_into().unwrap()) as usize;
    let data = at + name.len() + usize::from(u16::from_le_bytes([bytes[at - 2], bytes[at - 1]]));
    for b in &mut bytes[data + compressed / 2..data + compressed / 2 + 64] {
        *b ^= 0xA5;
    }
    ws.write("leads.xlsx", &bytes);
    ws.write("job.yaml", job("{type: xlsx, path: leads.xlsx}", MAPPING));
    let out = cmd(&ws, &["plan", "job.yaml"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("cannot read sheet `Sheet1`"),
        "{}",
        out.stderr
    );

    let out = cmd(&ws, &["run", "job.yaml", "--json"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["resumable"], false, "{summary}");
    let sent = summary["counts"]["rows"].as_u64().expect("a row count");
    assert!(
        (100..30_000).contains(&sent) && sent.is_multiple_of(100),
        "{summary}"
    );
    assert_eq!(summary["counts"]["created"], sent, "{summary}");
    let reason = summary["stopped_reason"].as_str().unwrap();
    let read = reason
        .split("after row ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the row it stopped after");
    assert!(
        reason.contains(&format!("after row {read} (sheet row {})", read + 1))
            && (read == sent
                || reason.contains(&format!("rows {}-{read}, read after", sent + 1))
                || reason.contains(&format!("row {read}, read after"))),
        "{reason}"
    );
    let dir = crate::common::run_dirs(&ws.path("runs/t")).pop().unwrap();
    assert_eq!(jsonl(&dir.join("created.jsonl")).len() as u64, sent);
}

/// The .xls (BIFF8) and .ods fixtures (tests/fixtures/sheets/README.md says how they were
/// made) hold the same leads as an xlsx would: a phone as a number, a date, an empty row.
#[test]
fn xls_and_ods_workbooks_read_like_xlsx() {
    for file in ["leads.xls", "leads.ods"] {
        let ws = Workspace::new();
        std::fs::copy(
            repo().join("tests/fixtures/sheets").join(file),
            ws.path(file),
        )
        .unwrap();
        ws.write(
            "job.yaml",
            job(
                &format!("{{type: xlsx, path: {file}}}"),
                &format!("{MAPPING}  birthday: \"{{{{ row.birthday }}}}\"\n  remark: \"{{{{ row.score }}}}\"\n"),
            ),
        );
        let out = cmd(&ws, &["validate", "job.yaml"]);
        assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        let p = plan(&ws);
        assert_eq!(p["counts"]["rows"], 2, "{file}: {p}");
        assert_eq!(
            p["preview"][0]["customer"],
            json!({
                "full_name": "Wang Fang",
                "whats_app_phone": "8613812345678",
                "email": "wf@example.com",
                "birthday": "1990-01-01",
                "remark": "3.25",
            }),
            "{file}"
        );
        assert_eq!(p["preview"][1]["customer"]["full_name"], "Li Lei", "{file}");
        assert_eq!(p["preview"][1]["row"], 2, "{file}");
    }
}

/// Date cells read as their number format shows them (SPEC §8): a `yyyy-mm-dd hh:mm:ss`
/// cell at midnight is a date-time, an `hh:mm` cell at 00:00 a time (not 1899-12-31), a
/// `yyyy-mm-dd` cell with a time in its serial a date, and seconds round as Excel shows
/// them.
#[test]
fn date_cells_read_as_their_number_format_shows_them() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let names = ["name", "email", "at", "time", "day", "stamp"];
    for (c, h) in names.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let time = Format::new().set_num_format("hh:mm");
    sheet.write_string(1, 0, "Ann").unwrap();
    sheet.write_string(1, 1, "a@x.io").unwrap();
    let midnight = ExcelDateTime::from_ymd(2024, 2, 29).unwrap();
    sheet
        .write_datetime_with_format(1, 2, &midnight, &date_time)
        .unwrap();
    sheet.write_number_with_format(1, 3, 0.0, &time).unwrap();
    sheet
        .write_number_with_format(1, 4, 45351.75, &date_format())
        .unwrap();
    sheet
        .write_number_with_format(1, 5, 45351.0 + 2.6 / 86_400.0, &date_time)
        .unwrap();
    save(&ws, "dates.xlsx", &mut book);
    let mapping = "  full_name: \"{{ row.name }}\"\n  email: \"{{ row.email }}\"\n  remark: \"{{ row.at }}|{{ row.time }}|{{ row.day }}|{{ row.stamp }}\"\n";
    ws.write("job.yaml", job("{type: xlsx, path: dates.xlsx}", mapping));
    let p = plan(&ws);
    assert_eq!(
        p["preview"][0]["customer"]["remark"],
        "2024-02-29 00:00:00|00:00:00|2024-02-29|2024-02-29 00:00:03",
        "{p}"
    );
}

/// A sheet's header names are trimmed, as a CSV header's are: `Email ` is `row.Email`.
#[test]
fn sheet_header_names_are_trimmed_like_csv_ones() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    text_sheet(
        sheet,
        0,
        &[
            &[Some(" name"), Some("phone "), Some(" email ")],
            &[Some("Ann"), Some("8613812345678"), Some("a@x.io")],
        ],
    );
    save(&ws, "t.xlsx", &mut book);
    ws.write("job.yaml", job("{type: xlsx, path: t.xlsx}", MAPPING));
    let out = cmd(&ws, &["validate", "job.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p = plan(&ws);
    assert_eq!(p["counts"]["valid"], 1, "{p}");
    assert_eq!(p["preview"][0]["customer"]["email"], "a@x.io", "{p}");
}

/// An error cell (`#N/A` of a lookup that found nothing, `#REF!`) in a named column is no
/// value: its row is rejected, naming the cell and the error, and the rows around it read.
/// An error in a column the header does not name changes nothing.
#[test]
fn an_error_cell_rejects_its_row_naming_the_cell() {
    use rust_xlsxwriter::Formula;
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    text_sheet(sheet, 0, &[&[Some("name"), Some("phone"), Some("email")]]);
    for r in 1..=4u32 {
        sheet.write_string(r, 0, format!("Lead {r}")).unwrap();
        sheet
            .write_number(r, 1, 8613900000000.0 + f64::from(r))
            .unwrap();
        sheet.write_string(r, 2, format!("l{r}@x.io")).unwrap();
    }
    sheet
        .write_formula(
            2,
            1,
            Formula::new("=VLOOKUP(A3,Z:Z,1,FALSE)").set_result("#N/A"),
        )
        .unwrap();
    sheet
        .write_formula(3, 4, Formula::new("=1/0").set_result("#DIV/0!"))
        .unwrap();
    save(&ws, "t.xlsx", &mut book);
    ws.write("job.yaml", job("{type: xlsx, path: t.xlsx}", MAPPING));
    let p = plan(&ws);
    assert_eq!(p["counts"]["valid"], 3, "{p}");
    assert_eq!(p["counts"]["rejected"], 1, "{p}");
    let group = &p["rejected_by_reason"][0];
    assert_eq!(group["example_rows"], json!([2]), "{group}");
    assert_eq!(
        group["example"], "sheet row 3: cell B3 (`phone`) holds the error #N/A",
        "{group}"
    );
}

/// A directory named like a workbook or a CSV is refused the same way for both (`init`
/// opens the file itself; a job's `validate` says so before).
#[test]
fn a_directory_as_the_source_is_refused_alike_for_a_workbook_and_a_csv() {
    let ws = Workspace::new();
    for name in ["book.xlsx", "leads.csv"] {
        std::fs::create_dir(ws.path(name)).unwrap();
        let out = cmd(&ws, &["init", "--from", name, "--out", "-"]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("the source {name} is a directory, not a file")),
            "{name}: {}",
            out.stderr
        );
    }
}
