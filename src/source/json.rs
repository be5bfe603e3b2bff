//! JSON Lines and JSON arrays of objects, both streamed: one line, or one array element,
//! in memory at a time.

use std::fmt;
use std::io::{self, BufRead};

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::{Record, RecordSource, RowData};

fn object_or_reason(value: Value) -> Result<RowData, String> {
    match value {
        Value::Object(map) => Ok(RowData::Json(map)),
        other => Err(format!(
            "expected a JSON object, found {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )),
    }
}

/// One JSON object per line; blank lines are not records.
pub struct JsonLinesSource {
    input: Box<dyn BufRead + Send>,
}

impl JsonLinesSource {
    pub fn new(input: Box<dyn BufRead + Send>) -> JsonLinesSource {
        JsonLinesSource { input }
    }
}

impl RecordSource for JsonLinesSource {
    fn for_each(mut self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut line = 0u64;
        let mut row = 0u64;
        loop {
            buf.clear();
            if self.input.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            line += 1;
            let mut bytes = buf.as_slice();
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            row += 1;
            let data = match std::str::from_utf8(bytes) {
                Err(_) => Err(format!("line {line} is not valid UTF-8")),
                Ok(text) => match serde_json::from_str::<Value>(text) {
                    Ok(v) => object_or_reason(v).map_err(|e| format!("line {line}: {e}")),
                    Err(e) => Err(format!("line {line} is not valid JSON: {e}")),
                },
            };
            if !sink(Record { row, line, data }) {
                return Ok(());
            }
        }
    }
}

/// A JSON array of objects, deserialized element by element.
///
/// An element that is not an object is a rejected row. A syntax error leaves no way to
/// find the next element, so it becomes one rejected row saying where reading stopped.
pub struct JsonArraySource {
    input: Box<dyn BufRead + Send>,
}

impl JsonArraySource {
    pub fn new(input: Box<dyn BufRead + Send>) -> JsonArraySource {
        JsonArraySource { input }
    }
}

struct Elements<'a> {
    sink: &'a mut dyn FnMut(Record) -> bool,
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 0u64;
        loop {
            row += 1;
            let (data, stop) = match seq.next_element::<Value>() {
                Ok(None) => return Ok(()),
                Ok(Some(v)) => (
                    object_or_reason(v).map_err(|e| format!("element {row}: {e}")),
                    false,
                ),
                Err(e) => (
                    Err(format!(
                        "the JSON array is broken at or after element {row} ({e}); nothing after it can be read"
                    )),
                    true,
                ),
            };
            if !(self.sink)(Record { row, line: 0, data }) || stop {
                return Ok(());
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl RecordSource for JsonArraySource {
    fn for_each(mut self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        // Skip a UTF-8 byte-order mark, which serde_json does not accept.
        if self.input.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
            self.input.consume(3);
        }
        let mut de = serde_json::Deserializer::from_reader(self.input);
        Elements { sink }.deserialize(&mut de).map_err(|e| {
            if e.is_io() {
                io::Error::other(e)
            } else {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the source is not a JSON array of objects: {e}"),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(src: Box<dyn RecordSource>) -> io::Result<Vec<(u64, Result<String, String>)>> {
        let mut out = Vec::new();
        src.for_each(&mut |r| {
            out.push((
                r.row,
                r.data.map(|d| match d {
                    RowData::Json(m) => Value::Object(m).to_string(),
                    RowData::Csv(_) => unreachable!(),
                }),
            ));
            true
        })?;
        Ok(out)
    }

    fn cursor(s: &str) -> Box<dyn BufRead + Send> {
        Box::new(io::Cursor::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn jsonl_bad_lines_are_rejected_rows() {
        let rows = collect(Box::new(JsonLinesSource::new(cursor(
            "{\"a\":1}\n\n{oops\n[1]\n{\"a\":2}",
        ))))
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], (1, Ok("{\"a\":1}".into())));
        assert!(
            rows[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("line 3 is not valid JSON")
        );
        assert!(
            rows[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("expected a JSON object")
        );
        assert_eq!(rows[3], (4, Ok("{\"a\":2}".into())));
    }

    #[test]
    fn json_array_streams_elements() {
        let rows = collect(Box::new(JsonArraySource::new(cursor(
            "[{\"a\":1}, 5, {\"a\":2}]",
        ))))
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[1].1.is_err());
        assert_eq!(rows[2], (3, Ok("{\"a\":2}".into())));
    }

    #[test]
    fn json_array_syntax_error_is_one_rejected_row() {
        let rows = collect(Box::new(JsonArraySource::new(cursor(
            "[{\"a\":1}, {\"a\": }]",
        ))))
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[1].1.as_ref().unwrap_err().contains("nothing after it"));
    }

    #[test]
    fn json_that_is_not_an_array_fails_the_source() {
        let err = collect(Box::new(JsonArraySource::new(cursor("{\"a\":1}")))).unwrap_err();
        assert!(err.to_string().contains("not a JSON array"), "{err}");
    }
}
