//! Where records come from: CSV, JSON Lines and JSON arrays, each read as a stream so that
//! memory stays flat however large the input is.
//!
//! A source pushes [`Record`]s to a callback in file order. Each record carries its 1-based
//! row number (SPEC §4: for CSV, not counting the header). A record that cannot be read —
//! invalid UTF-8, a wrong field count, an unterminated quote, a line that is not JSON —
//! still gets its row number and arrives as `Err(Unreadable)`: the reason and its text, so
//! it is counted as rejected with what it held (SPEC §12 R9 `"raw"`) and reading goes on.
//! Only I/O failures stop a source.
//!
//! Below the readers, `text.rs` gives them UTF-8: the file decompressed (`compression.rs`)
//! and decoded from its encoding (`encoding.rs`).

mod cell;
pub mod compression;
mod csv;
pub mod delimiter;
pub mod encoding;
mod json;
pub mod records;
mod sheet;
pub mod spec;
pub mod spool;
pub mod sql;
pub mod text;

use std::collections::HashMap;
use std::io::{self, BufRead, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use self::csv::{CsvOptions, CsvSource, read_csv_header};
pub use self::json::{JsonArraySource, JsonLinesSource};
pub use self::sheet::{SheetError, SheetOptions, SheetSource, likely_header_row, sheet_columns};
pub use self::spec::SheetRef;
pub use self::spec::{SourceKind, SourceSpec};
pub use self::text::TextOptions;

/// One input record.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based position among the source's records.
    pub row: u64,
    /// 1-based physical line where the record starts (for messages).
    pub line: u64,
    /// The fields, or why the record could not be read.
    pub data: Result<RowData, Unreadable>,
}

/// A record that could not be read as one: why, and its text as far as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub reason: String,
    /// The record's bytes, lossily decoded (invalid UTF-8 becomes U+FFFD), without the
    /// line terminator that ended it. Only bad records pay for this copy.
    pub raw: String,
}

impl Unreadable {
    pub fn new(reason: impl Into<String>, raw: &[u8]) -> Unreadable {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        Unreadable {
            reason: reason.into(),
            raw: String::from_utf8_lossy(raw).into_owned(),
        }
    }
}

impl Record {
    /// The physical line the record starts on, for sources that have lines (CSV, JSON
    /// Lines); `None` for a JSON array's elements and rows copied from another run that
    /// did not say.
    pub fn line_number(&self) -> Option<u64> {
        // A sheet's record has a `sheet_row` instead (its `line` holds that).
        let sheet = matches!(&self.data, Ok(RowData::Csv(row)) if row.header.is_sheet());
        (self.line > 0 && !sheet).then_some(self.line)
    }

    /// The record as it was read, for result lines (SPEC §7 `"record"`): CSV columns →
    /// text, a JSON object as it is. `None` for a record that could not be read.
    pub fn as_json(&self) -> Option<serde_json::Value> {
        match &self.data {
            Ok(RowData::Json(map)) => Some(serde_json::Value::Object(map.clone())),
            Ok(RowData::Csv(row)) => {
                let mut map = serde_json::Map::new();
                for (i, name) in row.header.names().iter().enumerate() {
                    let start = if i == 0 { 0 } else { row.ends[i - 1] as usize };
                    let text = row
                        .text
                        .get(start..row.ends[i] as usize)
                        .unwrap_or_default();
                    // A name twice: the first column's, as `row.X` sees it.
                    map.entry(name.clone())
                        .or_insert_with(|| serde_json::Value::from(text));
                }
                Some(serde_json::Value::Object(map))
            }
            Err(_) => None,
        }
    }

