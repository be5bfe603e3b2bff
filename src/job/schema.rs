//! The job file's JSON Schema — the single source of truth for its shape — and the
//! translation of schema errors into sentences a user understands, at the right line.
//!
//! The schema is embedded at build time from `schemas/job.schema.json`, the very file that
//! editors use through the `# yaml-language-server: $schema=` line. Messages come from the
//! schema where it carries an `errorMessage` (the convention VS Code's JSON support reads),
//! otherwise from the error kind.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::yaml::PositionIndex;
use crate::diagnostic::Diagnostic;
use crate::pointer;
use crate::suggest;

/// The schema text, exactly as shipped in `schemas/`.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/job.schema.json");

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(SCHEMA_TEXT).expect("the embedded schema is JSON"))
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(schema()).expect("the embedded schema is a valid schema")
    })
}

/// Every schema violation in `doc`, each at its position, in file order.
pub fn check(doc: &Value, index: &PositionIndex) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for error in validator().iter_errors(doc) {
        for d in describe(&error, index) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out.sort_by_key(|d| d.pos);
    out
}

fn describe(error: &ValidationError<'_>, index: &PositionIndex) -> Vec<Diagnostic> {
    let instance_path = error.instance_path().as_str();
    let schema_path = error.schema_path().as_str();
    let field = pointer::display(instance_path);
    let subschema = resolve_parent(schema_path);
    let custom = subschema
        .and_then(|s| s.get("errorMessage"))
        .and_then(Value::as_str);
    let instance = error.instance();

    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| {
                let pointer = format!("{instance_path}/{}", pointer::segment(key));
                let allowed: Vec<&str> = subschema
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| {
                        p.keys()
                            .map(String::as_str)
                            .filter(|k| !is_literal_secret_key(k))
                            .collect()
                    })
                    .unwrap_or_default();
                let place = if field.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{field}`")
                };
                let mut d = Diagnostic::new(
                    index.key_of(&pointer),
                    format!("unknown key `{key}` {place}"),
                );
                d = match suggest::closest(key, allowed.iter().copied()) {
                    Some(near) => d.with_hint(format!("did you mean `{near}`?")),
                    None if !allowed.is_empty() => {
                        d.with_hint(format!("allowed keys: {}", allowed.join(", ")))
                    }
                    None => d,
                };
                d
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let message = if field.is_empty() {
                let needed_for = match (key, doc_kind(instance)) {
                    ("source" | "mapping", Some(kind)) | ("query" | "output", Some(kind)) => {
                        format!(" (needed by kind: {kind})")
                    }
                    _ => String::new(),
                };
                format!("missing required top-level key `{key}`{needed_for}")
            } else {
                format!("`{field}` is missing the required key `{key}`")
            };
            let desc = subschema
                .and_then(|s| s.pointer(&format!("/properties/{key}/description")))
                .and_then(Value::as_str);
            let d = Diagnostic::new(index.key_of(instance_path), message);
            vec![match desc {
                Some(desc) => d.with_hint(format!("`{key}`: {desc}")),
                None => d,
            }]
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_string();
            let pointer = format!("{instance_path}/{}", pointer::segment(&key));
            let custom = resolve(schema_path)
                .and_then(|s| s.get("errorMessage"))
                .and_then(Value::as_str);
            let message = match custom {
                Some(m) => format!("`{key}` in `{field}`: {m}"),
                None => format!("`{key}` is not an allowed key in `{field}`"),
            };
            vec![Diagnostic::new(index.key_of(&pointer), message)]
        }
        kind => {
            let pos = match kind {
                // A forbidden key: point at the key, not its value.
                ValidationErrorKind::Not { .. } | ValidationErrorKind::FalseSchema => {
                    index.key_of(instance_path)
                }
                _ => index.value_of(instance_path),
            };
            let subject = if field.is_empty() {
                "the job file".to_string()
            } else {
                format!("`{field}`")
            };
            let message = match custom {
                Some(m) => format!("{subject}: {m}"),
                None => format!("{subject} {}", reason(kind, instance, subschema)),
            };
            vec![Diagnostic::new(pos, message)]
        }
    }
}

fn doc_kind(doc: &Value) -> Option<&str> {
    doc.get("kind").and_then(Value::as_str)
}

fn is_literal_secret_key(key: &str) -> bool {
    schema()
        .pointer(&format!("/properties/{key}/$ref"))
        .is_some()
}

fn found(instance: &Value) -> String {
    match instance {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn type_name(t: &str) -> &str {
    match t {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "text (a string)",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping of keys to values",
        "null" => "null",
        other => other,
    }
}

fn reason(kind: &ValidationErrorKind, instance: &Value, schema: Option<&Value>) -> String {
    let bound = |k: &str| schema.and_then(|s| s.get(k)).cloned();
    let range = || match (bound("minimum"), bound("maximum")) {
        (Some(lo), Some(hi)) => Some(format!("must be between {lo} and {hi}")),
        _ => None,
    };
    match kind {
        ValidationErrorKind::Type { .. } => {
            let expected = match schema.and_then(|s| s.get("type")) {
                Some(Value::String(t)) => type_name(t).to_string(),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(type_name)
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ => "of another type".into(),
            };
            format!("must be {expected}, not {}", found(instance))
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| match o {
                            Value::String(s) if s.is_empty() => "\"\"".to_string(),
                            Value::String(s) => s.clone(),
                            o => o.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "must be one of {}, not {}",
                opts.join(", "),
                found(instance)
            )
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("must be {expected_value}, not {}", found(instance))
        }
        ValidationErrorKind::Minimum { limit } => {
            range().unwrap_or_else(|| format!("must be at least {limit}"))
                + &format!(", found {instance}")
        }
        ValidationErrorKind::Maximum { limit } => {
            range().unwrap_or_else(|| format!("must be at most {limit}"))
                + &format!(", found {instance}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be greater than {limit}, found {instance}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be less than {limit}, found {instance}")
        }
        ValidationErrorKind::MinLength { limit } if *limit == 1 => "must not be empty".into(),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} character{}", plural(*limit))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} character{}", plural(*limit))
        }
        ValidationErrorKind::MinItems { limit } => format!("needs at least {limit} item(s)"),
        ValidationErrorKind::MinProperties { limit } => format!("needs at least {limit} key(s)"),
        ValidationErrorKind::UniqueItems => "must not repeat an item".into(),
        ValidationErrorKind::Pattern { pattern } => {
            format!(
                "{} does not have the expected form (pattern {pattern})",
                found(instance)
            )
        }
        ValidationErrorKind::Not { .. } | ValidationErrorKind::FalseSchema => {
            "is not allowed here".into()
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            format!("has an unexpected shape ({})", found(instance))
        }
        other => format!("is invalid: {other:?}"),
    }
}

/// Follow a schema keyword location (JSON pointer, possibly through `$ref`) to the node.
fn resolve(schema_path: &str) -> Option<&'static Value> {
    let root = schema();
    let mut node = root;
    for seg in schema_path.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg == "$ref" {
            let target = node.get("$ref")?.as_str()?;
            node = root.pointer(target.strip_prefix('#')?)?;
            continue;
        }
        node = match node {
            Value::Object(m) => m.get(&seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The subschema that holds the failing keyword (the path minus its last segment).
fn resolve_parent(schema_path: &str) -> Option<&'static Value> {
    let cut = schema_path.rfind('/')?;
    resolve(&schema_path[..cut])
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_compiles() {
        let _ = validator();
    }
}
