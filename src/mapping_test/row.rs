//! A test case's `row` as the record a source would have read (SPEC §12 R22): the mapping
//! must see the same values a run would, or a test would pass that the run then fails. A
//! CSV, a sheet or a database gives text, so YAML's `5` is `"5"` there; JSON sources give
//! values with their types, as written.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::job::model::SourceKind;
use crate::source::{CsvRow, Ends, Header, Record, RowData, end_at};

/// The record of `row` for a source of `kind`. `read` are the columns the templates read
/// (`row.X`, each once): a text source has every column in every row, so one the case leaves out is
/// an empty cell (a NULL for sql) rather than an error no run would ever meet.
pub fn record(kind: SourceKind, row: &Map<String, Value>, read: &[String]) -> Record {
    let data = match kind {
        SourceKind::Json | SourceKind::Jsonl => RowData::Json(row.clone()),
        SourceKind::Sql => {
            let mut map: Map<String, Value> = row
                .iter()
                .map(|(k, v)| {
                    let v = if v.is_null() {
                        Value::Null
                    } else {
                        Value::String(text(v))
                    };
                    (k.clone(), v)
                })
                .collect();
            for column in read {
                map.entry(column.clone()).or_insert(Value::Null);
            }
            RowData::Json(map)
        }
        SourceKind::Csv | SourceKind::Xlsx => {
            let mut names: Vec<String> = row.keys().cloned().collect();
            names.extend(read.iter().filter(|c| !row.contains_key(*c)).cloned());
            let mut cells = String::new();
            let mut ends = Ends::with_capacity(names.len());
            for name in &names {
                if let Some(v) = row.get(name) {
                    cells.push_str(&text(v));
                }
                ends.push(end_at(cells.len()));
            }
            RowData::Csv(CsvRow {
                header: Arc::new(Header::new(names)),
                text: cells,
                ends,
            })
        }
    };
    // The first row of its source: what `row_number` is in a test.
    Record {
        row: 1,
        line: 0,
        data: Ok(data),
    }
}

/// A YAML value as a text source holds it: `5` → `5`, `true` → `true`, null → empty.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_json(r: &Record) -> Value {
        r.as_json().unwrap()
    }

    #[test]
    fn text_sources_see_text_and_every_column() {
        let row = serde_json::json!({"phone": 8613912345678_i64, "vip": true, "name": "Ann", "gone": null});
        let read = vec!["name".to_string(), "email".to_string()];
        let csv = record(SourceKind::Csv, row.as_object().unwrap(), &read);
        assert_eq!(
            as_json(&csv),
            serde_json::json!({"phone": "8613912345678", "vip": "true", "name": "Ann", "gone": "", "email": ""})
        );
        let sql = record(SourceKind::Sql, row.as_object().unwrap(), &read);
        assert_eq!(
            as_json(&sql),
            serde_json::json!({"phone": "8613912345678", "vip": "true", "name": "Ann", "gone": null, "email": null})
        );
        let json = record(SourceKind::Jsonl, row.as_object().unwrap(), &read);
        assert_eq!(as_json(&json), row);
    }
}
