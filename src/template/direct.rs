//! Native evaluation of the simplest templates, the bulk of any real mapping.
//!
//! `{{ row.email | trim | lower }}`, `{{ row.phone | phone(vars.country_code) }}`, plain
//! text with `{{ row.first }} {{ row.last }}`, a table lookup such as
//! `{{ {'M': 1, 'F': 0}[row.sex] | default('') }}`: minijinja's per-render setup dominates
//! the cost of such templates. A template made only of literal text and `{{ value | filter… }}`
//! blocks — a value being `row.NAME`, `vars.NAME`, `row_number` or a dict literal of text
//! keys (text or integer values) subscripted by `row.NAME`, a filter one of `trim`, `lower`,
//! `upper`, `digits`, `phone`, `date`, `datetime` with literal or `vars` arguments, or
//! `default` with a text argument — is evaluated here with the very same filter functions.
//! Anything else, and any row where a value is not plain text, goes through minijinja, and
//! so does any error, so messages are minijinja's. A differential test holds the two paths
//! to the same output.

use std::borrow::Cow;

use minijinja::Value;
use serde_json::Value as Json;

use super::filters;
use crate::source::{ColumnName as Column, RowData};

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
    Column(Column),
    /// `vars.NAME` never changes within a run: rendered up front.
    Constant(String),
    RowNumber,
    /// `{'M': 1, 'F': 0}[row.sex]`: the entry of the column's text, undefined when the
    /// table has none. Values are kept as minijinja prints them.
    Lookup {
        column: Column,
        table: Vec<(String, String)>,
    },
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
    /// `default(text)`: the text in place of an undefined value (a missing column or key,
    /// or a table lookup that found nothing); a defined value passes unchanged.
    Default(String),
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

/// A quoted string without escapes: its text, and what follows the closing quote.
fn string_literal(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &s[1..];
    let end = rest.find(quote)?;
    let inner = &rest[..end];
    (!inner.contains('\\')).then(|| (inner, &rest[end + 1..]))
}

/// A literal argument: a quoted string without escapes, or `vars.NAME`.
fn argument(s: &str, vars: &serde_json::Map<String, Json>) -> Option<String> {
    let s = s.trim();
    if let Some(name) = s.strip_prefix("vars.") {
        return is_ident(name).then(|| var_text(vars, name)).flatten();
    }
    let (inner, rest) = string_literal(s)?;
    rest.is_empty().then(|| inner.to_string())
}

/// An argument that is text to minijinja too (a number var would stay a number, and the
/// filters after `default` would see one): a quoted string, or a text `vars.NAME`.
fn text_argument(s: &str, vars: &serde_json::Map<String, Json>) -> Option<String> {
    match s.trim().strip_prefix("vars.") {
        Some(name) => vars.get(name)?.as_str().map(str::to_string),
        None => argument(s, vars),
    }
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
        ("default", None) => Filter::Default(String::new()),
        ("phone", Some(a)) => Filter::Phone(argument(a, vars)?),
        ("date", Some(a)) => Filter::Date(argument(a, vars)?),
        ("datetime", Some(a)) => Filter::Datetime(Some(argument(a, vars)?)),
        ("default", Some(a)) => Filter::Default(text_argument(a, vars)?),
        _ => return None,
    })
}

/// `s` split at every `|` outside quotes.
fn split_pipes(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '|') => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    quote.is_none().then_some(parts)
}

/// An integer literal as minijinja prints it: `-?[0-9]+` without leading zeros.
fn integer_literal(s: &str) -> Option<String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    plain
        .then(|| s.parse::<i64>().ok())
        .flatten()
        .map(|i| i.to_string())
}

