//! Spreadsheet sources (SPEC §8 `type: xlsx`): one sheet of an .xlsx, .xlsm, .xls, .xlsb or
//! .ods workbook, read with calamine. The row `source.header_row` names the columns; every
//! later row that is not fully empty is a record, numbered like a CSV record, and carries
//! the row number the spreadsheet shows (`sheet_row` in result lines, SPEC §12 R13). Cells
//! become text as [`super::cell`] says, so a record is a [`CsvRow`] and everything
//! downstream (templates, `"record"`, retries, `rows --format csv`) treats it as a CSV row.
//!
//! Memory: an .xlsx sheet is streamed cell by cell (calamine's cell reader over the zip
//! entry), so it costs the workbook's shared-string table and one row, whatever the
//! number of rows. The other formats have no such reader: calamine loads the whole sheet
//! (never the whole workbook), so they cost the sheet.
//!
//! A column whose header cell is empty has no name a template could use, and is not read:
//! sheets often carry stray notes to the right of the data.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use calamine::{Data, Ods, Reader, Sheets, Xls, Xlsb, Xlsx};

use super::cell::{DateShape, cell_text, cell_text_as};
use super::spec::{SheetRef, SourceSpec};
use super::{
    CountingReader, CsvRow, Ends, Header, OpenError, Record, RecordSource, RowData, Unreadable,
    end_at,
};

/// Why a sheet cannot be read, and the `source` key to fix (`path`, `sheet`, `header_row`),
/// so that `validate` points at it.
#[derive(Debug)]
pub struct SheetError {
    pub key: &'static str,
    pub message: String,
}

impl SheetError {
    fn of(key: &'static str, message: String) -> SheetError {
        SheetError { key, message }
    }
}

impl std::fmt::Display for SheetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`source.{}`: {}", self.key, self.message)
    }
}

impl From<SheetError> for OpenError {
    fn from(e: SheetError) -> OpenError {
        OpenError::Invalid(e.to_string())
    }
}

/// What the job says of the sheet to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetOptions {
    /// `None`: the first sheet.
    pub sheet: Option<SheetRef>,
    /// 1-based, as the spreadsheet numbers its rows.
    pub header_row: u32,
}

impl SheetOptions {
    pub fn from_spec(spec: &SourceSpec) -> SheetOptions {
        SheetOptions {
            sheet: spec.sheet.clone(),
            header_row: spec.header_row.unwrap_or(1),
        }
    }
}

type Input = BufReader<CountingReader<File>>;

/// A workbook's sheet, opened, its header read.
pub struct SheetSource {
    book: Sheets<Input>,
    path: PathBuf,
    sheet: String,
    header_row: u32,
    header: Arc<Header>,
    /// The 0-based column of each of the header's names.
    columns: Vec<usize>,
}

impl SheetSource {
    /// Open the workbook at `path`, find the sheet and read its header; every byte read
    /// from the file is added to `bytes_read` (for progress).
    pub fn open(
        path: &Path,
        opts: &SheetOptions,
        bytes_read: Arc<AtomicU64>,
    ) -> Result<SheetSource, SheetError> {
        let mut book = open_workbook(path, bytes_read)?;
        let sheet = find_sheet(&book, path, opts.sheet.as_ref())?;
        let (names, columns) = read_header(&mut book, path, &sheet, opts.header_row)?;
        Ok(SheetSource {
            book,
            path: path.to_path_buf(),
            sheet,
            header_row: opts.header_row,
            header: Arc::new(Header::of_sheet(names)),
            columns,
        })
    }

    /// The sheet's name.
    pub fn sheet(&self) -> &str {
        &self.sheet
    }

    /// The header's names, in the sheet's order.
    pub fn columns(&self) -> &[String] {
        self.header.names()
    }
}

/// The column names of the sheet a job reads: its header row's non-empty cells, in order.
pub fn sheet_columns(path: &Path, opts: &SheetOptions) -> Result<Vec<String>, SheetError> {
    Ok(SheetSource::open(path, opts, Arc::default())?
        .columns()
        .to_vec())
}

/// How many rows at the top of a sheet [`likely_header_row`] looks at.
const HEADER_SEARCH: u32 = 20;

/// The row that most likely names a sheet's columns, for `init`: among its first
/// [`HEADER_SEARCH`] rows, the first with the most non-empty cells — a title ("Customer
/// list" in A1) or a note above the header fills fewer. 1 for an empty sheet.
pub fn likely_header_row(path: &Path, opts: &SheetOptions) -> Result<u32, SheetError> {
    let mut book = open_workbook(path, Arc::default())?;
    let sheet = find_sheet(&book, path, opts.sheet.as_ref())?;
    let mut best = (1u32, 0usize);
    each_row(&mut book, &sheet, &mut |n, cells, _| {
        if n > HEADER_SEARCH {
            return false;
        }
        let filled = cells.iter().filter(|c| !c.trim().is_empty()).count();
        if filled > best.1 {
            best = (n, filled);
        }
        true
    })
    .map_err(|e| {
        SheetError::of(
            "path",
            format!("cannot read sheet `{sheet}` of {}: {e}", path.display()),
        )
    })?;
    Ok(best.0)
}

