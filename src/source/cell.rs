//! A spreadsheet cell as the text a template sees (SPEC §8). Workbooks store numbers as
//! doubles and dates as day counts, so a phone typed into Excel is the number
//! 8613812345678 and a birthday is 32874: read naively they become `8.61381E+12` and a
//! meaningless count. Here an integral number keeps its exact digits, other numbers take
//! their shortest form, a cell formatted as a date becomes `yyyy-MM-dd` (with a time,
//! `yyyy-MM-dd HH:mm:ss`) in the workbook's own date system (1900 or 1904), booleans are
//! `true`/`false` and an empty cell is `""` — the same text a CSV of the sheet would hold.

use calamine::{Data, ExcelDateTime};

/// What a cell's number format shows of a date serial (SPEC §8): the format decides, not
/// whether the time happens to be zero — a `yyyy-mm-dd hh:mm:ss` cell at midnight is still
/// a date-time, an `hh:mm` cell at 00:00 still a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateShape {
    Date,
    DateTime,
    Time,
    /// No format known (xls, xlsb and ods cells come without one here): a serial with a
    /// time of day is a date-time, one without a date, as before.
    Unknown,
}

impl DateShape {
    /// The shape of an Excel number format code (`yyyy-mm-dd`, `m/d/yy h:mm`, `h:mm AM/PM`,
    /// `[$-409]d-mmm-yy`…): date parts are `y` and `d`, time parts `h` and `s` (`m` is
    /// either); quoted text, escaped characters and `[…]` sections say nothing.
    pub fn of_format(code: &str) -> DateShape {
        let (mut date, mut time) = (false, false);
        let mut chars = code.chars();
        while let Some(c) = chars.next() {
            match c.to_ascii_lowercase() {
                '"' => {
                    for q in chars.by_ref() {
                        if q == '"' {
                            break;
                        }
                    }
                }
                '\\' | '_' | '*' => {
                    chars.next();
                }
                '[' => {
                    for q in chars.by_ref() {
                        if q == ']' {
                            break;
                        }
                    }
                }
                ';' => break, // the first section (positive numbers) is the one shown
                'y' | 'd' => date = true,
                'h' | 's' => time = true,
                _ => {}
            }
        }
        match (date, time) {
            (true, true) => DateShape::DateTime,
            (false, true) => DateShape::Time,
            (true, false) => DateShape::Date,
            (false, false) => DateShape::Unknown,
        }
    }
}

/// The text of one cell.
pub fn cell_text(cell: &Data) -> String {
    cell_text_as(cell, DateShape::Unknown)
}

/// The text of one cell whose number format shows dates as `shape`.
pub fn cell_text_as(cell: &Data, shape: DateShape) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => date_time_text(dt, shape),
        Data::DateTimeIso(s) => iso_text(s),
        Data::DurationIso(s) => s.clone(),
        // What the spreadsheet shows in the cell (`#N/A`, `#DIV/0!`): a template that needs
        // a phone from it rejects the row, saying what the cell held.
        Data::Error(e) => e.to_string(),
    }
}

/// An integral double as its exact digits (a phone: never an exponent); any other number in
/// the shortest form that reads back as the same double (Rust's `Display` for f64).
pub fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.is_finite() {
        // `{:.0}` prints every digit of the double's exact value, without an exponent;
        // `+ 0.0` turns -0 into 0.
        format!("{:.0}", f + 0.0)
    } else {
        f.to_string()
    }
}

/// A date, a date-time, a time of day, or a duration, from the serial number calamine read
/// together with the workbook's date system, shown as the cell's format `shape` says.
/// Seconds are rounded, as Excel shows them (12:59:02.6 is 12:59:03).
fn date_time_text(dt: &ExcelDateTime, shape: DateShape) -> String {
    let serial = dt.as_f64();
    if dt.is_duration() {
        // `[h]:mm:ss`: the hours run past 24, as the spreadsheet shows them.
        let total = (serial * 86_400.0).round() as i64;
        return format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
    }
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    let (y, mo, d, h, mi, s) = if ms >= 500 {
        next_second(y, mo, d, h, mi, s)
    } else {
        (y, mo, d, h, mi, s)
    };
    let has_time = (h, mi, s) != (0, 0, 0);
    let shape = match shape {
        DateShape::Unknown if (0.0..1.0).contains(&serial) && has_time => DateShape::Time,
        DateShape::Unknown if has_time => DateShape::DateTime,
        DateShape::Unknown => DateShape::Date,
        known => known,
    };
    match shape {
        // A time of day (a cell formatted `hh:mm`): its day, 0 or not, is not shown.
        DateShape::Time => format!("{h:02}:{mi:02}:{s:02}"),
        DateShape::DateTime => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        DateShape::Date | DateShape::Unknown => format!("{y:04}-{mo:02}-{d:02}"),
    }
}

