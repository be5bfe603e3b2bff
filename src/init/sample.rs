//! What `init` learns of a data file before guessing a job for it: its type (by extension),
//! for CSV its delimiter and encoding, for a workbook its first sheet, then the columns and
//! up to [`SAMPLE_ROWS`] records read through the same source readers a run uses — so the
//! job it writes reads the file exactly as `init` did.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};

use super::values::Shape;
use crate::error::{Error, Result};
use crate::source::{self, RowData, SheetOptions, SourceKind, SourceSpec};

/// How many records the guesses look at.
pub const SAMPLE_ROWS: usize = 200;

/// What the file is and holds.
#[derive(Debug)]
pub struct Sample {
    pub kind: SourceKind,
    /// CSV: the delimiter found (`,` when nothing else fits).
    pub delimiter: Option<char>,
    /// CSV: the text encoding `encoding: auto` finds, when it is not UTF-8 (the default),
    /// as the job names it (`auto` for one it has no label for); see [`head_of`].
    pub encoding: Option<&'static str>,
    /// xlsx: the sheet read (the first).
    pub sheet: Option<String>,
    /// xlsx: the header's row when it is not the first (a title above it).
    pub header_row: Option<u32>,
    /// The columns (JSON: keys in first-seen order).
    pub columns: Vec<String>,
    /// For each column, its non-empty values among the sampled records, as text.
    pub values: Vec<Vec<String>>,
    /// For each column, whether it held a JSON array (tags as a list).
    pub lists: Vec<bool>,
}

impl Sample {
    /// What column `i`'s values are, for the expression that reads them.
    pub fn shape(&self, i: usize) -> Shape {
        match self.kind {
            SourceKind::Csv | SourceKind::Xlsx => Shape::Text,
            SourceKind::Jsonl | SourceKind::Json if self.lists[i] => Shape::JsonList,
            SourceKind::Jsonl | SourceKind::Json | SourceKind::Sql => Shape::Json,
        }
    }
}

/// Read what `init` needs of the file at `path`.
pub fn read(path: &Path) -> Result<Sample> {
    let kind = kind_of(path)?;
    let mut spec = json!({"type": kind.as_str(), "path": path.to_string_lossy()});
    let (mut delimiter, mut encoding, mut sheet, mut header_row) = (None, None, None, None);
    let mut columns = match kind {
        SourceKind::Csv => {
            let (head, label) = head_of(path)?;
            encoding = label;
            if let Some(e) = encoding {
                spec["encoding"] = Value::from(e);
            }
            let d = delimiter_of(&head);
            spec["delimiter"] = Value::from(d.to_string());
            delimiter = Some(d);
            source::csv_columns(&spec_of(&spec), path).map_err(|e| Error::Usage(e.to_string()))?
        }
        SourceKind::Xlsx => {
            let row = source::likely_header_row(path, &SheetOptions::from_spec(&spec_of(&spec)))
                .map_err(|e| Error::Usage(e.to_string()))?;
            if row != 1 {
                spec["header_row"] = Value::from(row);
                header_row = Some(row);
            }
            let opened = source::SheetSource::open(
                path,
                &SheetOptions::from_spec(&spec_of(&spec)),
                Default::default(),
            )
            .map_err(|e| Error::Usage(e.to_string()))?;
            sheet = Some(opened.sheet().to_string());
            spec["sheet"] = Value::from(opened.sheet());
            opened.columns().to_vec()
        }
        // `kind_of` never names a database: init reads files.
        SourceKind::Jsonl | SourceKind::Json | SourceKind::Sql => Vec::new(),
    };
    let mut values: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    let mut lists = vec![false; columns.len()];
    let records = source::open(&spec_of(&spec), path).map_err(|e| Error::Usage(e.to_string()))?;
    let mut seen = 0;
    records
        .for_each(&mut |record| {
            if let Ok(RowData::Json(_) | RowData::Csv(_)) = &record.data
                && let Some(Value::Object(fields)) = record.as_json()
            {
                for (name, value) in fields {
                    let i = match columns.iter().position(|c| *c == name) {
                        Some(i) => i,
                        None => {
                            columns.push(name);
                            values.push(Vec::new());
                            lists.push(false);
                            columns.len() - 1
                        }
                    };
                    lists[i] |= value.is_array();
                    if let Some(text) = text_of(&value) {
                        values[i].push(text);
                    }
                }
            }
            seen += 1;
            seen < SAMPLE_ROWS
        })
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(Sample {
        kind,
        delimiter,
        encoding,
        sheet,
        header_row,
        columns,
        values,
        lists,
    })
}