impl RecordSource for SheetSource {
    fn detail(&self) -> Option<String> {
        Some(match self.header_row {
            1 => format!("sheet `{}`", self.sheet),
            n => format!("sheet `{}`, header row {n}", self.sheet),
        })
    }

    fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let SheetSource {
            mut book,
            path,
            sheet,
            header_row,
            header,
            columns,
        } = *self;
        let mut row = 0u64;
        each_row(&mut book, &sheet, &mut |sheet_row, cells, errors| {
            if sheet_row <= header_row || cells.iter().all(String::is_empty) {
                return true; // above the data, or a fully empty row: not a record
            }
            row += 1;
            // An error cell (`#N/A`, `#REF!`) of a named column is no value: the row is
            // rejected, naming the cell, rather than `#N/A` read as a name or a phone.
            if let Some((name, &c)) = header
                .names()
                .iter()
                .zip(&columns)
                .find(|(_, c)| errors.contains(c))
            {
                let raw: Vec<&str> = columns
                    .iter()
                    .map(|&c| cells.get(c).map_or("", String::as_str))
                    .collect();
                let reason = format!(
                    "sheet row {sheet_row}: cell {}{sheet_row} (`{name}`) holds the error {}",
                    column_letters(c),
                    cells.get(c).map_or("", String::as_str)
                );
                // No `line`: a sheet has none, and the reason names the sheet row.
                return sink(Record {
                    row,
                    line: 0,
                    data: Err(Unreadable::new(reason, raw.join(",").as_bytes())),
                });
            }
            let mut text = String::new();
            let mut ends = Ends::with_capacity(columns.len());
            for &c in &columns {
                text.push_str(cells.get(c).map_or("", String::as_str));
                ends.push(end_at(text.len()));
            }
            sink(Record {
                row,
                line: u64::from(sheet_row),
                data: Ok(RowData::Csv(CsvRow {
                    header: Arc::clone(&header),
                    text,
                    ends,
                })),
            })
        })
        // A damaged workbook (a corrupt zip entry, broken XML): bad input, never a
        // resumable stop — reading it again breaks at the same cell (see `is_bad_input`).
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot read sheet `{sheet}` of {}: {e}", path.display()),
            )
        })
    }
}

/// The workbook, by its extension: calamine has one reader per format.
fn open_workbook(path: &Path, bytes_read: Arc<AtomicU64>) -> Result<Sheets<Input>, SheetError> {
    let invalid = |message| SheetError::of("path", message);
    if path == Path::new("-") {
        return Err(invalid(
            "a workbook cannot be read from standard input (`-`): name its file".into(),
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let file = super::text::open_file(path).map_err(|e| invalid(e.to_string()))?;
    let input = BufReader::with_capacity(
        1 << 16,
        CountingReader {
            inner: file,
            count: bytes_read,
        },
    );
    let not_a = |what: &str, e: &dyn std::fmt::Display| {
        invalid(format!("{} is not {what}: {e}", path.display()))
    };
    Ok(match ext.as_str() {
        "xlsx" | "xlsm" => {
            Sheets::Xlsx(Xlsx::new(input).map_err(|e| not_a("an xlsx workbook", &e))?)
        }
        "xls" => Sheets::Xls(Xls::new(input).map_err(|e| not_a("an xls workbook", &e))?),
        "xlsb" => Sheets::Xlsb(Xlsb::new(input).map_err(|e| not_a("an xlsb workbook", &e))?),
        "ods" => {
            Sheets::Ods(Ods::new(input).map_err(|e| not_a("an OpenDocument spreadsheet", &e))?)
        }
        _ => {
            return Err(invalid(format!(
                "{}: `type: xlsx` reads .xlsx, .xlsm, .xls, .xlsb and .ods workbooks, by the file's extension",
                path.display()
            )));
        }
    })
}

/// The name of the sheet `wanted` names (the first sheet when `None`).
fn find_sheet(
    book: &Sheets<Input>,
    path: &Path,
    wanted: Option<&SheetRef>,
) -> Result<String, SheetError> {
    let names = book.sheet_names();
    let listed = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        None => names.first().cloned().ok_or_else(|| {
            SheetError::of(
                "path",
                format!("the workbook {} has no sheet", path.display()),
            )
        }),
        Some(SheetRef::Position(n)) => {
            let i = usize::try_from(*n).unwrap_or(usize::MAX);
            i.checked_sub(1)
                .and_then(|i| names.get(i))
                .cloned()
                .ok_or_else(|| {
                    SheetError::of(
                        "sheet",
                        format!(
                            "the workbook {} has {} sheet(s) ({}), so there is no sheet {n}",
                            path.display(),
                            names.len(),
                            listed()
                        ),
                    )
                })
        }
        Some(SheetRef::Name(name)) => {
            if names.iter().any(|n| n == name) {
                return Ok(name.clone());
            }
            let near = names
                .iter()
                .find(|n| n.trim().eq_ignore_ascii_case(name.trim()));
            let hint = match near {
                Some(n) => format!("; did you mean `{n}`?"),
                None => String::new(),
            };
            Err(SheetError::of(
                "sheet",
                format!(
                    "the workbook {} has no sheet `{name}`; its sheets are {}{hint}",
                    path.display(),
                    listed()
                ),
            ))
        }
    }
}

/// The header's names and the column each is in: the non-empty cells of row `header_row`.
fn read_header(
    book: &mut Sheets<Input>,
    path: &Path,
    sheet: &str,
    header_row: u32,
) -> Result<(Vec<String>, Vec<usize>), SheetError> {
    let mut found: Option<Vec<String>> = None;
    let mut next_row = None; // the first row with a cell below the header row, for the message
    each_row(book, sheet, &mut |n, cells, _| {
        let holds = cells.iter().any(|c| !c.is_empty());
        if n == header_row && holds {
            found = Some(cells.to_vec());
            return false;
        }
        if n > header_row && holds {
            next_row = Some(n);
            return false;
        }
        true
    })
    .map_err(|e| {
        SheetError::of(
            "path",
            format!("cannot read sheet `{sheet}` of {}: {e}", path.display()),
        )
    })?;
    let Some(cells) = found else {
        let where_data = match next_row {
            Some(n) => format!("; the first row below it that holds anything is row {n}"),
            None => "; there is nothing at or below it".into(),
        };
        return Err(SheetError::of(
            "header_row",
            format!(
                "row {header_row} of sheet `{sheet}` in {} is empty, so it cannot name the columns{where_data}",
                path.display()
            ),
        ));
    };
    // Trimmed, as a CSV header's names are: `Email ` is `row.Email`.
    Ok(cells
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name.trim().to_string(), i))
        .filter(|(name, _)| !name.is_empty())
        .unzip())
}

