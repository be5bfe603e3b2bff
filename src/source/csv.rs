//! CSV, read line by line through `csv-core` so a broken record costs one row, not the file.
//!
//! The `csv` crate's reader treats an unterminated quote as a field that runs to the next
//! quote, possibly to the end of the file, swallowing every row in between. We feed physical
//! lines to `csv-core` ourselves instead: a record may span lines only while it is inside
//! quotes, and if such a multi-line record then has the wrong number of fields (or the file
//! ends inside the quote, or the record grows past a sane size) we reject its first line as
//! an unterminated quote and parse again from the line after it.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::sync::Arc;

use csv_core::ReadRecordResult;

use super::{
    CsvRow, Header, MAX_ROW_TEXT, OpenError, Record, RecordSource, RowData, SourceSpec, Unreadable,
    end_at,
};

/// A record inside quotes may span at most this many lines or bytes before we decide its
/// opening quote was never closed.
const MAX_RECORD_LINES: usize = 1_000;
const MAX_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    pub columns: Option<Vec<String>>,
    /// The encoding the text was decoded from, for the message of a field that was not
    /// valid in it (the decoder leaves such bytes invalid UTF-8).
    pub encoding: &'static str,
}

impl CsvOptions {
    pub fn from_spec(spec: &SourceSpec) -> CsvOptions {
        CsvOptions {
            delimiter: single_byte(&spec.delimiter, b','),
            quote: single_byte(&spec.quote, b'"'),
            header: spec.header,
            columns: spec.columns.clone(),
            encoding: "UTF-8",
        }
    }

    /// These options for text decoded from `encoding`.
    pub fn encoded(self, encoding: &'static str) -> CsvOptions {
        CsvOptions { encoding, ..self }
    }
}

/// The schema guarantees one character; a non-ASCII one is refused by `validate`.
fn single_byte(s: &str, default: u8) -> u8 {
    match s.as_bytes() {
        [b] => *b,
        _ => default,
    }
}

enum Fed {
    Complete,
    NeedMore,
}

/// Splits input into records; knows nothing about rows or headers.
struct RecordSplitter {
    input: Box<dyn BufRead + Send>,
    core: csv_core::Reader,
    /// Lines given back after a broken multi-line record, to be parsed again.
    pending: VecDeque<(u64, Vec<u8>)>,
    next_line_no: u64,
    at_start: bool,
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// The physical lines of the last record split, kept (moved, not copied) so that a
    /// record found bad afterwards can still be given with its text.
    record_lines: Vec<(u64, Vec<u8>)>,
    /// Line buffers of records already handed on, read into again: a line costs no
    /// allocation (nor the regrowth of a fresh buffer up to the line's length).
    spare: Vec<Vec<u8>>,
    encoding: &'static str,
}

/// How many line buffers, of at most how many bytes, are kept for reuse: one line is the
/// usual record; a long multi-line one is not worth holding on to.
const SPARE_LINES: usize = 4;
const SPARE_LINE_BYTES: usize = 64 << 10;

/// What the splitter found.
enum Split {
    /// Field bytes and end offsets, and the line the record starts on.
    Fields { line: u64 },
    /// A record that cannot be parsed: the reason and the line rejected.
    Broken { line: u64, bad: Unreadable },
}

impl RecordSplitter {
    fn new(input: Box<dyn BufRead + Send>, opts: &CsvOptions) -> RecordSplitter {
        let core = csv_core::ReaderBuilder::new()
            .delimiter(opts.delimiter)
            .quote(opts.quote)
            .build();
        RecordSplitter {
            input,
            core,
            pending: VecDeque::new(),
            next_line_no: 1,
            at_start: true,
            out: vec![0; 4096],
            out_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            record_lines: Vec::new(),
            spare: Vec::new(),
            encoding: opts.encoding,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        if self.input.read_until(b'\n', &mut buf)? == 0 {
            self.spare.push(buf);
            return Ok(None);
        }
        if self.at_start {
            self.at_start = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                buf.drain(..3);
            }
        }
        if buf.last() != Some(&b'\n') {
            // The last line of a file without a final newline: terminate it, so that a
            // record still open after it can only be an unterminated quote.
            buf.push(b'\n');
        }
        let no = self.next_line_no;
        self.next_line_no += 1;
        Ok(Some((no, buf)))
    }

