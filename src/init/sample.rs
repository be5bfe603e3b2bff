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
    /// CSV: the text encoding, when it is not UTF-8 (the default). Always `None` today; see
    /// [`encoding_of`].
    pub encoding: Option<&'static str>,
    /// xlsx: the sheet read (the first).
    pub sheet: Option<String>,
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
            SourceKind::Jsonl | SourceKind::Json => Shape::Json,
        }
    }
}

/// Read what `init` needs of the file at `path`.
pub fn read(path: &Path) -> Result<Sample> {
    let kind = kind_of(path)?;
    let mut spec = json!({"type": kind.as_str(), "path": path.to_string_lossy()});
    let (mut delimiter, mut encoding, mut sheet) = (None, None, None);
    let mut columns = match kind {
        SourceKind::Csv => {
            let head = head_of(path)?;
            encoding = encoding_of(&head, path)?;
            let d = delimiter_of(&head);
            spec["delimiter"] = Value::from(d.to_string());
            delimiter = Some(d);
            source::csv_columns(&spec_of(&spec), path).map_err(|e| Error::Usage(e.to_string()))?
        }
        SourceKind::Xlsx => {
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
        SourceKind::Jsonl | SourceKind::Json => Vec::new(),
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

/// The first 64 KiB of the file: enough lines to see its delimiter.
fn head_of(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut head = Vec::new();
    file.take(1 << 16)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(head)
}

/// The encoding to name in `source.encoding`, `None` for UTF-8 (the default).
///
/// The seam for other encodings: cdpjob reads UTF-8 only so far, so a file that is not
/// UTF-8 is refused here, saying so; once sources decode GBK, Big5 and the rest, this is
/// where `init` detects the file's encoding and names it for the job.
fn encoding_of(head: &[u8], path: &Path) -> Result<Option<&'static str>> {
    // The head may end inside a character: only a sequence broken before its end counts.
    match std::str::from_utf8(head) {
        Ok(_) => Ok(None),
        Err(e) if e.error_len().is_none() => Ok(None),
        Err(e) => Err(Error::Usage(format!(
            "{} is not UTF-8 text (byte {} is not valid UTF-8; a CSV saved by a Chinese spreadsheet program is often GBK): save it as UTF-8 first",
            path.display(),
            e.valid_up_to() + 1
        ))),
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
    fn utf8_cut_at_the_end_of_the_head_is_still_utf8() {
        let text = "姓名,手机\n王芳,1\n".as_bytes();
        assert_eq!(
            encoding_of(&text[..text.len() - 5], Path::new("x")).unwrap(),
            None
        );
        assert!(encoding_of(b"\xD0\xD5\xC3\xFB,phone\n", Path::new("x")).is_err());
    }
}
