//! The template `init` writes for a column once it knows the field, chosen from the
//! column's sample values (SPEC §8): phones through `phone(vars.country_code)`, dates
//! through `date(…)` in the one format every sample parses in (none when they are already
//! `yyyy-MM-dd`), genders through a table of the spellings seen (`男`/`女`, `M`/`F`, …),
//! emails trimmed and lowercased, tags with `;` or `|` between them joined by commas.

use crate::customer::Field;

/// What a column's values are, for the expression that reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// CSV and sheet columns: text in every record.
    Text,
    /// A JSON key: missing from some objects, maybe (a missing key is an error to render).
    Json,
    /// A JSON key that holds arrays (tags): joined with commas.
    JsonList,
}

/// The expression for a column's value: `row.X`, made safe for what its shape lacks.
pub fn value_of(column: &str, shape: Shape) -> String {
    let row = row_ref(column);
    match shape {
        Shape::Text => row,
        Shape::Json => format!("{row} | default('')"),
        Shape::JsonList => format!("{row} | default([]) | join(',')"),
    }
}

/// The country code for numbers written without one, from the phones sampled: `86` unless
/// most numbers that carry one (`+44…`, `0044…`) share another one- to three-digit code
/// that the API's list would recognise. The written job names it in `vars`, to be checked.
pub fn country_code(phones: &[&String]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut international = 0;
    for p in phones {
        let p = p.trim();
        let digits = if let Some(rest) = p.strip_prefix('+') {
            rest
        } else if let Some(rest) = p.strip_prefix("00") {
            rest
        } else {
            continue;
        };
        international += 1;
        let digits: String = digits.chars().filter(char::is_ascii_digit).collect();
        if let Some(cc) = KNOWN_CODES.iter().find(|cc| digits.starts_with(**cc)) {
            *counts.entry(cc).or_default() += 1;
        }
    }
    match counts.into_iter().max_by_key(|(_, n)| *n) {
        Some((cc, n)) if n * 2 > international => cc.to_string(),
        _ => "86".to_string(),
    }
}

/// Country codes init can recognise at the front of a number (longest first, so `852`
/// is not read as `8…`). A number whose code is not here leaves the default.
const KNOWN_CODES: &[&str] = &[
    "852", "853", "886", "855", "856", "880", "971", "966", "234", "254", "351", "353", "86", "81",
    "82", "84", "60", "62", "63", "65", "66", "91", "92", "44", "33", "34", "39", "49", "31", "55",
    "52", "54", "57", "61", "64", "90", "20", "27", "7", "1",
];

/// The template for `field` from `column`, given its sample values (non-empty, as text).
pub fn template(field: Field, column: &str, shape: Shape, samples: &[String]) -> String {
    let row = value_of(column, shape);
    if shape == Shape::JsonList {
        return format!("{{{{ {row} }}}}"); // already joined with commas
    }
    match field {
        Field::SmsPhone | Field::WhatsAppPhone | Field::ViberPhone => {
            format!("{{{{ {row} | phone(vars.country_code) }}}}")
        }
        Field::Email => format!("{{{{ {row} | trim | lower }}}}"),
        Field::Birthday => match date_format(samples) {
            Some(fmt) => format!("{{{{ {row} | date('{fmt}') }}}}"),
            None => format!("{{{{ {row} }}}}"),
        },
        Field::Gender => gender(&row, samples),
        Field::TagStr if samples.iter().any(|s| s.contains(';')) => {
            format!("{{{{ {row} | replace(';', ',') }}}}")
        }
        Field::TagStr if samples.iter().any(|s| s.contains('|')) => {
            format!("{{{{ {row} | replace('|', ',') }}}}")
        }
        _ => format!("{{{{ {row} | trim }}}}"),
    }
}

/// `row.X`, or `row['X']` when X is no identifier (a space, a `/`, a leading digit).
pub fn row_ref(column: &str) -> String {
    let mut chars = column.chars();
    let ident = chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric());
    if ident {
        format!("row.{column}")
    } else {
        format!(
            "row['{}']",
            column.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }
}

/// The strftime format most samples parse in as a real date (a dirty row or two does not
/// hide the format of the rest); `None` when that is `yyyy-MM-dd` already, or none fits
/// (the mapping then passes the text, and the API's rule rejects what is not a date,
/// saying so). On a tie the earlier format wins, so day-first beats month-first when the
/// file shows no day past the 12th: most of the world writes the day first.
pub fn date_format(samples: &[String]) -> Option<&'static str> {
    const FORMATS: &[&str] = &[
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%Y.%m.%d",
        "%Y%m%d",
        "%Y年%m月%d日",
        "%d/%m/%Y",
        "%m/%d/%Y",
        "%d.%m.%Y",
        "%d-%m-%Y",
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let fits = |fmt: &str| {
        samples
            .iter()
            .filter(|s| {
                jiff::fmt::strtime::parse(fmt, s.trim())
                    .and_then(|tm| tm.to_date())
                    .is_ok()
            })
            .count()
    };
    let mut best = None;
    for fmt in FORMATS {
        let n = fits(fmt);
        if n > 0 && best.is_none_or(|(_, m)| n > m) {
            best = Some((*fmt, n));
        }
    }
    best.map(|(fmt, _)| fmt).filter(|fmt| *fmt != "%Y-%m-%d")
}