fn spec_of(spec: &Value) -> SourceSpec {
    serde_json::from_value(spec.clone()).expect("a source block init built")
}

/// A value as the text a template would print; `None` for what is empty or not a scalar.
fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items
            .iter()
            .filter_map(text_of)
            .collect::<Vec<_>>()
            .join(","),
        Value::Null | Value::Object(_) => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The source type a file's extension says.
fn kind_of(path: &Path) -> Result<SourceKind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "csv" | "tsv" | "txt" => SourceKind::Csv,
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => SourceKind::Xlsx,
        "jsonl" | "ndjson" => SourceKind::Jsonl,
        "json" => SourceKind::Json,
        _ => {
            return Err(Error::Usage(format!(
                "init reads .csv (.tsv, .txt), .xlsx (.xlsm, .xls, .xlsb, .ods), .jsonl (.ndjson) and .json files; {} is none of them",
                path.display()
            )));
        }
    })
}

/// The first 64 KiB of the file's text, decompressed and decoded as `encoding: auto` reads
/// it (a BOM, else UTF-8 if valid, else the detector's guess), and the encoding to name in
/// `source.encoding` (`None` for UTF-8, the default): enough lines to see its delimiter.
fn head_of(path: &Path) -> Result<(Vec<u8>, Option<&'static str>)> {
    let unreadable = |e: String| Error::Usage(format!("cannot read {}: {e}", path.display()));
    let opts = source::TextOptions {
        compression: None,
        encoding: Some("auto"),
    };
    let text = source::text::open(path, opts, Default::default())
        .map_err(|e| unreadable(e.to_string()))?;
    let label = label_of(text.encoding.name());
    let mut head = Vec::new();
    text.reader
        .take(1 << 16)
        .read_to_end(&mut head)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok((head, label))
}

/// The `source.encoding` value that reads as `name` (an encoding's WHATWG name); `None`
/// for UTF-8, the default. An encoding the job file has no label for (Windows-1252, which
/// the detector picks for a French or German list saved by Excel, or any other) is `auto`:
/// it looks at the same first 64 KiB and so picks the same encoding again.
fn label_of(name: &str) -> Option<&'static str> {
    match name {
        "GBK" => Some("gbk"),
        "gb18030" => Some("gb18030"),
        "Big5" => Some("big5"),
        "Shift_JIS" => Some("shift_jis"),
        "EUC-KR" => Some("euc-kr"),
        "UTF-16LE" | "UTF-16BE" => Some("utf-16"),
        "UTF-8" => None,
        _ => Some("auto"),
    }
}

/// The delimiter the file's first lines split on consistently into the most columns, among
/// `,` `;` tab and `|`; `,` when none splits them.
fn delimiter_of(head: &[u8]) -> char {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    // Only whole lines: the 64 KiB may end inside one.
    let whole = match head.iter().rposition(|&b| b == b'\n') {
        Some(end) if end + 1 < head.len() => &head[..=end],
        _ => head,
    };
    let mut best = (',', 1usize, false);
    for d in [',', ';', '\t', '|'] {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(d as u8)
            .has_headers(false)
            .flexible(true)
            .from_reader(whole);
        let counts: Vec<usize> = reader
            .byte_records()
            .take(20)
            .filter_map(|r| r.ok())
            .map(|r| r.len())
            .collect();
        let Some(&header) = counts.first() else {
            continue;
        };
        let steady = counts.iter().all(|&n| n == header);
        // A delimiter that splits every line alike beats one that does not; then more columns.
        if header > 1 && (steady, header) > (best.2, best.1) {
            best = (d, header, steady);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_every_line_splits_on_alike() {
        assert_eq!(delimiter_of(b"name,phone\nAnn,1\n"), ',');
        assert_eq!(
            delimiter_of(b"name;phone;email\nAnn;1;a@x\nBo, Jr;2;b@x\n"),
            ';'
        );
        assert_eq!(delimiter_of(b"name\tphone\nAnn\t1\n"), '\t');
        assert_eq!(delimiter_of(b"\xEF\xBB\xBFa|b|c\n1|2|3\n"), '|');
        // A comma inside quotes does not split.
        assert_eq!(delimiter_of(b"name;note\nAnn;\"a, b, c\"\n"), ';');
        assert_eq!(delimiter_of(b"name\nAnn\n"), ',');
    }

    #[test]
    fn encodings_are_named_as_the_job_file_spells_them() {
        assert_eq!(label_of("UTF-8"), None);
        assert_eq!(label_of("GBK"), Some("gbk"));
        assert_eq!(label_of("UTF-16BE"), Some("utf-16"));
        assert_eq!(label_of("windows-1252"), Some("auto"));
    }
}
