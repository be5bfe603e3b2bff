//! How exported customers are written into the partial output, page by page: CSV (a header,
//! the chosen columns, tags as their names, nested values as JSON text, a formula guard, an
//! optional byte-order mark), JSON Lines (each customer as received, or only the chosen
//! keys), and for xlsx the rows' cells as JSON lines, which `xlsx.rs` turns into the
//! workbook once every page is in (a workbook cannot be appended to page by page and cut
//! back to a checkpoint; a file of lines can).
//!
//! Numbers are written from `serde_json`'s own integer text, so 64-bit ids stay exact.

use serde_json::{Map, Value};

// Which columns a query answer has is the API's knowledge; the default CSV uses its order.
pub use crate::api::wire::QUERY_SCALAR_FIELDS as SCALAR_FIELDS;
use crate::api::wire::is_custom_field;
use crate::job::model::{OutputFormat, OutputSpec};
use crate::run_dir::ExportRecord;

/// The UTF-8 byte-order mark: without it Excel reads a CSV file in the machine's legacy code
/// page, and Chinese names come out garbled.
pub const BOM: &str = "\u{feff}";

/// Turns pages of customers into the bytes of the partial output.
#[derive(Debug, Clone)]
pub enum Encoder {
    Csv {
        columns: Vec<String>,
        bom: bool,
        formula_guard: bool,
    },
    /// `keys`: only these, in this order; none: each customer whole.
    Jsonl { keys: Option<Vec<String>> },
    /// One JSON array of the row's cell texts per line (see `xlsx.rs`).
    XlsxRows { columns: Vec<String> },
}

/// The CSV options, for [`Encoder::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvOptions {
    pub bom: bool,
    pub formula_guard: bool,
}

impl Encoder {
    pub fn new(format: OutputFormat, columns: &[String], csv: CsvOptions) -> Encoder {
        match format {
            OutputFormat::Csv => Encoder::Csv {
                columns: columns.to_vec(),
                bom: csv.bom,
                formula_guard: csv.formula_guard,
            },
            OutputFormat::Jsonl => Encoder::Jsonl {
                keys: (!columns.is_empty()).then(|| columns.to_vec()),
            },
            OutputFormat::Xlsx => Encoder::XlsxRows {
                columns: columns.to_vec(),
            },
        }
    }

    /// The encoder of the export a run's manifest describes.
    pub fn for_record(rec: &ExportRecord) -> Encoder {
        let csv = CsvOptions {
            bom: rec.bom,
            formula_guard: rec.formula_guard,
        };
        Encoder::new(rec.format, &rec.columns, csv)
    }

    /// What the file starts with, written with its first page only (so never twice, however
    /// often the run is resumed): the byte-order mark and the CSV header; nothing for JSON
    /// Lines, nor for xlsx rows (the workbook's header comes from the manifest's columns).
    pub fn header(&self) -> Vec<u8> {
        match self {
            Encoder::Csv { columns, bom, .. } => {
                let mut out = if *bom {
                    BOM.as_bytes().to_vec()
                } else {
                    Vec::new()
                };
                out.extend(csv_lines(std::iter::once(columns.clone())));
                out
            }
            Encoder::Jsonl { .. } | Encoder::XlsxRows { .. } => Vec::new(),
        }
    }

    /// Append one page of customers to `out`.
    pub fn encode(&self, customers: &[Value], out: &mut Vec<u8>) {
        match self {
            Encoder::Csv {
                columns,
                formula_guard,
                ..
            } => out.extend(csv_lines(customers.iter().map(|c| {
                columns
                    .iter()
                    .map(|col| match cell_of(c, col) {
                        Cell::Text(t) if *formula_guard => guard(t),
                        Cell::Text(t) | Cell::Number(t) => t,
                    })
                    .collect::<Vec<_>>()
            }))),
            Encoder::Jsonl { keys: None } => {
                for c in customers {
                    json_line(c, out);
                }
            }
            Encoder::Jsonl { keys: Some(keys) } => {
                for c in customers {
                    let picked: Map<String, Value> = keys
                        .iter()
                        .map(|k| (k.clone(), value_of(c, k).unwrap_or(Value::Null)))
                        .collect();
                    json_line(&picked, out);
                }
            }
            Encoder::XlsxRows { columns } => {
                for c in customers {
                    let cells: Vec<String> = columns.iter().map(|col| cell(c, col)).collect();
                    json_line(&cells, out);
                }
            }
        }
    }
}

