//! Rows copied from another run: one JSON line each, `{"row": n, "line": l, "record": {…}}`,
//! read back with their original row and line numbers. This is what a retry reads (SPEC
//! §7): the failed and rejected records of an earlier run, copied into the retry's own run
//! directory so it resumes whatever becomes of the earlier one. A record that came from a
//! CSV source is made a CSV row again, its columns in the source's order, so the templates see exactly
//! what they saw the first time.

use std::io::{self, BufRead};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CsvRow, Ends, Header, Record, RecordSource, RowData, end_at};

/// One line of the copy.
#[derive(Debug, Serialize, Deserialize)]
pub struct CopiedRow {
    pub row: u64,
    /// The physical line the record started on in the original source, if it had lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// The copy, read as a source.
pub struct CopiedRows {
    input: Box<dyn BufRead + Send>,
    /// The CSV header of the source the rows came from; `None` for JSON sources.
    header: Option<Arc<Header>>,
}

impl CopiedRows {
    pub fn new(input: Box<dyn BufRead + Send>, csv_columns: Option<Vec<String>>) -> CopiedRows {
        CopiedRows {
            input,
            header: csv_header(csv_columns),
        }
    }
}

/// The header copied rows of a CSV source are read with (`None`: a JSON source).
pub fn csv_header(csv_columns: Option<Vec<String>>) -> Option<Arc<Header>> {
    csv_columns.map(|names| Arc::new(Header::new(names)))
}

impl CopiedRow {
    /// The record again: a CSV row of `header`'s columns, or the JSON object.
    pub fn into_record(self, header: Option<&Arc<Header>>) -> Record {
        let data = match header {
            Some(header) => RowData::Csv(csv_row(header, &self.record)),
            None => RowData::Json(self.record),
        };
        Record {
            row: self.row,
            line: self.line.unwrap_or(0),
            data: Ok(data),
        }
    }
}

/// A CSV row of `header`'s columns from a record (a column it lacks is empty).
fn csv_row(header: &Arc<Header>, record: &serde_json::Map<String, serde_json::Value>) -> CsvRow {
    let mut text = String::new();
    let mut ends = Ends::with_capacity(header.names().len());
    for name in header.names() {
        match record.get(name) {
            Some(serde_json::Value::String(s)) => text.push_str(s),
            Some(serde_json::Value::Null) | None => {}
            Some(other) => text.push_str(&other.to_string()),
        }
        ends.push(end_at(text.len()));
    }
    CsvRow {
        header: Arc::clone(header),
        text,
        ends,
    }
}

impl RecordSource for CopiedRows {
    fn for_each(mut self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let mut buf = String::new();
        let mut line = 0u64;
        loop {
            buf.clear();
            if self.input.read_line(&mut buf)? == 0 {
                return Ok(());
            }
            line += 1;
            if buf.trim().is_empty() {
                continue;
            }
            // The copy is ours: a line that does not read is damage, not a bad row.
            let copied: CopiedRow = serde_json::from_str(&buf).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {line} of the copied rows is damaged: {e}"),
                )
            })?;
            if !sink(copied.into_record(self.header.as_ref())) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, columns: Option<Vec<String>>) -> io::Result<Vec<Record>> {
        let src = CopiedRows::new(Box::new(io::Cursor::new(text.as_bytes().to_vec())), columns);
        let mut out = Vec::new();
        Box::new(src).for_each(&mut |r| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn rows_keep_their_numbers_and_csv_rows_their_columns() {
        let text = "{\"row\":7,\"record\":{\"b\":\"2\",\"a\":\"1\"}}\n\n{\"row\":12,\"record\":{\"a\":\"x\"}}\n";
        let rows = read(text, Some(vec!["a".into(), "b".into()])).unwrap();
        assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), vec![7, 12]);
        let Ok(RowData::Csv(first)) = &rows[0].data else {
            panic!("{:?}", rows[0])
        };
        assert_eq!((first.get("a"), first.get("b")), (Some("1"), Some("2")));
        assert_eq!(
            rows[1].as_json().unwrap(),
            serde_json::json!({"a": "x", "b": ""})
        );
        let rows = read(text, None).unwrap();
        assert_eq!(
            rows[0].as_json().unwrap().to_string(),
            r#"{"b":"2","a":"1"}"#
        );
    }

    #[test]
    fn a_damaged_copy_stops_the_source() {
        let err = read("{\"row\":1,\"record\":{}}\n{\"row\":", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