/// What [`each_row`] calls for a row: its number as the spreadsheet shows it, its cells'
/// text by 0-based column, and the columns holding an error cell; `false` stops.
type RowVisitor<'a> = dyn FnMut(u32, &[String], &[usize]) -> bool + 'a;

/// Call `f` with every row of the sheet that has a cell, in order: its number as the
/// spreadsheet shows it (1-based), its cells' text by 0-based column and its error cells'
/// columns; stop when `f` returns false.
fn each_row(
    book: &mut Sheets<Input>,
    sheet: &str,
    f: &mut RowVisitor<'_>,
) -> Result<(), calamine::Error> {
    // The 0-based columns of the row's error cells (`#N/A`…), usually none.
    let mut errors: Vec<usize> = Vec::new();
    if let Sheets::Xlsx(xlsx) = book {
        let mut cells = xlsx.worksheet_cells_reader(sheet)?;
        // What each style's number format shows of a date, by style id: the format, not
        // the serial, decides date or date-time (SPEC §8).
        let shapes: Vec<DateShape> = cells
            .styles()
            .iter()
            .map(|s| {
                s.number_format
                    .as_ref()
                    .map_or(DateShape::Unknown, |f| DateShape::of_format(&f.format_code))
            })
            .collect();
        let mut row: Option<u32> = None;
        let mut texts: Vec<String> = Vec::new();
        while let Some((cell, style)) = cells.next_cell_with_style_id()? {
            let (r, c) = cell.get_position();
            if row != Some(r) {
                if let Some(done) = row
                    && !f(done + 1, &texts, &errors)
                {
                    return Ok(());
                }
                texts.clear();
                errors.clear();
                row = Some(r);
            }
            let c = c as usize;
            if texts.len() <= c {
                texts.resize(c + 1, String::new());
            }
            let shape = shapes.get(style).copied().unwrap_or(DateShape::Unknown);
            let data = Data::from(cell.get_value().clone());
            if matches!(data, Data::Error(_)) {
                errors.push(c);
            }
            texts[c] = cell_text_as(&data, shape);
        }
        if let Some(done) = row {
            f(done + 1, &texts, &errors);
        }
        return Ok(());
    }
    let range = book.worksheet_range(sheet)?;
    let Some((first_row, first_col)) = range.start() else {
        return Ok(()); // an empty sheet
    };
    let mut texts = Vec::new();
    for (i, cells) in range.rows().enumerate() {
        texts.clear();
        texts.resize(first_col as usize, String::new());
        texts.extend(cells.iter().map(cell_text));
        errors.clear();
        errors.extend(
            (cells.iter().enumerate())
                .filter(|(_, d)| matches!(d, Data::Error(_)))
                .map(|(j, _)| first_col as usize + j),
        );
        if !f(first_row + i as u32 + 1, &texts, &errors) {
            break;
        }
    }
    Ok(())
}

/// A 0-based column as the spreadsheet names it: 0 → `A`, 25 → `Z`, 26 → `AA`.
fn column_letters(c: usize) -> String {
    let mut n = c + 1;
    let mut out = Vec::new();
    while n > 0 {
        let d = (n - 1) % 26;
        out.push(b'A' + d as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::column_letters;

    #[test]
    fn columns_are_named_as_the_spreadsheet_names_them() {
        let names: Vec<String> = [0, 2, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letters)
            .collect();
        assert_eq!(names, ["A", "C", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }
}