    fn feed(&mut self, mut input: &[u8]) -> Fed {
        loop {
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::InputEmpty => return Fed::NeedMore,
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                // Anything left of the line is its terminator (`\r\n` split in two).
                ReadRecordResult::Record | ReadRecordResult::End => return Fed::Complete,
            }
        }
    }

    /// The next record, with `expected` fields if known (to catch runaway quotes).
    fn next(&mut self, expected: Option<usize>) -> io::Result<Option<Split>> {
        let mut lines = std::mem::take(&mut self.record_lines);
        for (_, buf) in lines.drain(..) {
            if self.spare.len() < SPARE_LINES && buf.capacity() <= SPARE_LINE_BYTES {
                self.spare.push(buf);
            }
        }
        let mut bytes = 0usize;
        self.core.reset();
        self.out_len = 0;
        self.ends_len = 0;
        loop {
            let Some((no, line)) = self.next_line()? else {
                if lines.is_empty() {
                    return Ok(None);
                }
                // End of input inside a quoted field.
                return Ok(Some(self.broken(lines)));
            };
            if lines.is_empty() && line.iter().all(|b| *b == b'\n' || *b == b'\r') {
                if self.spare.len() < SPARE_LINES {
                    self.spare.push(line);
                }
                continue; // blank lines between records are not records
            }
            bytes += line.len();
            let fed = self.feed(&line);
            lines.push((no, line));
            match fed {
                Fed::Complete => {
                    let first = lines[0].0;
                    let wrong_count = expected.is_some_and(|n| n != self.ends_len);
                    if lines.len() > 1 && wrong_count {
                        return Ok(Some(self.broken(lines)));
                    }
                    self.record_lines = lines;
                    return Ok(Some(Split::Fields { line: first }));
                }
                Fed::NeedMore => {
                    if lines.len() >= MAX_RECORD_LINES || bytes >= MAX_RECORD_BYTES {
                        return Ok(Some(self.broken(lines)));
                    }
                }
            }
        }
    }

    /// Reject the first line of a runaway record; give the others back to be read again.
    fn broken(&mut self, mut lines: Vec<(u64, Vec<u8>)>) -> Split {
        let (first, text) = lines.remove(0);
        for l in lines.into_iter().rev() {
            self.pending.push_front(l);
        }
        Split::Broken {
            line: first,
            bad: Unreadable::new(
                format!("unterminated quoted field starting on line {first}"),
                &text,
            ),
        }
    }

    /// The text of the last record split, all its lines, for one found bad after the split.
    fn record_text(&self) -> Vec<u8> {
        self.record_lines
            .iter()
            .flat_map(|(_, l)| l.iter().copied())
            .collect()
    }

    fn fields(&self) -> (&[u8], &[usize]) {
        (&self.out[..self.out_len], &self.ends[..self.ends_len])
    }
}

/// A CSV source with its header.
pub struct CsvSource {
    splitter: RecordSplitter,
    header: Arc<Header>,
}

impl CsvSource {
    pub fn new(input: Box<dyn BufRead + Send>, opts: CsvOptions) -> Result<CsvSource, OpenError> {
        let mut splitter = RecordSplitter::new(input, &opts);
        let names = if opts.header {
            read_header_record(&mut splitter)?
        } else {
            opts.columns.clone().unwrap_or_default()
        };
        Ok(CsvSource {
            splitter,
            header: Arc::new(Header::new(names)),
        })
    }

    pub fn header(&self) -> &Arc<Header> {
        &self.header
    }
}

