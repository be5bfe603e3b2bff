//! JSON Lines and JSON arrays of objects, both streamed: one line, or one array element,
//! in memory at a time.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::{Record, RecordSource, RowData, Unreadable};

/// An object is a record; any other value is not, and keeps its JSON text as `raw`.
fn object_or_reason(value: Value, context: &str) -> Result<RowData, Unreadable> {
    match value {
        Value::Object(map) => Ok(RowData::Json(map)),
        other => {
            let found = match &other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            Err(Unreadable::new(
                format!("{context}: expected a JSON object, found {found}"),
                other.to_string().as_bytes(),
            ))
        }
    }
}

/// One JSON object per line; blank lines are not records.
pub struct JsonLinesSource {
    input: Box<dyn BufRead + Send>,
    /// What the text was decoded from, for a line that was not valid in it.
    encoding: &'static str,
}

impl JsonLinesSource {
    pub fn new(input: Box<dyn BufRead + Send>, encoding: &'static str) -> JsonLinesSource {
        JsonLinesSource { input, encoding }
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
                Err(_) => Err(Unreadable::new(
                    format!(
                        "line {line} is not valid {} ({})",
                        self.encoding,
                        super::encoding::advice(self.encoding)
                    ),
                    bytes,
                )),
                Ok(text) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(map)) => Ok(RowData::Json(map)),
                    // The line as written, not as re-serialized.
                    Ok(v) => object_or_reason(v, &format!("line {line}"))
                        .map_err(|bad| Unreadable::new(bad.reason, bytes)),
                    Err(e) => Err(Unreadable::new(
                        format!("line {line} is not valid JSON: {e}"),
                        bytes,
                    )),
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
    /// The bytes read since the last element ended: a broken element's text.
    tape: Tape,
    /// Set when reading ended before the array did (a syntax error, or the sink stopped):
    /// what the deserializer then says about the rest of the input is not news.
    ended_early: Rc<std::cell::Cell<bool>>,
}

/// At most this much of a broken element's text is kept as its `raw`.
const MAX_RAW: usize = 1 << 20;

/// The bytes the deserializer has read since [`Tape::clear`] (up to [`MAX_RAW`]): the text of
/// the element being read, and at most the few bytes serde_json read ahead of it.
#[derive(Clone, Default)]
struct Tape(Rc<RefCell<Vec<u8>>>);

impl Tape {
    fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    /// What was read, without the separator and whitespace before the element.
    fn text(&self) -> Vec<u8> {
        let bytes = self.0.borrow();
        let start = bytes
            .iter()
            .position(|b| !(b.is_ascii_whitespace() || *b == b',' || *b == b'['))
            .unwrap_or(bytes.len());
        bytes[start..].to_vec()
    }
}

/// A reader that records what passes through it on a [`Tape`].
struct Taped<R> {
    inner: R,
    tape: Tape,
}

impl<R: Read> Read for Taped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut tape = self.tape.0.borrow_mut();
        let room = MAX_RAW.saturating_sub(tape.len()).min(n);
        tape.extend_from_slice(&buf[..room]);
        Ok(n)
    }
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
            self.tape.clear();
            let (data, stop) = match seq.next_element::<Value>() {
                Ok(None) => return Ok(()),
                Ok(Some(v)) => (object_or_reason(v, &format!("element {row}")), false),
                Err(e) => (
                    Err(Unreadable::new(
                        format!(
                            "the JSON array is broken at or after element {row} ({e}); nothing after it can be read"
                        ),
                        &self.tape.text(),
                    )),
                    true,
                ),
            };
            if !(self.sink)(Record { row, line: 0, data }) || stop {
                self.ended_early.set(true);
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
        let tape = Tape::default();
        let mut de = serde_json::Deserializer::from_reader(Taped {
            inner: self.input,
            tape: tape.clone(),
        });
        let ended_early = Rc::new(std::cell::Cell::new(false));
        let elements = Elements {
            sink,
            tape,
            ended_early: Rc::clone(&ended_early),
        };
        let read = elements.deserialize(&mut de);
        if ended_early.get() {
            return Ok(());
        }
        read.map_err(|e| {
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
        Ok(collect_raw(src)?
            .into_iter()
            .map(|(row, data)| (row, data.map_err(|bad| bad.reason)))
            .collect())
    }

    fn collect_raw(
        src: Box<dyn RecordSource>,
    ) -> io::Result<Vec<(u64, Result<String, Unreadable>)>> {
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

    impl JsonLinesSource {
        fn new_utf8(input: Box<dyn BufRead + Send>) -> JsonLinesSource {
            JsonLinesSource::new(input, "UTF-8")
        }
    }

    #[test]
    fn what_is_not_a_record_keeps_its_text() {
        let rows = collect_raw(Box::new(JsonLinesSource::new_utf8(Box::new(
            io::Cursor::new(b"{\"a\":1}\r\n{oops\r\n[1, 2]\n{\"b\": \"Z\xFCrich\"}\n".to_vec()),
        ))))
        .unwrap();
        let raw = |i: usize| rows[i].1.as_ref().unwrap_err().raw.clone();
        assert_eq!(
            (raw(1), raw(2), raw(3)),
            (
                "{oops".into(),
                "[1, 2]".into(),
                "{\"b\": \"Z\u{FFFD}rich\"}".into()
            )
        );
        let rows = collect_raw(Box::new(JsonArraySource::new(cursor(
            "[{\"a\":1},\n 5, {\"a\":2},\n  {\"a\": tru, \"b\": 1}]",
        ))))
        .unwrap();
        assert_eq!(rows[1].1.as_ref().unwrap_err().raw, "5");
        assert_eq!(rows[2].1.as_ref().unwrap(), "{\"a\":2}");
        let broken = &rows[3].1.as_ref().unwrap_err().raw;
        assert!(
            broken.starts_with("{\"a\": tru") && !broken.contains("\"b\": 1"),
            "a syntax error: the element's text up to where reading stopped: {broken:?}"
        );
    }

    fn cursor(s: &str) -> Box<dyn BufRead + Send> {
        Box::new(io::Cursor::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn jsonl_bad_lines_are_rejected_rows() {
        let rows = collect(Box::new(JsonLinesSource::new_utf8(cursor(
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
