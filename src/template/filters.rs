//! The template filters cdpjob adds to minijinja's built-ins: the clean-ups that customer
//! data needs over and over (phone numbers, dates, digit strings, delimited lists).
//!
//! Each filter returns an error for input it cannot make sense of; the mapping turns that
//! into a rejected row naming the field, never into a crash or a silently wrong value.

use minijinja::{Error, ErrorKind, Value};

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// The text of a scalar value (strings as they are, numbers as written).
fn text_of(value: &Value, filter: &str) -> Result<String, Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_string());
    }
    match value.kind() {
        minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
            Ok(value.to_string())
        }
        minijinja::value::ValueKind::None | minijinja::value::ValueKind::Undefined => {
            Ok(String::new())
        }
        kind => Err(invalid(format!(
            "{filter} expects text or a number, not {kind}"
        ))),
    }
}

/// `digits`: only the ASCII digits of the value.
pub fn digits(value: &Value) -> Result<String, Error> {
    Ok(text_of(value, "digits")?
        .chars()
        .filter(char::is_ascii_digit)
        .collect())
}

/// `phone(country_code)`: an international number in digits only.
///
/// Everything but digits is stripped; a leading `+` or `00` marks a number that already
/// carries its country code (the `00` is dropped); otherwise the country code is prefixed
/// unless the digits already start with it, after dropping one national trunk `0`.
/// Empty in, empty out (the field is then absent); text with no digit at all is an error.
pub fn phone(value: &Value, country_code: &Value) -> Result<String, Error> {
    let cc = text_of(country_code, "phone")?;
    phone_str(&text_of(value, "phone")?, &cc).map_err(invalid)
}

/// The ASCII digits of `s`. They are single bytes in UTF-8, never part of another
/// character's encoding: keeping the digit bytes is keeping the digit characters.
fn digits_of(s: &str) -> impl Iterator<Item = char> + '_ {
    s.bytes().filter(u8::is_ascii_digit).map(char::from)
}

/// The text core of `phone`, shared with the native evaluator.
pub fn phone_str(raw: &str, country_code: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(String::new());
    }
    let cc: std::borrow::Cow<'_, str> = if country_code.bytes().all(|b| b.is_ascii_digit()) {
        country_code.into()
    } else {
        digits_of(country_code).collect::<String>().into()
    };
    if cc.is_empty() {
        return Err(format!(
            "phone: the country code {country_code:?} has no digits"
        ));
    }
    // One string, sized for the country code in front: the number is built in place.
    let mut d = String::with_capacity(cc.len() + raw.len());
    d.extend(digits_of(raw));
    if d.is_empty() {
        return Err(format!("phone: {raw:?} holds no digits"));
    }
    if raw.starts_with('+') {
        return Ok(d);
    }
    if d.starts_with("00") {
        d.drain(..2);
        return Ok(d);
    }
    if d.starts_with(cc.as_ref()) {
        return Ok(d);
    }
    if d.starts_with('0') {
        d.remove(0);
    }
    d.insert_str(0, &cc);
    Ok(d)
}

/// `date(input_format)`: a date written in `input_format` (strftime style, e.g.
/// `%d/%m/%Y`) → `yyyy-MM-dd`. The day must exist.
pub fn date(value: &Value, input_format: &str) -> Result<String, Error> {
    date_str(&text_of(value, "date")?, input_format).map_err(invalid)
}

/// The text core of `date`, shared with the native evaluator.
pub fn date_str(raw: &str, input_format: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(String::new());
    }
    if let Some(date) = fixed_width_date(raw, input_format) {
        return Ok(iso_date(date));
    }
    let parsed = jiff::fmt::strtime::parse(input_format, raw)
        .and_then(|tm| tm.to_date())
        .map_err(|e| {
            format!("date: {raw:?} is not a real date in the format {input_format:?} ({e})")
        })?;
    Ok(parsed.strftime("%Y-%m-%d").to_string())
}