fn read_header_record(splitter: &mut RecordSplitter) -> Result<Vec<String>, OpenError> {
    let io_err = |err| OpenError::Invalid(format!("cannot read the CSV header: {err}"));
    match splitter.next(None).map_err(io_err)? {
        None => Ok(Vec::new()),
        Some(Split::Broken { bad, .. }) => Err(OpenError::Invalid(format!(
            "the CSV header row cannot be read: {}",
            bad.reason
        ))),
        Some(Split::Fields { .. }) => {
            let (bytes, ends) = splitter.fields();
            let text = std::str::from_utf8(bytes).map_err(|_| {
                OpenError::Invalid(format!(
                    "the CSV header row is not valid {}: {}",
                    splitter.encoding,
                    super::encoding::advice(splitter.encoding)
                ))
            })?;
            let mut start = 0;
            Ok(ends
                .iter()
                .map(|&end| {
                    let name = text.get(start..end).unwrap_or_default().trim().to_string();
                    start = end;
                    name
                })
                .collect())
        }
    }
}

/// Just the column names of a CSV file (for `validate`).
pub fn read_csv_header(
    input: Box<dyn BufRead + Send>,
    opts: &CsvOptions,
) -> Result<Vec<String>, OpenError> {
    let mut splitter = RecordSplitter::new(input, opts);
    read_header_record(&mut splitter)
}

impl RecordSource for CsvSource {
    fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let CsvSource {
            mut splitter,
            header,
        } = *self;
        let expected = header.names().len();
        let mut row = 0u64;
        while let Some(split) = splitter.next(Some(expected))? {
            row += 1;
            let record = match split {
                Split::Broken { line, bad } => Record {
                    row,
                    line,
                    data: Err(bad),
                },
                Split::Fields { line } => {
                    let (bytes, ends) = splitter.fields();
                    let data = to_row(&header, bytes, ends, expected, line, splitter.encoding)
                        .map_err(|reason| Unreadable::new(reason, &splitter.record_text()));
                    Record { row, line, data }
                }
            };
            if !sink(record) {
                break;
            }
        }
        Ok(())
    }
}