/// `{'K': V, …}[row.NAME]`, keys text, values text or integers, no key twice. The second
/// item says whether any value is an integer (then only `default` may follow: the text
/// filters refuse a number).
fn lookup(s: &str) -> Option<(Base, bool)> {
    let mut rest = s.trim().strip_prefix('{')?.trim_start();
    let mut table: Vec<(String, String)> = Vec::new();
    let mut numbers = false;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            rest = after;
            break;
        }
        let (key, after) = string_literal(rest)?;
        let after = after.trim_start().strip_prefix(':')?.trim_start();
        let (value, after) = match string_literal(after) {
            Some((text, after)) => (text.to_string(), after),
            None => {
                let end = after.find([',', '}']).unwrap_or(after.len());
                numbers = true;
                (integer_literal(after[..end].trim())?, &after[end..])
            }
        };
        if table.iter().any(|(k, _)| k == key) {
            return None;
        }
        table.push((key.to_string(), value));
        let after = after.trim_start();
        rest = match after.strip_prefix(',').map(str::trim_start) {
            // A trailing comma is minijinja's to judge.
            Some(next) if next.starts_with('}') => return None,
            Some(next) => next,
            None => after,
        };
        if !rest.starts_with(['}', '\'', '"']) {
            return None;
        }
    }
    let path = rest.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    let column = path.strip_prefix("row.").filter(|c| is_ident(c))?;
    let base = Base::Lookup {
        column: Column::new(column),
        table,
    };
    Some((base, numbers))
}

fn expression(s: &str, vars: &serde_json::Map<String, Json>) -> Option<Segment> {
    let parts = split_pipes(s)?;
    let path = parts[0].trim();
    let mut only_default = false;
    let base = if path == "row_number" {
        Base::RowNumber
    } else if let Some(col) = path.strip_prefix("row.") {
        is_ident(col).then(|| Base::Column(Column::new(col)))?
    } else if let Some(name) = path.strip_prefix("vars.") {
        Base::Constant(is_ident(name).then(|| var_text(vars, name)).flatten()?)
    } else if path.starts_with('{') {
        let (base, numbers) = lookup(path)?;
        only_default = numbers;
        base
    } else {
        return None;
    };
    let filters = parts[1..]
        .iter()
        .map(|f| filter(f, vars))
        .collect::<Option<Vec<_>>>()?;
    if only_default && !filters.iter().all(|f| matches!(f, Filter::Default(_))) {
        return None;
    }
    Some(Segment::Expr { base, filters })
}

/// A row's value for `row.NAME`: `Some(None)` when it is undefined (no such column or
/// key), `None` when it is not text (minijinja's business).
fn column<'r>(row: &'r RowData, col: &Column) -> Option<Option<&'r str>> {
    match row {
        RowData::Csv(r) => Some(r.column(col)),
        RowData::Json(m) => match m.get(col.as_str()) {
            None => Some(None),
            Some(v) => Some(Some(v.as_str()?)),
        },
    }
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
    /// text, an undefined value printed, or any filter error, whose message minijinja
    /// will produce).
    pub fn eval(&self, row: &RowData, row_number: u64) -> Option<String> {
        if let [Segment::Expr { base, filters }] = self.segments.as_slice() {
            // The usual template, one value: its text is the output, borrowed or not.
            return Some(expr(base, filters, row, row_number)?.into_owned());
        }
        // Names, most often: room for them without growing.
        let mut out = String::with_capacity(32);
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Expr { base, filters } => {
                    out.push_str(&expr(base, filters, row, row_number)?);
                }
            }
        }
        Some(out)
    }
}

