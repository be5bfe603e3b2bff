//! A spreadsheet cell as the text a template sees (SPEC §8). Workbooks store numbers as
//! doubles and dates as day counts, so a phone typed into Excel is the number
//! 8613812345678 and a birthday is 32874: read naively they become `8.61381E+12` and a
//! meaningless count. Here an integral number keeps its exact digits, other numbers take
//! their shortest form, a cell formatted as a date becomes `yyyy-MM-dd` (with a time,
//! `yyyy-MM-dd HH:mm:ss`) in the workbook's own date system (1900 or 1904), booleans are
//! `true`/`false` and an empty cell is `""` — the same text a CSV of the sheet would hold.

use calamine::{Data, ExcelDateTime};

/// The text of one cell.
pub fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => date_time_text(dt),
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
/// together with the workbook's date system.
fn date_time_text(dt: &ExcelDateTime) -> String {
    let serial = dt.as_f64();
    let (y, mo, d, h, mi, s, _ms) = dt.to_ymd_hms_milli();
    if dt.is_duration() {
        // `[h]:mm:ss`: the hours run past 24, as the spreadsheet shows them.
        let total = (serial * 86_400.0).round() as i64;
        return format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
    }
    let has_time = (h, mi, s) != (0, 0, 0);
    if (0.0..1.0).contains(&serial) && has_time {
        // A time of day alone (a cell formatted `hh:mm`): day 0 is no real date.
        return format!("{h:02}:{mi:02}:{s:02}");
    }
    if has_time {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}")
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
