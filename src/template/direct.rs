//! Native evaluation of the simplest templates, the bulk of any real mapping.
//!
//! `{{ row.email | trim | lower }}`, `{{ row.phone | phone(vars.country_code) }}`, plain
//! text with `{{ row.first }} {{ row.last }}`: minijinja's per-render setup dominates the cost
//! of such templates. A template made only of literal text and `{{ path | filter… }}`
//! blocks — a path being `row.NAME`, `vars.NAME` or `row_number`, a filter one of `trim`,
//! `lower`, `upper`, `digits`, `phone`, `date`, `datetime` with literal or `vars` arguments —
//! is evaluated here with the very same filter functions. Anything else, and any row where a
//! value is not plain text, goes through minijinja, and so does any error, so messages are
//! minijinja's. A differential test holds the two paths to the same output.

use std::borrow::Cow;

use minijinja::Value;
use serde_json::Value as Json;

use super::filters;
use crate::source::RowData;

#[derive(Debug, Clone, PartialEq)]
pub struct Direct {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Expr { base: Base, filters: Vec<Filter> },
}

#[derive(Debug, Clone, PartialEq)]
enum Base {
    Column(String),
    /// `vars.NAME` and `row_number` never change within a row: rendered up front, except
    /// `row_number`, which is per row.
    Constant(String),
    RowNumber,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Trim,
    Lower,
    Upper,
    Digits,
    Phone(String),
    Date(String),
    Datetime(Option<String>),
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The text minijinja would print for a var, if it is that simple.
fn var_text(vars: &serde_json::Map<String, Json>, name: &str) -> Option<String> {
    match vars.get(name)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A literal argument: a quoted string without escapes, or `vars.NAME`.
fn argument(s: &str, vars: &serde_json::Map<String, Json>) -> Option<String> {
    let s = s.trim();
    if let Some(name) = s.strip_prefix("vars.") {
        return is_ident(name).then(|| var_text(vars, name)).flatten();
    }
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote) && !inner.contains('\\')).then(|| inner.to_string())
}

fn filter(s: &str, vars: &serde_json::Map<String, Json>) -> Option<Filter> {
    let s = s.trim();
    let (name, arg) = match s.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')')?)),
        None => (s, None),
    };
    Some(match (name, arg) {
        ("trim", None) => Filter::Trim,
        ("lower", None) => Filter::Lower,
        ("upper", None) => Filter::Upper,
        ("digits", None) => Filter::Digits,
        ("datetime", None) => Filter::Datetime(None),
        ("phone", Some(a)) => Filter::Phone(argument(a, vars)?),
        ("date", Some(a)) => Filter::Date(argument(a, vars)?),
        ("datetime", Some(a)) => Filter::Datetime(Some(argument(a, vars)?)),
        _ => return None,
    })
}

fn expression(s: &str, vars: &serde_json::Map<String, Json>) -> Option<Segment> {
    let mut parts = s.split('|');
    let path = parts.next()?.trim();
    let base = if path == "row_number" {
        Base::RowNumber
    } else if let Some(col) = path.strip_prefix("row.") {
        is_ident(col).then(|| Base::Column(col.to_string()))?
    } else if let Some(name) = path.strip_prefix("vars.") {
        Base::Constant(is_ident(name).then(|| var_text(vars, name)).flatten()?)
    } else {
        return None;
    };
    let filters = parts.map(|f| filter(f, vars)).collect::<Option<Vec<_>>>()?;
    Some(Segment::Expr { base, filters })
}