/// A date in a format of `%d`, `%m` and `%Y` (each once) between one-byte separators,
/// written in full width (`07/03/1994`, not `7/3/1994`): nearly every date column there is,
/// read without jiff's general parser. `None` for anything else, a date that does not
/// exist included: jiff then reads it, or says why not, as it always did.
fn fixed_width_date(raw: &str, format: &str) -> Option<jiff::civil::Date> {
    let (mut input, mut fmt) = (raw.as_bytes(), format.as_bytes());
    let (mut year, mut month, mut day) = (None, None, None);
    let number = |digits: &[u8]| -> Option<i16> {
        digits.iter().try_fold(0i16, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i16::from(b - b'0'))
        })
    };
    while let Some((&f, rest)) = fmt.split_first() {
        if f == b'%' {
            let (&directive, rest) = rest.split_first()?;
            let (width, slot) = match directive {
                b'Y' => (4, &mut year),
                b'm' => (2, &mut month),
                b'd' => (2, &mut day),
                _ => return None,
            };
            if slot.is_some() || input.len() < width {
                return None;
            }
            *slot = Some(number(&input[..width])?);
            input = &input[width..];
            fmt = rest;
        } else {
            // Letters, digits and spaces have meanings of their own to a strftime parser.
            let separator = f.is_ascii_punctuation();
            if !separator || input.first() != Some(&f) {
                return None;
            }
            input = &input[1..];
            fmt = rest;
        }
    }
    if !input.is_empty() {
        return None;
    }
    let (y, m, d) = (year?, month?, day?);
    jiff::civil::Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()
}

/// `yyyy-MM-dd`, as `strftime("%Y-%m-%d")` writes a date of a year 0 to 9999.
fn iso_date(date: jiff::civil::Date) -> String {
    fn digits(out: &mut String, n: i16, width: u32) {
        for p in (0..width).rev() {
            let digit = (n / 10i16.pow(p) % 10) as u8;
            out.push(char::from(b'0' + digit));
        }
    }
    let mut out = String::with_capacity(10);
    digits(&mut out, date.year(), 4);
    out.push('-');
    digits(&mut out, i16::from(date.month()), 2);
    out.push('-');
    digits(&mut out, i16::from(date.day()), 2);
    out
}

/// `datetime` / `datetime(input_format)`: → `yyyy-MM-dd HH:mm:ss`.
///
/// Without a format it reads RFC 3339 timestamps (`2024-05-01T10:00:00Z`, kept in the
/// offset they carry), `yyyy-MM-dd HH:mm:ss`, `yyyy-MM-ddTHH:mm:ss`, a bare date (midnight),
/// and integer seconds since the epoch (UTC).
pub fn datetime(value: &Value, input_format: Option<&str>) -> Result<String, Error> {
    const OUT: &str = "%Y-%m-%d %H:%M:%S";
    if let Some(i) = value.as_i64() {
        let ts = jiff::Timestamp::from_second(i)
            .map_err(|e| invalid(format!("datetime: {i} is out of range ({e})")))?;
        return Ok(ts.strftime(OUT).to_string());
    }
    let raw = text_of(value, "datetime")?;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(String::new());
    }
    if let Some(fmt) = input_format {
        let dt = jiff::fmt::strtime::parse(fmt, raw)
            .and_then(|tm| tm.to_datetime())
            .map_err(|e| {
                invalid(format!(
                    "datetime: {raw:?} does not match the format {fmt:?} ({e})"
                ))
            })?;
        return Ok(dt.strftime(OUT).to_string());
    }
    // RFC 3339 / ISO 8601 pieces keep the civil time as written, whatever the offset.
    let normalized = raw.replacen(' ', "T", 1);
    if let Ok(pieces) = jiff::fmt::temporal::Pieces::parse(normalized.as_str()) {
        let time = pieces.time().unwrap_or(jiff::civil::Time::midnight());
        return Ok(pieces.date().to_datetime(time).strftime(OUT).to_string());
    }
    Err(invalid(format!(
        "datetime: {raw:?} is not a timestamp, yyyy-MM-dd HH:mm:ss or a date; give its format: datetime('%d.%m.%Y %H:%M')"
    )))
}