/// The columns (or JSON Lines keys) an export writes: the chosen ones; by default every
/// scalar field of the query answer for CSV and xlsx, and none (each customer whole) for
/// JSON Lines.
pub fn columns_for(spec: &OutputSpec) -> Vec<String> {
    match (&spec.columns, spec.format) {
        (Some(c), _) => c.clone(),
        (None, OutputFormat::Csv | OutputFormat::Xlsx) => {
            SCALAR_FIELDS.iter().map(|s| s.to_string()).collect()
        }
        (None, OutputFormat::Jsonl) => Vec::new(),
    }
}

/// A text cell that a spreadsheet program would take for a formula (`=`, `+`, `-`, `@`) or
/// that starts with a tab or a carriage return, which some programs strip before looking
/// again, gets a leading `'`: the program then shows the text and runs nothing (the OWASP
/// advice against "CSV injection"). Numbers are never guarded: a JSON number is digits,
/// which no program runs.
pub fn guard(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

fn json_line(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("a JSON value serializes");
    out.push(b'\n');
}

fn csv_lines(records: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for r in records {
        w.write_record(&r)
            .expect("writing CSV to memory cannot fail");
    }
    w.into_inner().expect("writing CSV to memory cannot fail")
}

/// A cell's text, and whether it came from a number (which the formula guard leaves alone).
enum Cell {
    Text(String),
    Number(String),
}

/// One cell as text: text as is, numbers exact, absent or null empty, `tags` as the tag
/// names joined with commas, lists and objects as JSON text.
pub fn cell(customer: &Value, column: &str) -> String {
    match cell_of(customer, column) {
        Cell::Text(t) | Cell::Number(t) => t,
    }
}

fn cell_of(customer: &Value, column: &str) -> Cell {
    match (column, value_of(customer, column)) {
        (_, None | Some(Value::Null)) => Cell::Text(String::new()),
        ("tags", Some(Value::Array(tags))) => Cell::Text(
            tags.iter()
                .map(|t| match t.get("tag_name") {
                    Some(Value::String(name)) => name.clone(),
                    _ => scalar_text(t),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        (_, Some(v @ Value::Number(_))) => Cell::Number(v.to_string()),
        (_, Some(v)) => Cell::Text(scalar_text(&v)),
    }
}

/// A column's value: the customer's field, or a custom field (`customize_1_14`) read out of
/// `customize_field`.
fn value_of(customer: &Value, column: &str) -> Option<Value> {
    if is_custom_field(column) && customer.get(column).is_none() {
        custom_field(customer, column)
    } else {
        customer.get(column).cloned()
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A custom field out of `customize_field` (JSON text, or an object if the API sends one).
fn custom_field(customer: &Value, name: &str) -> Option<Value> {
    match customer.get("customize_field")? {
        Value::String(text) => serde_json::from_str::<Value>(text).ok()?.get(name).cloned(),
        Value::Object(map) => map.get(name).cloned(),
        _ => None,
    }
}

/// A customer's id, exact.
pub fn id_of(customer: &Value) -> Option<i64> {
    match customer.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer() -> Value {
        serde_json::from_str(
            r#"{"id": 1214631327620775936, "full_name": "Lee, \"Ann\"", "whatsApp_phone": "8613800000001",
                "tags": [{"id": 1, "tag_name": "vip"}, {"id": 2, "tag_name": "new"}],
                "customize_field": "{\"customize_1_14\": \"gold\", \"customize_4_52\": [\"1\",\"2\"]}",
                "gender": 1, "email": null, "remark": "two\nlines"}"#,
        )
        .unwrap()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn encoded(e: &Encoder, customers: &[Value]) -> String {
        let mut out = e.header();
        e.encode(customers, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cells_keep_ids_exact_and_flatten_what_is_nested() {
        let c = customer();
        assert_eq!(cell(&c, "id"), "1214631327620775936");
        assert_eq!(cell(&c, "tags"), "vip,new");
        assert_eq!(cell(&c, "gender"), "1");
        assert_eq!(cell(&c, "email"), "");
        assert_eq!(cell(&c, "country"), "");
        assert_eq!(cell(&c, "customize_1_14"), "gold");
        assert_eq!(cell(&c, "customize_4_52"), r#"["1","2"]"#);
        assert_eq!(id_of(&c), Some(1214631327620775936));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let columns = strings(&["id", "full_name", "tags", "remark"]);
        let e = Encoder::new(OutputFormat::Csv, &columns, CsvOptions::default());
        assert_eq!(
            encoded(&e, &[customer()]),
            "id,full_name,tags,remark\n1214631327620775936,\"Lee, \"\"Ann\"\"\",\"vip,new\",\"two\nlines\"\n"
        );
    }

    #[test]
    fn the_formula_guard_quotes_text_that_a_spreadsheet_would_run() {
        let names = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-x",
            "@SUM(A1)",
            "\tTab",
            "\rCR",
            "Ann = Bob",
            "",
        ];
        let customers: Vec<Value> = names
            .iter()
            .map(|n| json!({"id": -5, "full_name": n, "tags": [{"tag_name": "=vip"}]}))
            .collect();
        let columns = strings(&["id", "full_name", "tags"]);
        let on = CsvOptions {
            formula_guard: true,
            ..CsvOptions::default()
        };
        let text = encoded(&Encoder::new(OutputFormat::Csv, &columns, on), &customers);
        let rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let guarded: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(
            guarded,
            [
                "'=HYPERLINK(\"http://x\",\"y\")",
                "'+1",
                "'-x",
                "'@SUM(A1)",
                "'\tTab",
                "'\rCR",
                "Ann = Bob",
                "",
            ]
        );
        // Numbers are never text a spreadsheet runs; tag names are text.
        assert!(rows.iter().all(|r| r[0] == "-5" && r[2] == "'=vip"));

        let off = Encoder::new(OutputFormat::Csv, &columns, CsvOptions::default());
        let text = encoded(&off, &customers[..1]);
        assert!(text.contains("\"=HYPERLINK"), "{text}");
    }

    #[test]
    fn the_bom_goes_first_once_in_the_header_only() {
        let columns = strings(&["id", "full_name"]);
        let bom = CsvOptions {
            bom: true,
            formula_guard: true,
        };
        let e = Encoder::new(OutputFormat::Csv, &columns, bom);
        assert!(e.header().starts_with("\u{feff}id,full_name\n".as_bytes()));
        let mut page = Vec::new();
        e.encode(&[customer()], &mut page);
        assert!(!page.starts_with(BOM.as_bytes()));
        let plain = Encoder::new(OutputFormat::Csv, &columns, CsvOptions::default());
        assert_eq!(plain.header(), b"id,full_name\n");
    }

    #[test]
    fn jsonl_writes_each_customer_as_received() {
        let e = Encoder::new(OutputFormat::Jsonl, &[], CsvOptions::default());
        assert!(e.header().is_empty());
        let text = encoded(&e, &[customer(), json!({"id": 2})]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(r#"{"id":1214631327620775936,"full_name":"Lee, \"Ann\"""#));
        assert_eq!(serde_json::from_str::<Value>(lines[0]).unwrap(), customer());
    }

    #[test]
    fn jsonl_columns_keep_exactly_those_keys_in_that_order() {
        let keys = strings(&["customize_1_14", "tags", "id", "country", "full_name"]);
        // The formula guard is for CSV: a JSON string is never run.
        let guard = CsvOptions {
            formula_guard: true,
            bom: true,
        };
        let e = Encoder::new(OutputFormat::Jsonl, &keys, guard);
        assert!(e.header().is_empty());
        let mut c = customer();
        c["full_name"] = json!("=1+1");
        let text = encoded(&e, &[c]);
        assert_eq!(
            text,
            "{\"customize_1_14\":\"gold\",\"tags\":[{\"id\":1,\"tag_name\":\"vip\"},{\"id\":2,\"tag_name\":\"new\"}],\"id\":1214631327620775936,\"country\":null,\"full_name\":\"=1+1\"}\n"
        );
    }

    #[test]
    fn xlsx_rows_are_the_cells_as_text_unguarded() {
        let columns = strings(&["id", "full_name", "tags", "gender", "email"]);
        let e = Encoder::new(OutputFormat::Xlsx, &columns, CsvOptions::default());
        assert!(e.header().is_empty());
        let mut c = customer();
        c["full_name"] = json!("=1+1");
        let text = encoded(&e, &[c]);
        assert_eq!(
            text,
            "[\"1214631327620775936\",\"=1+1\",\"vip,new\",\"1\",\"\"]\n"
        );
    }
}