impl Direct {
    /// The native form of `source`, if it is simple enough to have one.
    pub fn compile(source: &str, vars: &serde_json::Map<String, Json>) -> Option<Direct> {
        // Whitespace control, statements, comments and trailing-newline rules are
        // minijinja's business.
        if source.contains("{%") || source.contains("{#") || source.contains('\n') {
            return None;
        }
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            let text = &rest[..start];
            if text.contains("}}") {
                return None;
            }
            if !text.is_empty() {
                segments.push(Segment::Text(text.to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            let inner = &after[..end];
            if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) {
                return None;
            }
            segments.push(expression(inner, vars)?);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return None;
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Some(Direct { segments })
    }

    /// The rendered text, or `None` when this row needs minijinja (a value that is not
    /// text, or any filter error, whose message minijinja will produce).
    pub fn eval(&self, row: &RowData, row_number: u64) -> Option<String> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Expr { base, filters } => {
                    let number;
                    let mut value: Cow<'_, str> = match base {
                        Base::Column(col) => Cow::Borrowed(match row {
                            RowData::Csv(r) => r.get(col)?,
                            RowData::Json(m) => m.get(col)?.as_str()?,
                        }),
                        Base::Constant(c) => Cow::Borrowed(c.as_str()),
                        Base::RowNumber => {
                            number = row_number.to_string();
                            Cow::Borrowed(number.as_str())
                        }
                    };
                    for f in filters {
                        value = apply(f, value)?;
                    }
                    out.push_str(&value);
                }
            }
        }
        Some(out)
    }
}

/// A row filter of the form `PATH [| filter…] == 'text'` (or `!=`), evaluated natively.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    left: Direct,
    equal: bool,
    right: String,
}

impl Condition {
    pub fn compile(expr: &str, vars: &serde_json::Map<String, Json>) -> Option<Condition> {
        let (left, right, equal) = match (expr.split_once("=="), expr.split_once("!=")) {
            (Some((l, r)), None) => (l, r, true),
            (None, Some((l, r))) => (l, r, false),
            _ => return None,
        };
        if right.contains('=') || left.contains(['<', '>', '(']) && !left.contains('|') {
            return None;
        }
        Some(Condition {
            left: Direct {
                segments: vec![expression(left, vars)?],
            },
            equal,
            right: argument(right, vars)?,
        })
    }

    /// Whether the row passes, or `None` when minijinja has to decide.
    pub fn eval(&self, row: &RowData, row_number: u64) -> Option<bool> {
        Some((self.left.eval(row, row_number)? == self.right) == self.equal)
    }
}