fn to_row(
    header: &Arc<Header>,
    bytes: &[u8],
    ends: &[usize],
    expected: usize,
    line: u64,
    encoding: &str,
) -> Result<RowData, String> {
    if ends.len() != expected {
        return Err(format!(
            "line {line}: expected {expected} fields as in the header, found {}",
            ends.len()
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let field = ends.iter().position(|&end| at < end).unwrap_or(0);
            let name = header.names().get(field).map(String::as_str).unwrap_or("?");
            return Err(format!(
                "line {line}: field `{name}` is not valid {encoding} ({})",
                super::encoding::advice(encoding)
            ));
        }
    };
    if !ends.iter().all(|&e| text.is_char_boundary(e)) {
        return Err(format!("line {line}: a field is not valid {encoding}"));
    }
    if text.len() > MAX_ROW_TEXT {
        return Err(format!(
            "line {line}: the record is {} bytes long, more than the {MAX_ROW_TEXT} a record may have",
            text.len()
        ));
    }
    Ok(RowData::Csv(CsvRow {
        header: Arc::clone(header),
        text: text.to_string(),
        ends: ends.iter().map(|&e| end_at(e)).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> Vec<(u64, u64, Result<Vec<String>, String>)> {
        read_with_raw(input)
            .into_iter()
            .map(|(row, line, data)| (row, line, data.map_err(|bad| bad.reason)))
            .collect()
    }

    fn read_with_raw(input: &[u8]) -> Vec<(u64, u64, Result<Vec<String>, Unreadable>)> {
        let opts = CsvOptions {
            delimiter: b',',
            quote: b'"',
            header: true,
            columns: None,
            encoding: "UTF-8",
        };
        let src = CsvSource::new(Box::new(io::Cursor::new(input.to_vec())), opts).unwrap();
        let mut out = Vec::new();
        Box::new(src)
            .for_each(&mut |r| {
                let data = r.data.map(|d| match d {
                    RowData::Csv(c) => c
                        .header
                        .names()
                        .iter()
                        .map(|n| c.get(n).unwrap().to_string())
                        .collect(),
                    RowData::Json(_) => unreachable!(),
                });
                out.push((r.row, r.line, data));
                true
            })
            .unwrap();
        out
    }

    fn ok(v: &[&str]) -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn plain_quoted_bom_crlf_and_no_final_newline() {
        let rows = read(b"\xEF\xBB\xBFa,b\r\n1,\"x, y\"\r\n\r\n2,\"he said \"\"hi\"\"\"\r\n3,last");
        assert_eq!(
            rows,
            vec![
                (1, 2, ok(&["1", "x, y"])),
                (2, 4, ok(&["2", "he said \"hi\""])),
                (3, 5, ok(&["3", "last"])),
            ]
        );
    }

    #[test]
    fn quoted_fields_may_span_lines() {
        let rows = read(b"a,b\n1,\"line one\nline two\"\n2,z\n");
        assert_eq!(
            rows,
            vec![
                (1, 2, ok(&["1", "line one\nline two"])),
                (2, 4, ok(&["2", "z"]))
            ]
        );
    }

    #[test]
    fn wrong_field_count_rejects_one_row_and_reading_goes_on() {
        let rows = read(b"a,b\n1,x\n2,y,extra\n3\n4,w\n");
        assert_eq!(rows[0], (1, 2, ok(&["1", "x"])));
        assert!(
            rows[1]
                .2
                .as_ref()
                .unwrap_err()
                .contains("expected 2 fields")
        );
        assert!(rows[2].2.as_ref().unwrap_err().contains("found 1"));
        assert_eq!(rows[3], (4, 5, ok(&["4", "w"])));
    }

    #[test]
    fn an_unterminated_quote_mid_file_costs_one_row() {
        let rows = read(b"a,b\n1,x\n2,\"broken\n3,y\n4,z\n");
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(rows[0], (1, 2, ok(&["1", "x"])));
        assert_eq!(rows[1].0, 2);
        assert!(
            rows[1]
                .2
                .as_ref()
                .unwrap_err()
                .contains("unterminated quoted field starting on line 3")
        );
        assert_eq!(rows[2], (3, 4, ok(&["3", "y"])));
        assert_eq!(rows[3], (4, 5, ok(&["4", "z"])));
    }

    #[test]
    fn an_unterminated_quote_on_the_last_line() {
        let rows = read(b"a,b\n1,x\n2,\"open");
        assert_eq!(rows.len(), 2);
        assert!(rows[1].2.as_ref().unwrap_err().contains("unterminated"));
    }

    #[test]
    fn invalid_utf8_rejects_the_record_only() {
        let rows = read(b"name,city\nok,Paris\nbad,Z\xFCrich\nok2,Rome\n");
        assert_eq!(rows[0].2, ok(&["ok", "Paris"]));
        assert!(
            rows[1]
                .2
                .as_ref()
                .unwrap_err()
                .contains("field `city` is not valid UTF-8")
        );
        assert_eq!(rows[2].2, ok(&["ok2", "Rome"]));
    }

    #[test]
    fn a_bad_record_keeps_its_text_lossily_decoded() {
        let rows = read_with_raw(
            b"a,b\r\n1,x,extra\r\n2,\"two\nlines\"\n3,\"Z\xFCrich\nr\"\n4,\"open\n5,y\n",
        );
        let raw = |i: usize| rows[i].2.as_ref().unwrap_err().raw.clone();
        assert_eq!(raw(0), "1,x,extra");
        assert_eq!(
            rows[1].2.clone().map_err(|b| b.reason),
            ok(&["2", "two\nlines"])
        );
        assert_eq!(
            raw(2),
            "3,\"Z\u{FFFD}rich\nr\"",
            "a record over two lines keeps both"
        );
        assert_eq!(raw(3), "4,\"open", "an unterminated quote: its first line");
        assert_eq!(rows[4].2.clone().map_err(|b| b.reason), ok(&["5", "y"]));
    }

    #[test]
    fn header_only_and_empty_files_have_no_rows() {
        assert!(read(b"a,b\n").is_empty());
        assert!(read(b"").is_empty());
    }
}