/// One `{{ … }}` block's text.
fn expr<'a>(
    base: &'a Base,
    filters: &'a [Filter],
    row: &'a RowData,
    row_number: u64,
) -> Option<Cow<'a, str>> {
    let mut value: Option<Cow<'a, str>> = match base {
        Base::Column(col) => column(row, col)?.map(Cow::Borrowed),
        Base::Constant(c) => Some(Cow::Borrowed(c.as_str())),
        Base::RowNumber => Some(Cow::Owned(row_number.to_string())),
        Base::Lookup { column: col, table } => {
            // An undefined key is minijinja's to judge.
            let key = column(row, col)??;
            table
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Cow::Borrowed(v.as_str()))
        }
    };
    for f in filters {
        value = match (f, value) {
            (Filter::Default(text), None) => Some(Cow::Borrowed(text.as_str())),
            (Filter::Default(_), defined) => defined,
            // Undefined into any other filter: minijinja says what happens.
            (_, None) => return None,
            (f, Some(v)) => Some(apply(f, v)?),
        };
    }
    value
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
        let left = expression(left, vars)?;
        // minijinja compares a number with a text as different (`row_number == '5'` is
        // false): only a column, text whatever its filters, is compared as text, and only
        // with a text.
        if !matches!(
            &left,
            Segment::Expr {
                base: Base::Column(_),
                ..
            }
        ) {
            return None;
        }
        Some(Condition {
            left: Direct {
                segments: vec![left],
            },
            equal,
            right: text_argument(right, vars)?,
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
            Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
            Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
        },
        // Only ASCII text is known to be unchanged without converting it (titlecase
        // letters such as `ǅ` are neither upper nor lower case, yet change).
        Filter::Lower if value.is_ascii() && !value.bytes().any(|b| b.is_ascii_uppercase()) => {
            value
        }
        Filter::Lower if value.is_ascii() => Cow::Owned(value.to_ascii_lowercase()),
        Filter::Lower => Cow::Owned(value.to_lowercase()),
        Filter::Upper if value.is_ascii() && !value.bytes().any(|b| b.is_ascii_lowercase()) => {
            value
        }
        Filter::Upper if value.is_ascii() => Cow::Owned(value.to_ascii_uppercase()),
        Filter::Upper => Cow::Owned(value.to_uppercase()),
        Filter::Digits => Cow::Owned(value.chars().filter(char::is_ascii_digit).collect()),
        Filter::Phone(cc) => Cow::Owned(filters::phone_str(&value, cc).ok()?),
        Filter::Date(fmt) => Cow::Owned(filters::date_str(&value, fmt).ok()?),
        Filter::Datetime(fmt) => {
            Cow::Owned(filters::datetime(&Value::from(value.as_ref()), fmt.as_deref()).ok()?)
        }
        Filter::Default(_) => value,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::{CsvRow, Ends, Header};
    use crate::template::{environment, row_value};

    fn vars() -> serde_json::Map<String, Json> {
        serde_json::from_str(r#"{"cc": "86", "n": 44, "f": 1.5, "t": true}"#).unwrap()
    }

    fn csv_row(cols: &[(&str, &str)]) -> RowData {
        let header = Arc::new(Header::new(
            cols.iter().map(|(k, _)| k.to_string()).collect(),
        ));
        let mut text = String::new();
        let mut ends = Ends::new();
        for (_, v) in cols {
            text.push_str(v);
            ends.push(crate::source::end_at(text.len()));
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
        // A column the row lacks is undefined: minijinja decides.
        let cond = Condition::compile("row.zz == 'x'", &v).unwrap();
        assert_eq!(cond.eval(&csv_row(&[("a", "x")]), 1), None);
        for other in [
            // minijinja: a number is never equal to a text.
            "row_number == '1'",
            "row.b != vars.n",
            "vars.cc == '86'",
            "{'M': '1'}[row.a] == '1'",
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
            "{{ {'M': 1, 'F': 0}[row.sex] | default('') }}",
            "{{{'M':1,'F':0}[row.sex]}}",
            "{{ {'a': 'x', \"b\": \"y|z\"}[row.a] | upper }}",
            "{{ {'M': -1}[ row.sex ] | default('') | default('?') }}",
            "{{ {}[row.a] | default('none') }}",
            "{{ row.a | default('') }}",
            "{{ row.a | default }}",
            "{{ row.a | default(vars.cc) }}",
            "{{ row.a | default('a|b') | trim }}",
        ] {
            assert!(Direct::compile(simple, &v).is_some(), "{simple}");
        }
        for other in [
            "{{ row.a | default('x', true) }}",
            "{{ row.a | default(vars.n) }}",
            "{{ row.a | d('') }}",
            "{{ {'M': 1}[row.sex] | upper }}",
            "{{ {'M': 1, 'M': 2}[row.sex] }}",
            "{{ {'M': 1,}[row.sex] }}",
            "{{ {'M': 1.5}[row.sex] }}",
            "{{ {'M': 01}[row.sex] }}",
            "{{ {'M': 1_000}[row.sex] }}",
            "{{ {'M': true}[row.sex] }}",
            "{{ {'M': none}[row.sex] }}",
            "{{ {1: 'x'}[row.sex] }}",
            "{{ {'M': 'it\\'s'}[row.sex] }}",
            "{{ {'M': 1}[row_number] }}",
            "{{ {'M': 1}[vars.cc] }}",
            "{{ {'M': 1}[row.sex] ~ 'x' }}",
            "{{ {'M': 1}[row.sex][0] }}",
            "{{ {'M': 1}.M }}",
            "{{ {'M': 1} }}",
            "{{ row.a | default('it|s }}",
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
            "{{ {'M': 1, 'F': 0}[row.s] | default('') }}",
            "{{ {'M': 1, 'F': 0}[row.s] }}",
            "{{ {'M': 'male', 'F': \"fe|male\", '': 'none'}[row.s] | default('?') | upper }}",
            "<{{ {'M': -1, 'F': 0}[row.s] | default('') }}>",
            "{{ {'M': 'x'}[row.s] | trim }}",
            "{{ row.missing | default('none') }}",
            "{{ row.missing | default }}",
            "{{ row.missing }}",
            "{{ row.missing | trim }}",
            "{{ row.a | default('x') | trim }}",
            "{{ row.b | default(vars.cc) }}",
        ];
        let rows: [[(&str, &str); 6]; 4] = [
            [
                ("a", "  SStraße Éclair "),
                ("b", "ǅ"),
                ("p", "+86 139 1234 5678"),
                ("d", "29/02/2024"),
                ("t", "2024-05-01T10:00:00+08:00"),
                ("s", "M"),
            ],
            [
                ("a", ""),
                ("b", "x"),
                ("p", "0044 20 7946 0000"),
                ("d", "01/01/1970"),
                ("t", "2024-05-01"),
                ("s", ""),
            ],
            [
                ("a", "İstanbul"),
                ("b", ""),
                ("p", "(139) 1234-5678"),
                ("d", "31/12/1999"),
                ("t", "2024-05-01 23:59:59"),
                ("s", " F"),
            ],
            [
                ("a", "x"),
                ("b", "y"),
                ("p", "n/a"),
                ("d", "31/02/1990"),
                ("t", "never"),
                ("s", "F"),
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

    /// JSON rows: a key may be missing (undefined), null or not text; the native path
    /// either prints what minijinja prints or steps aside.
    #[test]
    fn native_and_minijinja_agree_on_json_rows() {
        let v = vars();
        let env = environment();
        let ctx_vars = minijinja::Value::from(minijinja::value::Serde(&v));
        let templates = [
            "{{ row.a }}",
            "{{ row.a | trim | upper }}",
            "{{ row.a | default('?') }}",
            "{{ row.a | default('?') | lower }}",
            "{{ {'M': 1, 'F': 0}[row.s] | default('') }}",
            "{{ {'M': 'male'}[row.s] | default('?') }}",
            "{{ row.p | phone(vars.cc) }}",
        ];
        let rows = [
            r#"{"a": " X ", "s": "M", "p": "139 1234 5678"}"#,
            r#"{"a": "", "s": "F", "p": ""}"#,
            r#"{"s": "?"}"#,
            r#"{"a": null, "s": null, "p": null}"#,
            r#"{"a": 5, "s": 1, "p": 13912345678}"#,
            r#"{"a": true, "s": ["M"], "p": {"x": 1}}"#,
            r#"{}"#,
        ];
        for (i, text) in rows.iter().enumerate() {
            let row = RowData::Json(serde_json::from_str(text).unwrap());
            for t in templates {
                let direct = Direct::compile(t, &v).unwrap_or_else(|| panic!("{t}"));
                let ctx = minijinja::context! { row => row_value(row.clone()), vars => ctx_vars.clone(), row_number => i as u64 + 1 };
                let jinja = env.render_str(t, ctx).ok();
                if let Some(native) = direct.eval(&row, i as u64 + 1) {
                    assert_eq!(Some(native), jinja, "{t} on {text}");
                }
            }
        }
        // A text row steps aside only where minijinja fails.
        let row = RowData::Json(serde_json::from_str(rows[0]).unwrap());
        for t in templates {
            assert!(
                Direct::compile(t, &v).unwrap().eval(&row, 1).is_some(),
                "{t}"
            );
        }
    }
}
