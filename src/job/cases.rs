//! The checks of a job's `tests:` block that its schema cannot express: an expected field
//! must be one the mapping renders, and a rejection must name a field a rejection can name,
//! or the case could never pass — better said by `validate` than found failing in CI.

use serde_json::Value;

use super::Parsed;
use crate::diagnostic::Diagnostic;
use crate::pointer;
use crate::suggest;

/// What a rejection can name besides a mapped field: no contact channel left, and a filter
/// that failed to render (`crate::customer` and `crate::mapping` name them so).
const CONTACT: &str = "contact";
const FILTER: &str = "filter";

pub fn check(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let Some(cases) = p.doc.get("tests").and_then(Value::as_array) else {
        return;
    };
    let mapping = p.doc.get("mapping").and_then(Value::as_object);
    let mapped: Vec<&str> = mapping
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let custom: Vec<&str> = mapping
        .and_then(|m| m.get("customize_field"))
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let text_source = matches!(
        p.doc.pointer("/source/type").and_then(Value::as_str),
        None | Some("csv" | "xlsx" | "sql")
    );
    for (i, case) in cases.iter().enumerate() {
        let at = format!("/tests/{i}");
        if let Some(expect) = case.get("expect").and_then(Value::as_object) {
            for (key, value) in expect {
                let ptr = format!("{at}/expect/{}", pointer::segment(key));
                if !mapped.contains(&key.as_str()) {
                    out.push(unknown(p, &ptr, key, &mapped, "a mapped field"));
                } else if let Some(fields) = value.as_object().filter(|_| key == "customize_field")
                {
                    for name in fields.keys() {
                        if !custom.contains(&name.as_str()) {
                            let ptr = format!("{ptr}/{}", pointer::segment(name));
                            out.push(unknown(
                                p,
                                &ptr,
                                name,
                                &custom,
                                "a custom field the mapping renders",
                            ));
                        }
                    }
                }
            }
        }
        if let Some(field) = case.get("reject").and_then(Value::as_str) {
            let mut names = mapped.clone();
            names.push(CONTACT);
            if p.doc.get("filter").is_some() {
                names.push(FILTER);
            }
            if !names.contains(&field) {
                let d = Diagnostic::new(
                    p.index.value_of(&format!("{at}/reject")),
                    format!(
                        "`{}`: a rejection never names `{field}`: it names a mapped field, `{CONTACT}` (no contact channel left){}",
                        pointer::display(&format!("{at}/reject")),
                        if names.contains(&FILTER) {
                            format!(" or `{FILTER}` (the filter failed)")
                        } else {
                            String::new()
                        },
                    ),
                );
                out.push(with_suggestion(d, field, &names));
            }
        }
        if text_source && let Some(row) = case.get("row").and_then(Value::as_object) {
            for (key, value) in row {
                if value.is_array() || value.is_object() {
                    let ptr = format!("{at}/row/{}", pointer::segment(key));
                    out.push(Diagnostic::new(
                        p.index.value_of(&ptr),
                        format!(
                            "`{}`: this job's source gives text, never a list or a mapping",
                            pointer::display(&ptr)
                        ),
                    ));
                }
            }
        }
    }
}

/// `key` at `ptr` is not among `names` (what `what` says they are).
fn unknown(p: &Parsed<'_>, ptr: &str, key: &str, names: &[&str], what: &str) -> Diagnostic {
    let d = Diagnostic::new(
        p.index.key_of(ptr),
        format!(
            "`{}`: `{key}` is not {what}, so this case could never pass",
            pointer::display(ptr)
        ),
    );
    with_suggestion(d, key, names)
}

fn with_suggestion(d: Diagnostic, name: &str, names: &[&str]) -> Diagnostic {
    match suggest::closest(name, names.iter().copied()) {
        Some(near) => d.with_hint(format!("did you mean `{near}`?")),
        None if names.is_empty() => d,
        None => d.with_hint(format!("it can be one of: {}", names.join(", "))),
    }
}
