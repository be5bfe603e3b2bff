//! The delimiter a CSV file was written with, when it is not the one the job says: a `;`
//! file (what a spreadsheet program writes where the decimal separator is a comma), a TSV or
//! a `|` export read with the default `,` has one column named `first;last;phone;email`,
//! and every `row.X` of the mapping misses it. Named once, that is one line to fix.

use super::csv::{CsvOptions, read_csv_header};
use super::text::{self, TextOptions};
use std::path::Path;

/// The delimiters tried, in this order: the ones customer files use besides `,`.
const CANDIDATES: [u8; 3] = [b';', b'\t', b'|'];

/// Another delimiter that splits a header which reads as one column: the first of `;`,
/// tab and `|` that splits it into two or more names, none empty and none twice.
pub fn better_split(
    path: &Path,
    text_opts: TextOptions<'_>,
    opts: &CsvOptions,
    names: &[String],
) -> Option<(u8, Vec<String>)> {
    let [only] = names else {
        return None;
    };
    CANDIDATES
        .iter()
        .filter(|&&d| d != opts.delimiter && only.as_bytes().contains(&d))
        .find_map(|&d| {
            let text = text::open(path, text_opts, Default::default()).ok()?;
            let opts = CsvOptions {
                delimiter: d,
                ..opts.clone()
            };
            let split = read_csv_header(text.reader, &opts).ok()?;
            clean(&split).then_some((d, split))
        })
}

fn clean(names: &[String]) -> bool {
    let mut seen = std::collections::HashSet::new();
    names.len() >= 2 && names.iter().all(|n| !n.is_empty() && seen.insert(n))
}

/// The delimiter as it is written in a job file: `"\t"` for a tab.
pub fn as_yaml(d: u8) -> String {
    match d {
        b'\t' => "\"\\t\"".to_string(),
        other => format!("\"{}\"", other as char),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(header: &str) -> Option<(u8, Vec<String>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, format!("{header}\nx\n")).unwrap();
        let opts = CsvOptions {
            delimiter: b',',
            quote: b'"',
            header: true,
            columns: None,
            encoding: "UTF-8",
        };
        let text_opts = TextOptions {
            compression: None,
            encoding: None,
        };
        let names = read_csv_header(
            text::open(&path, text_opts, Default::default())
                .unwrap()
                .reader,
            &opts,
        )
        .unwrap();
        better_split(&path, text_opts, &opts, &names)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn semicolons_tabs_and_pipes_are_found() {
        assert_eq!(
            split("first;last;phone;email"),
            Some((b';', names(&["first", "last", "phone", "email"])))
        );
        assert_eq!(split("a\tb"), Some((b'\t', names(&["a", "b"]))));
        assert_eq!(split("\"a\"|\"b|c\""), Some((b'|', names(&["a", "b|c"]))));
    }

    #[test]
    fn only_a_clean_split_of_a_one_column_header_counts() {
        assert_eq!(split("name,email"), None, "more than one column already");
        assert_eq!(split("name"), None, "nothing to split");
        assert_eq!(split("a;;b"), None, "an empty name");
        assert_eq!(split("a;a"), None, "a name twice");
        assert_eq!(
            split("a;b|c"),
            Some((b';', names(&["a", "b|c"]))),
            "`;` first"
        );
    }
}