/// One second after the given civil time (a rounding that carries into the minute, the
/// day, the year). Excel's phantom 1900-02-29 is no civil date: left as it is.
fn next_second(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> (u16, u8, u8, u8, u8, u8) {
    let Ok(t) =
        jiff::civil::DateTime::new(y as i16, mo as i8, d as i8, h as i8, mi as i8, s as i8, 0)
    else {
        return (y, mo, d, h, mi, s);
    };
    match t.checked_add(jiff::SignedDuration::from_secs(1)) {
        Ok(n) => (
            n.year() as u16,
            n.month() as u8,
            n.day() as u8,
            n.hour() as u8,
            n.minute() as u8,
            n.second() as u8,
        ),
        Err(_) => (y, mo, d, h, mi, s),
    }
}

/// OpenDocument stores dates as ISO 8601 text: `2024-03-05` or `2024-03-05T14:30:00(.123)`.
/// The date-time is given the same shape as an xlsx one (a space, whole seconds).
fn iso_text(s: &str) -> String {
    match s.split_once('T') {
        Some((date, time)) => {
            let time = time.split('.').next().unwrap_or(time);
            if time == "00:00:00" {
                date.to_string()
            } else {
                format!("{date} {time}")
            }
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTimeType};

    fn date(serial: f64, is_1904: bool) -> String {
        cell_text(&Data::DateTime(ExcelDateTime::new(
            serial,
            ExcelDateTimeType::DateTime,
            is_1904,
        )))
    }

    #[test]
    fn a_phone_stored_as_a_number_keeps_its_digits() {
        assert_eq!(number_text(8613812345678.0), "8613812345678");
        assert_eq!(number_text(86138123456789012.0), "86138123456789008"); // the double's own digits
        assert_eq!(number_text(42.0), "42");
        assert_eq!(number_text(-0.0), "0");
        assert_eq!(number_text(-17.0), "-17");
    }

    #[test]
    fn other_numbers_take_their_shortest_form() {
        assert_eq!(number_text(0.1), "0.1");
        assert_eq!(number_text(3.25), "3.25");
        assert_eq!(number_text(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(number_text(0.000_000_15), "0.00000015");
    }

    #[test]
    fn dates_in_both_date_systems() {
        // 1990-01-01 is serial 32874 in the 1900 system and 31412 in the 1904 one.
        assert_eq!(date(32874.0, false), "1990-01-01");
        assert_eq!(date(31412.0, true), "1990-01-01");
        assert_eq!(date(45351.0, false), "2024-02-29");
        // Before 1900-03-01 the 1900 system counts Excel's phantom 1900-02-29.
        assert_eq!(date(61.0, false), "1900-03-01");
        assert_eq!(date(0.0, true), "1904-01-01");
    }

    #[test]
    fn date_times_times_and_durations() {
        assert_eq!(date(45943.5, false), "2025-10-13 12:00:00");
        assert_eq!(date(45943.541, false), "2025-10-13 12:59:02");
        assert_eq!(date(44481.5, true), "2025-10-13 12:00:00");
        assert_eq!(date(0.75, false), "18:00:00");
        let d = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(cell_text(&Data::DateTime(d)), "36:00:00");
    }

    #[test]
    fn the_number_format_decides_date_or_date_time() {
        let shaped = |serial: f64, code: &str| {
            cell_text_as(
                &Data::DateTime(ExcelDateTime::new(
                    serial,
                    ExcelDateTimeType::DateTime,
                    false,
                )),
                DateShape::of_format(code),
            )
        };
        // Midnight in a date-time cell is still a date-time; 00:00 in a time cell a time.
        assert_eq!(
            shaped(45351.0, "yyyy-mm-dd hh:mm:ss"),
            "2024-02-29 00:00:00"
        );
        assert_eq!(shaped(45351.0, "m/d/yy h:mm"), "2024-02-29 00:00:00");
        assert_eq!(shaped(0.0, "hh:mm"), "00:00:00");
        assert_eq!(shaped(45351.75, "h:mm AM/PM"), "18:00:00");
        // A date cell shows the date even when the serial has a time.
        assert_eq!(shaped(45351.75, "yyyy-mm-dd"), "2024-02-29");
        assert_eq!(shaped(45351.75, "[$-409]d-mmm-yy;@"), "2024-02-29");
        assert_eq!(
            shaped(45351.75, "dd\\.mm\\.yyyy \"at\" hh:mm"),
            "2024-02-29 18:00:00"
        );
        assert_eq!(shaped(45351.75, "d\"th\" mmmm yyyy"), "2024-02-29");
        // Seconds round as Excel shows them, carrying into the next day.
        let just_before_midnight = 45351.0 + (86_399.6 / 86_400.0);
        assert_eq!(
            shaped(just_before_midnight, "yyyy-mm-dd hh:mm:ss"),
            "2024-03-01 00:00:00"
        );
        assert_eq!(
            shaped(45351.0 + 2.6 / 86_400.0, "yyyy-mm-dd hh:mm:ss"),
            "2024-02-29 00:00:03"
        );
        assert_eq!(DateShape::of_format("General"), DateShape::Unknown);
        assert_eq!(DateShape::of_format("0.00E+00"), DateShape::Unknown);
    }

    #[test]
    fn the_other_kinds() {
        assert_eq!(cell_text(&Data::Empty), "");
        assert_eq!(cell_text(&Data::Bool(true)), "true");
        assert_eq!(cell_text(&Data::Bool(false)), "false");
        assert_eq!(cell_text(&Data::Int(8613812345678)), "8613812345678");
        assert_eq!(cell_text(&Data::String(" 王芳 ".into())), " 王芳 ");
        assert_eq!(cell_text(&Data::Error(CellErrorType::NA)), "#N/A");
        assert_eq!(
            cell_text(&Data::DateTimeIso("2024-03-05".into())),
            "2024-03-05"
        );
        assert_eq!(
            cell_text(&Data::DateTimeIso("2024-03-05T14:30:00.250".into())),
            "2024-03-05 14:30:00"
        );
        assert_eq!(
            cell_text(&Data::DateTimeIso("2024-03-05T00:00:00".into())),
            "2024-03-05"
        );
    }
}
