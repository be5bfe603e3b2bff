//! Rows of cells lined up in columns the way `cdpjob fields` prints its table: two spaces
//! in front and between columns, each padded to its widest cell in terminal columns (names
//! and values are often Chinese, two columns a character), the last one left as it is.

use unicode_width::UnicodeWidthStr;

/// The lines of `rows`, each ending in a newline, trailing spaces trimmed.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push(' ');
                line.push_str(&" ".repeat(widths[i] - cell.width()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_by_terminal_width() {
        let rows = vec![
            vec!["row".into(), "field".into(), "value".into()],
            vec!["12".into(), "姓名".into(), "Ann → Bob".into()],
            vec!["3".into(), "".into(), "".into()],
        ];
        assert_eq!(
            super::render(&rows),
            "  row  field  value\n  12   姓名   Ann → Bob\n  3\n"
        );
    }
}
