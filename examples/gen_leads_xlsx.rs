//! Turns a leads CSV from `gen_leads` into a workbook for the xlsx benchmark
//! (`benches/plan-xlsx.sh`): `gen_leads_xlsx IN.csv OUT.xlsx`. Cells are stored as Excel
//! stores what a person types: ids, SMS numbers and levels as numbers, birthdays as date
//! cells (the dirty `31/02/1990` stays text), the rest as shared strings — the workbook
//! a spreadsheet program would save, so the reader pays for the shared-string table too.
//! `gen_leads_xlsx IN.csv OUT.xlsx inline` writes the strings inline instead (no shared
//! table, as rust_xlsxwriter's constant-memory sheets do): what the reader costs without it.

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "leads.csv".into());
    let output = args.next().unwrap_or_else(|| "leads.xlsx".into());
    let inline = args.next().as_deref() == Some("inline");
    let mut book = Workbook::new();
    let sheet = if inline {
        book.add_worksheet_with_constant_memory()?
    } else {
        book.add_worksheet()
    };
    let sheet = sheet.set_name("Leads")?;
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let mut csv = csv::Reader::from_path(&input)?;
    let header: Vec<String> = csv.headers()?.iter().map(String::from).collect();
    for (c, name) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, name)?;
    }
    let numeric = ["id", "sms", "level"];
    for (r, record) in csv.records().enumerate() {
        let record = record?;
        let r = r as u32 + 1;
        for (c, value) in record.iter().enumerate() {
            let c = c as u16;
            let name = header[c as usize].as_str();
            if numeric.contains(&name)
                && let Ok(n) = value.parse::<f64>()
            {
                sheet.write_number(r, c, n)?;
            } else if name == "dob"
                && let Some(d) = dmy(value)
            {
                sheet.write_datetime_with_format(r, c, &d, &date)?;
            } else {
                sheet.write_string(r, c, value)?;
            }
        }
    }
    book.save(&output)?;
    Ok(())
}

/// `dd/mm/yyyy` as a date cell, if it is a real date.
fn dmy(s: &str) -> Option<ExcelDateTime> {
    let mut parts = s.split('/').map(|p| p.parse::<u16>().ok());
    let (d, m, y) = (parts.next()??, parts.next()??, parts.next()??);
    let max = match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d == 0 || d > max {
        return None;
    }
    ExcelDateTime::from_ymd(y, u8::try_from(m).ok()?, u8::try_from(d).ok()?).ok()
}
