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

/// The text core of `phone`, shared with the native evaluator.
pub fn phone_str(raw: &str, country_code: &str) -> Result<String, String> {
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
    let parsed = jiff::fmt::strtime::parse(input_format, raw)
        .and_then(|tm| tm.to_date())
        .map_err(|e| {
            format!("date: {raw:?} is not a real date in the format {input_format:?} ({e})")
        })?;
    Ok(parsed.strftime("%Y-%m-%d").to_string())
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
        assert_eq!(p(""), "", "empty stays empty");
        assert_eq!(
            phone(&Value::from(13912345678_i64), &Value::from(86)).unwrap(),
            "8613912345678"
        );
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