/// Spellings of male (1) and female (0), as the API counts them.
const GENDERS: &[(&str, u8)] = &[
    ("男", 1),
    ("女", 0),
    ("m", 1),
    ("f", 0),
    ("male", 1),
    ("female", 0),
    ("man", 1),
    ("woman", 0),
    ("先生", 1),
    ("女士", 0),
];

/// A table from the spellings seen (lowercased, as the template looks them up) to 1/0;
/// the column as it is when it already holds 1/0.
fn gender(row: &str, samples: &[String]) -> String {
    if !samples.is_empty() && samples.iter().all(|s| s == "0" || s == "1") {
        return format!("{{{{ {row} }}}}");
    }
    let mut seen: Vec<(&str, u8)> = Vec::new();
    for s in samples {
        let s = s.trim().to_lowercase();
        if let Some(&(g, code)) = GENDERS.iter().find(|(g, _)| *g == s)
            && !seen.iter().any(|(t, _)| *t == g)
        {
            seen.push((g, code));
        }
    }
    if seen.is_empty() {
        seen = vec![("m", 1), ("f", 0), ("男", 1), ("女", 0)];
    }
    let table: Vec<String> = seen.iter().map(|(t, c)| format!("'{t}': {c}")).collect();
    format!(
        "{{{{ {{{}}}[{row} | trim | lower] | default('') }}}}",
        table.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dates_take_the_one_format_every_sample_fits() {
        assert_eq!(date_format(&s(&["1990-01-31", "2001-12-01"])), None);
        assert_eq!(
            date_format(&s(&["31/01/1990", "01/12/2001"])),
            Some("%d/%m/%Y")
        );
        assert_eq!(
            date_format(&s(&["01/31/1990", "12/01/2001"])),
            Some("%m/%d/%Y")
        );
        assert_eq!(date_format(&s(&["1990/1/31"])), Some("%Y/%m/%d"));
        assert_eq!(date_format(&s(&["1990年01月31日"])), Some("%Y年%m月%d日"));
        assert_eq!(date_format(&s(&["19900131"])), Some("%Y%m%d"));
        assert_eq!(
            date_format(&s(&["1990-01-31 00:00:00"])),
            Some("%Y-%m-%d %H:%M:%S")
        );
        assert_eq!(date_format(&s(&["soon"])), None);
        // A dirty value or two does not hide the format of the rest.
        assert_eq!(
            date_format(&s(&["02/02/1994", "31/13/1990", "soon", "25/12/2001"])),
            Some("%d/%m/%Y")
        );
    }

    #[test]
    fn genders_become_a_table_of_the_spellings_seen() {
        assert_eq!(
            gender("row.性别", &s(&["男", "女", "男"])),
            "{{ {'男': 1, '女': 0}[row.性别 | trim | lower] | default('') }}"
        );
        assert_eq!(
            gender("row.sex", &s(&["Female", "male", "Male", "x"])),
            "{{ {'female': 0, 'male': 1}[row.sex | trim | lower] | default('') }}"
        );
        assert_eq!(gender("row.g", &s(&["1", "0"])), "{{ row.g }}");
    }

    #[test]
    fn json_keys_may_be_missing_and_lists_are_joined() {
        assert_eq!(
            template(Field::Email, "email", Shape::Json, &[]),
            "{{ row.email | default('') | trim | lower }}"
        );
        assert_eq!(
            template(Field::TagStr, "tags", Shape::JsonList, &s(&["a,b"])),
            "{{ row.tags | default([]) | join(',') }}"
        );
    }

    #[test]
    fn columns_that_are_no_identifier_are_subscripted() {
        assert_eq!(row_ref("phone"), "row.phone");
        assert_eq!(row_ref("手机"), "row.手机");
        assert_eq!(row_ref("Phone Number"), "row['Phone Number']");
        assert_eq!(row_ref("国家/地区"), "row['国家/地区']");
        assert_eq!(row_ref("it's"), "row['it\\'s']");
    }

    #[test]
    fn the_country_code_is_the_one_most_international_numbers_carry() {
        let p = s(&["+44 7700 900123", "+44 7700 900456", "07700 900789"]);
        assert_eq!(country_code(&p.iter().collect::<Vec<_>>()), "44");
        let p = s(&["13812345678", "+852 9123 4567"]);
        assert_eq!(country_code(&p.iter().collect::<Vec<_>>()), "852");
        let p = s(&["13812345678"]);
        assert_eq!(country_code(&p.iter().collect::<Vec<_>>()), "86");
    }
}
