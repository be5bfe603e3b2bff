//! `cdpjob rows RUN_DIR --outcome created|failed|rejected`: an import's rows of one outcome
//! on stdout, as JSON Lines (the result lines as they are) or CSV. Failed and rejected rows
//! in CSV are laid out as the source was — its columns in its order, then `_row` and
//! `_reason` — so that a person can fix them in a spreadsheet and feed the file back as a
//! source (SPEC §7). Only what the run's checkpoint counts is printed.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::import::results::{self, RowOutcome};
use crate::job::yaml;
use crate::run_dir::{KindRecord, Manifest};
use crate::runner::{self, Outcome};
use crate::source::{CsvOptions, SourceKind, SourceSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsFormat {
    Csv,
    Jsonl,
}

/// The columns a CSV of failed or rejected rows ends with.
pub const ROW_COLUMN: &str = "_row";
pub const REASON_COLUMN: &str = "_reason";

/// How many row numbers a note lists before it says "…".
const LISTED: usize = 10;

/// Print the rows of `outcome` of the run in `dir`, in row order.
pub fn print(dir: &Path, outcome: RowOutcome, format: RowsFormat) -> Result<Outcome> {
    let manifest = runner::begin::read_manifest(dir)?;
    let KindRecord::BatchCreate { columns, .. } = &manifest.kind else {
        return Err(Error::Usage(format!(
            "{} is an export's run directory: only an import has rows to list",
            dir.display()
        )));
    };
    let index = Index::read(dir, outcome)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match (format, outcome) {
        (RowsFormat::Jsonl, _) => {
            index.try_each(|text, _| Ok(writeln!(out, "{text}").is_ok()))?;
        }
        (RowsFormat::Csv, RowOutcome::Created) => {
            let mut w = csv_writer(b',', b'"', &mut out);
            let _ = w.write_record(["row", "customer_id", "whats_app_phone"]);
            index.try_each(|_, v| {
                let cells = [&v["row"], &v["customer_id"], &v["whats_app_phone"]].map(cell);
                Ok(w.write_record(cells).is_ok())
            })?;
            let _ = w.flush();
        }
        (RowsFormat::Csv, _) => {
            if let Some(path) = &index.without_records {
                return Err(without_records(&manifest, path));
            }
            let columns = columns.clone().unwrap_or_else(|| index.keys.clone());
            source_csv(&manifest, &columns, &index, &mut out)?;
        }
    }
    // A closed pipe (`| head`) is not worth a message.
    let _ = out.flush();
    Ok(Outcome::Done)
}

/// Where each committed line of a result file is, in row order (a file is appended in the
/// order batches were answered), and what a CSV of them needs to know.
struct Index {
    path: std::path::PathBuf,
    /// Row and byte offset of each line.
    lines: Vec<(u64, u64)>,
    /// Every key of the records, in the order first seen: a JSON source's columns. Those
    /// records are the source's objects as they were read, so no key of theirs is missed,
    /// and none that only other rows had makes a column empty all the way down.
    keys: Vec<String>,
    /// Rows never read as records (`"raw"`): a CSV has no columns to put them in.
    raw_rows: Vec<u64>,
    /// Set when a failed or rejected line carries neither `record` nor `raw`.
    without_records: Option<std::path::PathBuf>,
}

impl Index {
    fn read(dir: &Path, outcome: RowOutcome) -> Result<Index> {
        let lines = results::committed(dir, outcome)
            .map_err(|e| Error::io("cannot read the result file", e))?;
        let mut index = Index {
            path: lines.path.clone(),
            lines: Vec::new(),
            keys: Vec::new(),
            raw_rows: Vec::new(),
            without_records: None,
        };
        let mut seen = HashSet::new();
        for line in lines {
            let (at, text) = line.map_err(|e| Error::io("cannot read the result file", e))?;
            let v = parse(at, &text)?;
            let row = v["row"].as_u64().unwrap_or(0);
            index.lines.push((row, at));
            match (&v["record"], &v["raw"]) {
                (Value::Object(record), _) => {
                    for key in record.keys() {
                        if !seen.contains(key) {
                            seen.insert(key.clone());
                            index.keys.push(key.clone());
                        }
                    }
                }
                (_, Value::String(_)) => index.raw_rows.push(row),
                _ if outcome != RowOutcome::Created => {
                    index.without_records = Some(index.path.clone());
                }
                _ => {}
            }
        }
        index.lines.sort_unstable();
        index.raw_rows.sort_unstable();
        Ok(index)
    }

    /// Each line's text and JSON, in row order, until `each` returns false.
    fn try_each(&self, mut each: impl FnMut(&str, &Value) -> Result<bool>) -> Result<()> {
        let io = |e| Error::io("cannot read the result file", e);
        let mut file = std::io::BufReader::new(std::fs::File::open(&self.path).map_err(io)?);
        for &(_, at) in &self.lines {
            let text = results::line_at(&mut file, at).map_err(io)?;
            if !each(&text, &parse(at, &text)?)? {
                break; // stdout closed
            }
        }
        Ok(())
    }
}

/// A line that carries neither `record` nor `raw`: written before result lines kept them.
pub fn without_records(manifest: &Manifest, path: &Path) -> Error {
    Error::Usage(format!(
        "{}: its lines carry no \"record\" (the run was written by cdpjob {}; result lines keep the source records since 0.2.0, and a line without one was written before or changed by hand): run the job again to get them",
        path.display(),
        manifest.cdpjob_version
    ))
}

/// The source's columns, `_row` and `_reason`; written with the source's delimiter and
/// quote, so that the job that read the source reads this file too. Raw rows are left out,
/// with a note on stderr.
fn source_csv(
    manifest: &Manifest,
    columns: &[String],
    index: &Index,
    out: &mut impl Write,
) -> Result<()> {
    let (delimiter, quote) = csv_dialect(&manifest.job_text);
    let mut w = csv_writer(delimiter, quote, out);
    let header = columns
        .iter()
        .map(String::as_str)
        .chain([ROW_COLUMN, REASON_COLUMN]);
    let _ = w.write_record(header);
    index.try_each(|_, v| {
        let Value::Object(record) = &v["record"] else {
            return Ok(true); // a raw row: no columns to put it in (noted below)
        };
        let mut cells: Vec<String> = columns
            .iter()
            .map(|c| record.get(c).map(cell).unwrap_or_default())
            .collect();
        cells.push(cell(&v["row"]));
        cells.push(reason(v));
        Ok(w.write_record(&cells).is_ok())
    })?;
    let _ = w.flush();
    let raw = &index.raw_rows;
    if !raw.is_empty() {
        let n = raw.len();
        let listed: Vec<String> = raw.iter().take(LISTED).map(u64::to_string).collect();
        let one = n == 1;
        eprintln!(
            "note: {n} row{} never read as a record (row{} {}{}) {} not in the CSV: {} no columns; {} has {} text as \"raw\"",
            if one { "" } else { "s" },
            if one { "" } else { "s" },
            listed.join(", "),
            if n > LISTED { ", …" } else { "" },
            if one { "is" } else { "are" },
            if one { "it has" } else { "they have" },
            index.path.display(),
            if one { "its" } else { "their" },
        );
    }
    Ok(())
}

/// Why a row failed or was rejected, in one cell.
fn reason(line: &Value) -> String {
    if let Some(code) = line.get("error_code") {
        return format!("error {}: {}", cell(code), cell(&line["error_message"]));
    }
    line["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| cell(&e["message"]))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A JSON value as a CSV cell: text as it is, null empty, anything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse(at: u64, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::io(
            "cannot read the result file",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the line at byte {at} is not JSON: {e}"),
            ),
        )
    })
}

/// The delimiter and quote of the job's CSV source, from the job text the run recorded,
/// read as the run read them (`,` and `"` when the source was not CSV).
fn csv_dialect(job_text: &str) -> (u8, u8) {
    let spec = yaml::parse(job_text)
        .ok()
        .and_then(|(doc, _)| doc.get("source").cloned())
        .and_then(|source| serde_json::from_value::<SourceSpec>(source).ok());
    match spec {
        Some(spec) if spec.kind == SourceKind::Csv => {
            let options = CsvOptions::from_spec(&spec);
            (options.delimiter, options.quote)
        }
        _ => (b',', b'"'),
    }
}

fn csv_writer<W: Write>(delimiter: u8, quote: u8, out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}