/// `split(sep)`: text → list of trimmed pieces (empty pieces kept; list fields drop them).
pub fn split(value: &Value, sep: &str) -> Result<Vec<String>, Error> {
    if sep.is_empty() {
        return Err(invalid("split: the separator must not be empty".into()));
    }
    let raw = text_of(value, "split")?;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    Ok(raw.split(sep).map(|p| p.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn digits_keeps_only_digits() {
        assert_eq!(digits(&v("+86 (139) 1234-5678")).unwrap(), "8613912345678");
        assert_eq!(digits(&Value::from(42)).unwrap(), "42");
        assert_eq!(digits(&v("")).unwrap(), "");
    }

    #[test]
    fn phone_normalises_every_common_spelling() {
        let cc = v("86");
        let p = |s: &str| phone(&v(s), &cc).unwrap();
        assert_eq!(p("13912345678"), "8613912345678", "national: prefixed");
        assert_eq!(p("+86 139 1234 5678"), "8613912345678", "plus with spaces");
        assert_eq!(
            p("+1-415-555-0100"),
            "14155550100",
            "plus keeps a foreign code"
        );
        assert_eq!(p("0086-139-1234-5678"), "8613912345678", "00 is dropped");
        assert_eq!(
            p("0044 7911 123456"),
            "447911123456",
            "00 with a foreign code"
        );
        assert_eq!(p("139-1234-5678"), "8613912345678", "dashes");
        assert_eq!(p("8613912345678"), "8613912345678", "already prefixed");
        assert_eq!(
            p(" (139) 1234 5678 "),
            "8613912345678",
            "parentheses and spaces"
        );
        assert_eq!(p("01012345678"), "861012345678", "national trunk 0 dropped");
        assert_eq!(p("00"), "", "00 and nothing after it");
        assert_eq!(p("0"), "86", "a lone trunk 0");
        assert_eq!(
            p("８６ 139 1234 5678"),
            "8613912345678",
            "full-width digits are not digits"
        );
        assert_eq!(
            phone(&v("139 1234 5678"), &v("+86")).unwrap(),
            "8613912345678",
            "a country code written with its +"
        );
        assert_eq!(p(""), "", "empty stays empty");
        assert_eq!(
            phone(&Value::from(13912345678_i64), &Value::from(86)).unwrap(),
            "8613912345678"
        );
    }

    /// `phone_str` builds the number in one string; the first version, kept here, built
    /// it in three. They must agree.
    #[test]
    fn phone_agrees_with_its_first_version() {
        fn first_version(raw: &str, country_code: &str) -> Result<String, String> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(String::new());
            }
            let cc: String = country_code.chars().filter(char::is_ascii_digit).collect();
            if cc.is_empty() {
                return Err(format!(
                    "phone: the country code {country_code:?} has no digits"
                ));
            }
            let d: String = raw.chars().filter(char::is_ascii_digit).collect();
            if d.is_empty() {
                return Err(format!("phone: {raw:?} holds no digits"));
            }
            if raw.starts_with('+') {
                return Ok(d);
            }
            if let Some(rest) = d.strip_prefix("00") {
                return Ok(rest.to_string());
            }
            if d.starts_with(&cc) {
                return Ok(d);
            }
            let national = d.strip_prefix('0').unwrap_or(&d);
            Ok(format!("{cc}{national}"))
        }
        for raw in [
            "",
            " ",
            "n/a",
            "0",
            "00",
            "000",
            "+",
            "+0",
            "0086 139",
            "86139",
            "8",
            "139 1234 5678",
            " +44 (0)20 7946 0000 ",
            "0044",
            "00 86",
            "٣٩ 12",
            "８６ 139",
            "0139",
            "1-800-FLOWERS",
        ] {
            for cc in ["86", "+86", "1", "0", "00", "", "x", " 8 6 ", "８６"] {
                assert_eq!(
                    phone_str(raw, cc),
                    first_version(raw, cc),
                    "{raw:?} with {cc:?}"
                );
            }
        }
    }

    #[test]
    fn phone_rejects_text_without_digits() {
        let err = phone(&v("n/a"), &v("86")).unwrap_err();
        assert!(err.to_string().contains("holds no digits"), "{err}");
    }

    #[test]
    fn date_reformats_and_refuses_days_that_do_not_exist() {
        assert_eq!(date(&v("31/12/1990"), "%d/%m/%Y").unwrap(), "1990-12-31");
        assert_eq!(date(&v("29/02/2024"), "%d/%m/%Y").unwrap(), "2024-02-29");
        assert_eq!(date(&v(""), "%d/%m/%Y").unwrap(), "");
        for bad in [
            "29/02/2023",
            "31/04/2024",
            "32/01/2024",
            "12/13/2024",
            "1990-12-31",
            "soon",
        ] {
            assert!(date(&v(bad), "%d/%m/%Y").is_err(), "{bad} should fail");
        }
    }

    /// The fixed-width reading of a date must give what jiff gives, or leave it to jiff.
    #[test]
    fn fixed_width_dates_read_as_jiff_reads_them() {
        let jiff_date = |raw: &str, fmt: &str| {
            jiff::fmt::strtime::parse(fmt, raw)
                .and_then(|tm| tm.to_date())
                .ok()
                .map(|d| d.strftime("%Y-%m-%d").to_string())
        };
        let formats = [
            "%d/%m/%Y",
            "%m/%d/%Y",
            "%Y-%m-%d",
            "%Y/%m/%d",
            "%d.%m.%Y",
            "%Y%m%d",
            "%d-%m-%Y",
            "%Y年%m月%d日",
            "%d/%m/%y",
            "%d %m %Y",
            "%e/%m/%Y",
            "%d/%m/%Y%%",
            "%d/%d/%Y",
            "%d/%m",
            "",
        ];
        let inputs = [
            "07/03/1994",
            "29/02/2024",
            "29/02/2023",
            "31/04/2024",
            "00/01/2000",
            "01/00/2000",
            "01/13/2000",
            "12/31/1999",
            "7/3/1994",
            "07/03/94",
            "07/03/19940",
            "07-03-1994",
            "1994-03-07",
            "1994/03/07",
            "19940307",
            "07.03.1994",
            "01/01/0000",
            "01/01/0001",
            "31/12/0999",
            "31/12/9999",
            "+7/03/1994",
            "07/+3/1994",
            "07/03/-994",
            "07 03 1994",
            "1994年03月07日",
            "07/03/1994%",
            "07/03",
            "",
            "x",
            "٠٧/٠٣/١٩٩٤",
        ];
        for fmt in formats {
            for raw in inputs {
                if let Some(date) = fixed_width_date(raw, fmt) {
                    assert_eq!(
                        Some(iso_date(date)),
                        jiff_date(raw, fmt),
                        "{raw:?} in {fmt:?}"
                    );
                }
            }
        }
        // The shapes it is for are read by it.
        assert!(fixed_width_date("07/03/1994", "%d/%m/%Y").is_some());
        assert!(fixed_width_date("19940307", "%Y%m%d").is_some());
        assert!(fixed_width_date("01/01/0000", "%d/%m/%Y").is_some());
    }

    #[test]
    fn datetime_reads_the_usual_forms() {
        assert_eq!(
            datetime(&v("2024-05-01T10:11:12Z"), None).unwrap(),
            "2024-05-01 10:11:12"
        );
        assert_eq!(
            datetime(&v("2024-05-01T10:11:12+08:00"), None).unwrap(),
            "2024-05-01 10:11:12"
        );
        assert_eq!(
            datetime(&v("2024-05-01 10:11:12"), None).unwrap(),
            "2024-05-01 10:11:12"
        );
        assert_eq!(
            datetime(&v("2024-05-01"), None).unwrap(),
            "2024-05-01 00:00:00"
        );
        assert_eq!(
            datetime(&Value::from(0), None).unwrap(),
            "1970-01-01 00:00:00"
        );
        assert_eq!(
            datetime(&v("01.05.2024 10:11"), Some("%d.%m.%Y %H:%M")).unwrap(),
            "2024-05-01 10:11:00"
        );
        assert!(datetime(&v("2023-02-29 10:00:00"), None).is_err());
        assert!(datetime(&v("yesterday"), None).is_err());
    }

    #[test]
    fn split_trims_pieces() {
        assert_eq!(split(&v("a, b ,c"), ",").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(split(&v(""), ",").unwrap(), Vec::<String>::new());
        assert!(split(&v("a"), "").is_err());
    }
}