/// One filter; borrowed text stays borrowed where the filter changes nothing.
fn apply<'a>(f: &Filter, value: Cow<'a, str>) -> Option<Cow<'a, str>> {
    Some(match f {
        Filter::Trim => match value {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
        },
        // Only ASCII text is known to be unchanged without converting it (titlecase
        // letters such as `ǅ` are neither upper nor lower case, yet change).
        Filter::Lower if value.is_ascii() && !value.bytes().any(|b| b.is_ascii_uppercase()) => {
            value
        }
        Filter::Lower => Cow::Owned(value.to_lowercase()),
        Filter::Upper if value.is_ascii() && !value.bytes().any(|b| b.is_ascii_lowercase()) => {
            value
        }
        Filter::Upper => Cow::Owned(value.to_uppercase()),
        Filter::Digits => Cow::Owned(value.chars().filter(char::is_ascii_digit).collect()),
        Filter::Phone(cc) => Cow::Owned(filters::phone_str(&value, cc).ok()?),
        Filter::Date(fmt) => Cow::Owned(filters::date_str(&value, fmt).ok()?),
        Filter::Datetime(fmt) => {
            Cow::Owned(filters::datetime(&Value::from(value.as_ref()), fmt.as_deref()).ok()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::{CsvRow, Header};
    use crate::template::{environment, row_value};

    fn vars() -> serde_json::Map<String, Json> {
        serde_json::from_str(r#"{"cc": "86", "n": 44, "f": 1.5, "t": true}"#).unwrap()
    }

    fn csv_row(cols: &[(&str, &str)]) -> RowData {
        let header = Arc::new(Header::new(
            cols.iter().map(|(k, _)| k.to_string()).collect(),
        ));
        let mut text = String::new();
        let mut ends = Vec::new();
        for (_, v) in cols {
            text.push_str(v);
            ends.push(text.len());
        }
        RowData::Csv(CsvRow { header, text, ends })
    }

    #[test]
    fn simple_conditions_agree_with_minijinja() {
        let v = vars();
        let env = environment();
        for expr in [
            "row.a == 'x'",
            "row.a != 'x'",
            "row.a | trim | lower == \"x\"",
            "row.b != vars.cc",
        ] {
            let cond = Condition::compile(expr, &v).unwrap_or_else(|| panic!("{expr}"));
            for a in ["x", " X ", "y", ""] {
                let row = csv_row(&[("a", a), ("b", "86")]);
                let ctx = minijinja::context! { row => row_value(row.clone()), vars => minijinja::Value::from(minijinja::value::Serde(&v)) };
                let jinja = env
                    .compile_expression(expr)
                    .unwrap()
                    .eval(ctx)
                    .unwrap()
                    .is_true();
                assert_eq!(cond.eval(&row, 1), Some(jinja), "{expr} with a={a:?}");
            }
        }
        for other in [
            "row.a == 1",
            "row.a",
            "row.a in ['x']",
            "row.a == 'x' and row.b == 'y'",
            "row.a >= 'x'",
        ] {
            assert!(Condition::compile(other, &v).is_none(), "{other}");
        }
    }

    #[test]
    fn simple_templates_compile_and_others_do_not() {
        let v = vars();
        for simple in [
            "{{ row.a }}",
            "{{row.a|trim|lower}}",
            "x {{ row.a }} y {{ row.b | upper }}",
            "{{ row.p | phone(vars.cc) }}",
            "{{ row.p | phone('86') }}",
            "{{ row.d | date(\"%d/%m/%Y\") }}",
            "{{ vars.n }}",
            "{{ row_number }}",
            "GMT+8",
        ] {
            assert!(Direct::compile(simple, &v).is_some(), "{simple}");
        }
        for other in [
            "{{ row.a | default('') }}",
            "{{ row.a ~ row.b }}",
            "{% if row.a %}x{% endif %}",
            "{{- row.a }}",
            "{{ vars.f }}",
            "{{ vars.t }}",
            "{{ vars.missing }}",
            "{{ row['a b'] }}",
            "{{ row.a | replace('x', 'y') }}",
            "{{ row.d | date('it\\'s') }}",
            "line\n",
            "{{ row.a }",
        ] {
            assert!(Direct::compile(other, &v).is_none(), "{other}");
        }
    }

    /// The native path must print exactly what minijinja prints, or step aside.
    #[test]
    fn native_and_minijinja_agree() {
        let v = vars();
        let env = environment();
        let ctx_vars = minijinja::Value::from(minijinja::value::Serde(&v));
        let templates = [
            "{{ row.a }} {{ row.b }}",
            "{{ row.a | trim | lower }}",
            "{{ row.a | upper }}",
            "{{ row.b | lower }}{{ row.b | upper }}",
            "<{{ row.a | trim }}>",
            "{{ row.p | phone(vars.cc) }}",
            "{{ row.p | phone(vars.n) }}",
            "{{ row.p | digits }}",
            "{{ row.d | date('%d/%m/%Y') }}",
            "{{ row.t | datetime }}",
            "{{ vars.n }}-{{ row_number }}",
        ];
        let rows = [
            [
                ("a", "  SStraße Éclair "),
                ("b", "ǅ"),
                ("p", "+86 139 1234 5678"),
                ("d", "29/02/2024"),
                ("t", "2024-05-01T10:00:00+08:00"),
            ],
            [
                ("a", ""),
                ("b", "x"),
                ("p", "0044 20 7946 0000"),
                ("d", "01/01/1970"),
                ("t", "2024-05-01"),
            ],
            [
                ("a", "İstanbul"),
                ("b", ""),
                ("p", "(139) 1234-5678"),
                ("d", "31/12/1999"),
                ("t", "2024-05-01 23:59:59"),
            ],
            [
                ("a", "x"),
                ("b", "y"),
                ("p", "n/a"),
                ("d", "31/02/1990"),
                ("t", "never"),
            ],
        ];
        for (i, cols) in rows.iter().enumerate() {
            let row = csv_row(cols);
            for t in templates {
                let direct = Direct::compile(t, &v).unwrap();
                let ctx = minijinja::context! { row => row_value(row.clone()), vars => ctx_vars.clone(), row_number => i as u64 + 1 };
                let jinja = env.render_str(t, ctx).ok();
                match direct.eval(&row, i as u64 + 1) {
                    Some(native) => assert_eq!(Some(native), jinja, "{t} on row {i}"),
                    None => assert!(
                        jinja.is_none(),
                        "{t} on row {i}: native stepped aside but minijinja rendered {jinja:?}"
                    ),
                }
            }
        }
    }
}