    /// Put what a result line says of its source row into `line` (a JSON object):
    /// `"record"` when it was read as one, else `"raw"`, its text (SPEC §12 R9); for a
    /// spreadsheet's row, `"sheet_row"`, the row number the spreadsheet shows (R13).
    pub fn attach_to(&self, line: &mut serde_json::Value) {
        match &self.data {
            Err(bad) => line["raw"] = serde_json::Value::from(bad.raw.as_str()),
            Ok(RowData::Csv(row)) if row.header.is_sheet() => {
                line["sheet_row"] = serde_json::Value::from(self.line);
                line["record"] = self.as_json().expect("a CSV row is a record");
            }
            Ok(_) => {
                if let Some(record) = self.as_json() {
                    line["record"] = record;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum RowData {
    Csv(CsvRow),
    Json(serde_json::Map<String, serde_json::Value>),
}

/// Column names of a CSV source (or a spreadsheet's sheet), shared by all its rows.
#[derive(Debug)]
pub struct Header {
    /// This header among the process's (from 1): what a [`ColumnName`] remembers.
    id: u64,
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// The rows are a sheet's: a record's `line` is the row number the spreadsheet shows.
    sheet: bool,
}

impl Header {
    /// A name that is there twice (two `email` columns) is the first of them, whatever the
    /// header's width: for `row.X`, and in a result line's `"record"`.
    pub fn new(names: Vec<String>) -> Header {
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            index.entry(n.clone()).or_insert(i);
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Header {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            names,
            index,
            sheet: false,
        }
    }

    /// The header of a spreadsheet's sheet.
    pub fn of_sheet(names: Vec<String>) -> Header {
        Header {
            sheet: true,
            ..Header::new(names)
        }
    }

    pub fn is_sheet(&self) -> bool {
        self.sheet
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        // For the usual few dozen columns a scan comparing lengths and first bytes before
        // the text beats hashing the name.
        if self.names.len() <= 32 {
            let (len, first) = (name.len(), name.as_bytes().first());
            self.names
                .iter()
                .position(|n| n.len() == len && n.as_bytes().first() == first && n == name)
        } else {
            self.index.get(name).copied()
        }
    }

    /// [`Header::position`] of `column`'s name, remembered in it: every row after the
    /// first of a source finds its column by one comparison of this header's id.
    pub fn position_of(&self, column: &ColumnName) -> Option<usize> {
        let found = column.found.load(Ordering::Relaxed);
        if found >> POSITION_BITS == self.id {
            return Some((found & POSITION_MASK) as usize);
        }
        let at = self.position(&column.name)?;
        if (at as u64) <= POSITION_MASK && self.id < 1 << (64 - POSITION_BITS) {
            column
                .found
                .store(self.id << POSITION_BITS | at as u64, Ordering::Relaxed);
        }
        Some(at)
    }
}

/// A [`ColumnName`]'s memory: a header's id above, the column's position in it below.
const POSITION_BITS: u32 = 24;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

/// A column asked for by name (a template's `row.X`), with where it was found last: the
/// header and the position, in one word, so that two threads mapping rows never see the
/// one without the other. (0: nowhere yet; a header's id starts at 1.)
#[derive(Debug)]
pub struct ColumnName {
    name: String,
    found: AtomicU64,
}

impl ColumnName {
    pub fn new(name: &str) -> ColumnName {
        ColumnName {
            name: name.to_string(),
            found: AtomicU64::new(0),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

/// Where it was found is a cache, not part of the name.
impl Clone for ColumnName {
    fn clone(&self) -> ColumnName {
        ColumnName::new(&self.name)
    }
}

impl PartialEq for ColumnName {
    fn eq(&self, other: &ColumnName) -> bool {
        self.name == other.name
    }
}

/// Where each field of a [`CsvRow`] ends in its text. Held in the row itself up to 16
/// fields: a row is made on the reader thread and dropped on a mapping thread, and a second
/// allocation per row was a second cross-thread free (3–5 % of `plan`'s CPU). As u32: a
/// record is moved from stage to stage several times, and usize ends were 64 more of its
/// ~190 bytes.
pub type Ends = smallvec::SmallVec<[u32; 16]>;

/// The longest text a [`CsvRow`] holds. The CSV reader refuses a longer record as
/// unreadable; no other source makes one (a sheet's row is at most 16,384 cells of 32,767
/// characters).
pub const MAX_ROW_TEXT: usize = u32::MAX as usize;

/// A field's end, as [`Ends`] holds it: `len` is the length of a row's text so far, at most
/// [`MAX_ROW_TEXT`].
pub fn end_at(len: usize) -> u32 {
    u32::try_from(len).expect("a row's text is at most MAX_ROW_TEXT bytes")
}

/// One CSV record: all field text in one string, with the end offset of each field.
#[derive(Debug, Clone)]
pub struct CsvRow {
    pub header: Arc<Header>,
    pub text: String,
    pub ends: Ends,
}

impl CsvRow {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.header.position(name).map(|i| self.field(i))
    }

    /// [`CsvRow::get`] through [`Header::position_of`].
    pub fn column(&self, column: &ColumnName) -> Option<&str> {
        self.header.position_of(column).map(|i| self.field(i))
    }

    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}

/// Streaming access to a source's records.
pub trait RecordSource: Send {
    /// Push every record, in order, to `sink`; stop early when it returns `false`.
    fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()>;

    /// What `plan` adds to the source's type, when the job left it to the file (the sheet
    /// a workbook's source reads).
    fn detail(&self) -> Option<String> {
        None
    }
}

/// A problem that keeps a source from being opened at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read the source file {path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{0}")]
    Invalid(String),
    /// A database that cannot be reached now: trying again later can succeed.
    #[error("{0}")]
    Unreachable(String),
}

/// Whether an error a source's reading ended with is the input's fault — a damaged
/// compressed file or workbook, a query the database refuses while running it — rather
/// than the machine's or the network's: trying again reads the same bytes (or runs the same
/// query) and fails the same way, so it is exit 2 ("bad input"), never a resumable stop.
/// Sources say so with [`io::ErrorKind::InvalidData`].
pub fn is_bad_input(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

/// Counts the bytes read through it (for progress and ETA).
struct CountingReader<R> {
    inner: R,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// calamine reads a workbook through `Seek` (a zip's central directory is at its end).
impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count
            .fetch_add(amt as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// The columns of a CSV source in its order: its header row, or `columns` without one.
pub fn csv_columns(spec: &SourceSpec, path: &Path) -> Result<Vec<String>, OpenError> {
    if !spec.header {
        return Ok(spec.columns.clone().unwrap_or_default());
    }
    let text = text::open(path, TextOptions::of(spec), Arc::default())?;
    let opts = CsvOptions::from_spec(spec).encoded(text.encoding.name());
    read_csv_header(text.reader, &opts)
}

/// `inner`, adding every byte consumed to `bytes_read` (for progress).
pub fn counted(
    inner: impl BufRead + Send + 'static,
    bytes_read: Arc<std::sync::atomic::AtomicU64>,
) -> Box<dyn BufRead + Send> {
    Box::new(CountingReader {
        inner,
        count: bytes_read,
    })
}

/// Open the source a job names, at `path` (its `spec.path` resolved by the job; for a sql
/// source, which has no path, the job file's directory, against which `sqlite://` paths
/// are resolved).
pub fn open(spec: &SourceSpec, path: &Path) -> Result<Box<dyn RecordSource>, OpenError> {
    open_counted(spec, path, Arc::default())
}

/// Open the source, adding every byte consumed to `bytes_read`.
pub fn open_counted(
    spec: &SourceSpec,
    path: &Path,
    bytes_read: Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn RecordSource>, OpenError> {
    if spec.kind == SourceKind::Sql {
        return Ok(Box::new(sql::SqlSource::open(spec, path)?));
    }
    if spec.kind == SourceKind::Xlsx {
        // A workbook is read by seeking (a zip's directory is at its end), not as text.
        let opts = SheetOptions::from_spec(spec);
        return Ok(Box::new(SheetSource::open(path, &opts, bytes_read)?));
    }
    let text = text::open(path, TextOptions::of(spec), bytes_read)?;
    let (reader, encoding) = (text.reader, text.encoding.name());
    Ok(match spec.kind {
        SourceKind::Csv => Box::new(CsvSource::new(
            reader,
            CsvOptions::from_spec(spec).encoded(encoding),
        )?),
        SourceKind::Jsonl => Box::new(JsonLinesSource::new(reader, encoding)),
        SourceKind::Json => Box::new(JsonArraySource::new(reader)),
        SourceKind::Xlsx => unreachable!("a workbook is opened above"),
        SourceKind::Sql => unreachable!("opened above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_by_their_whole_text() {
        let names = [
            "email",
            "e",
            "email2",
            "emai",
            "contact_email",
            "contact_emails",
            "",
            "é",
        ];
        let header = Header::new(names.iter().map(|n| n.to_string()).collect());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(header.position(n), Some(i), "{n:?}");
        }
        for missing in ["emaiL", "email\0", "contact_emailz", "contact_", "x", "ée"] {
            assert_eq!(header.position(missing), None, "{missing:?}");
        }
    }

    /// A record is moved from the reader to a mapping thread, into its batch and on: its
    /// size is CPU on every row (it was 192 bytes with usize ends).
    #[test]
    fn a_record_of_up_to_sixteen_fields_is_128_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 128);
    }

    #[test]
    fn a_column_remembers_where_it_was_found_in_which_header() {
        let header = Header::new(vec!["a".into(), "b".into(), "c".into()]);
        let c = ColumnName::new("c");
        assert_eq!(c.found.load(Ordering::Relaxed), 0);
        assert_eq!(header.position_of(&c), Some(2));
        assert_eq!(
            c.found.load(Ordering::Relaxed),
            header.id << POSITION_BITS | 2
        );
        assert_eq!(header.position_of(&c), Some(2));
        assert_eq!(header.position_of(&ColumnName::new("zz")), None);
        // Another header: searched afresh, where the name is elsewhere or not at all.
        let twice = Header::new(vec!["x".into(), "c".into(), "c".into()]);
        assert_ne!(twice.id, header.id);
        assert_eq!(twice.position_of(&c), Some(1), "the first of two");
        assert_eq!(twice.position_of(&c), Some(1));
        assert_eq!(header.position_of(&c), Some(2), "the first header again");
        let without = Header::new(vec!["a".into()]);
        assert_eq!(without.position_of(&c), None);
        assert_eq!(header.position_of(&c), Some(2));
        // A clone is the name, not where it was found.
        assert_eq!(c.clone().found.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_name_twice_is_the_first_column_at_every_width() {
        for width in [3usize, 40] {
            let mut names: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
            names[1] = "email".into();
            names[width - 1] = "email".into();
            let header = Arc::new(Header::new(names));
            assert_eq!(header.position("email"), Some(1), "{width}");
            let texts: Vec<String> = (0..width).map(|i| format!("v{i}")).collect();
            let mut ends = Ends::new();
            let mut text = String::new();
            for t in &texts {
                text.push_str(t);
                ends.push(end_at(text.len()));
            }
            let record = Record {
                row: 1,
                line: 2,
                data: Ok(RowData::Csv(CsvRow { header, text, ends })),
            };
            assert_eq!(record.as_json().unwrap()["email"], "v1", "{width}");
        }
    }
}
