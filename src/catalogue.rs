//! The tenant's field catalogue (CDP-API §6): `cdpjob fields JOB` lists it, and
//! `cdpjob validate --remote JOB` checks a job's custom fields against it — keys that are
//! not the tenant's, literal choice values that are not options — at file:line:col.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::api::client::ApiError;
use crate::api::wire::FieldDef;
use crate::connection as connect;
use crate::diagnostic::Diagnostic;
use crate::error::{Again, Error, Result};
use crate::job::yaml::{self, PositionIndex};
use crate::job::{Job, JobErrors};
use crate::pointer;
use crate::suggest;

/// One field as `fields` shows it: the definition plus its type in words and its options.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    #[serde(flatten)]
    pub def: FieldDef,
    pub type_name: &'static str,
    /// Choice options (single and multiple choice fields): the id is what a record sends.
    pub options: Vec<ChoiceOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ChoiceOption {
    /// Sent as text in a record; some tenants' definitions give it as a number.
    #[serde(deserialize_with = "text_or_number")]
    pub id: String,
    pub name: String,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match <Value as serde::Deserialize>::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "an option id must be text or a number, not {other}"
        ))),
    }
}

pub fn type_name(field_type: i64) -> &'static str {
    match field_type {
        1 => "text",
        2 => "number",
        3 => "single choice",
        4 => "multiple choice",
        5 => "date",
        6 => "datetime",
        7 => "tags",
        _ => "unknown",
    }
}

impl Field {
    pub fn new(def: FieldDef) -> Field {
        let options = match def.field_type {
            3 | 4 => def
                .field_type_info
                .as_deref()
                .and_then(|t| serde_json::from_str::<Vec<ChoiceOption>>(t).ok())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Field {
            type_name: type_name(def.field_type),
            options,
            def,
        }
    }
}

/// Ask the job's API for the tenant's fields.
pub fn fetch(job: &Job) -> Result<Vec<Field>> {
    crate::runner::begin::runtime()?.block_on(async {
        let conn = connect::connect(job).await?;
        let reply = conn
            .client
            .fields(job.spec.api.tenant_id, &job.spec.api.app_key, None)
            .await;
        if let Some(sim) = conn.sim {
            sim.stop().await;
        }
        let reply = reply.map_err(|e| match e {
            ApiError::Config(m) => Error::Usage(m),
            other => Error::stopped(
                format!("cannot read the field catalogue: {other}"),
                Again::RunAgain,
            ),
        })?;
        if reply.code != 0 {
            return Err(Error::stopped(
                format!(
                    "the API refused to list the fields: code {}: {}",
                    reply.code,
                    reply.message.unwrap_or_default()
                ),
                Again::RunAgain,
            ));
        }
        let mut fields: Vec<Field> = reply
            .data
            .unwrap_or_default()
            .into_iter()
            .map(Field::new)
            .collect();
        fields.sort_by_key(|f| f.def.sequence);
        Ok(fields)
    })
}

/// The catalogue as a table for people.
pub fn render_table(job: &Job, fields: &[Field]) -> String {
    let mut rows = vec![[
        "name".to_string(),
        "type".to_string(),
        "display name".to_string(),
        "notes".to_string(),
    ]];
    for f in fields {
        let display = match (&f.def.display_en_name, &f.def.display_name) {
            (Some(en), Some(zh)) if en != zh => format!("{en} ({zh})"),
            (Some(n), _) | (None, Some(n)) => n.clone(),
            (None, None) => String::new(),
        };
        let mut notes = Vec::new();
        if f.def.required {
            notes.push("required".to_string());
        }
        if !f.options.is_empty() {
            notes.push(format!(
                "options {}",
                f.options
                    .iter()
                    .map(|o| format!("{}={}", o.id, o.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if matches!(f.def.field_type, 5 | 6)
            && let Some(fmt) = &f.def.field_type_info
        {
            notes.push(format!("format {fmt}"));
        }
        rows.push([
            f.def.name.clone(),
            f.type_name.to_string(),
            display,
            notes.join("; "),
        ]);
    }
    // Display names are often Chinese: pad by terminal columns, not characters.
    let cols = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    let width = |i: usize| rows.iter().map(|r| cols(&r[i])).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = format!(
        "{} field(s) of tenant {} ({}):\n",
        fields.len(),
        job.spec.api.tenant_id,
        job.spec.api.base_url
    );
    for r in &rows {
        let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - cols(s)));
        let line = format!(
            "  {}  {}  {}  {}",
            pad(&r[0], w0),
            pad(&r[1], w1),
            pad(&r[2], w2),
            r[3]
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push_str(
        "custom fields go under mapping.customize_field; a choice sends the option's id\n",
    );
    out
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Check a job's custom fields against the catalogue: `mapping.customize_field` keys and
/// literal values of a batch_create job, `customize_*` columns of an export.
pub fn check_job(job: &Job, fields: &[Field]) -> Vec<Diagnostic> {
    let Ok((doc, index)) = yaml::parse(&job.text) else {
        return Vec::new(); // the job loaded, so this does not happen
    };
    let mut out = Vec::new();
    let custom: Vec<&Field> = fields
        .iter()
        .filter(|f| f.def.name.starts_with("customize_"))
        .collect();
    if let Some(map) = doc
        .pointer("/mapping/customize_field")
        .and_then(Value::as_object)
    {
        for (key, value) in map {
            let ptr = format!("/mapping/customize_field/{}", pointer::segment(key));
            let Some(field) = custom.iter().find(|f| f.def.name == *key) else {
                out.push(unknown(&index, &ptr, key, &custom, job));
                continue;
            };
            let literals: Vec<(String, &str)> = match value {
                Value::String(s) => vec![(ptr.clone(), s.as_str())],
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| Some((format!("{ptr}/{i}"), v.as_str()?)))
                    .collect(),
                _ => Vec::new(),
            };
            for (p, text) in literals {
                if is_template(text) || text.is_empty() {
                    continue;
                }
                if let Some(message) = check_literal(field, text) {
                    out.push(Diagnostic::new(
                        index.value_of(&p),
                        format!("`mapping.customize_field.{key}`: {message}"),
                    ));
                }
            }
        }
    }
    if let Some(columns) = doc.pointer("/output/columns").and_then(Value::as_array) {
        for (i, c) in columns.iter().enumerate() {
            if let Some(name) = c.as_str()
                && name.starts_with("customize_")
                && !custom.iter().any(|f| f.def.name == name)
            {
                out.push(unknown(
                    &index,
                    &format!("/output/columns/{i}"),
                    name,
                    &custom,
                    job,
                ));
            }
        }
    }
    out.sort_by_key(|d| d.pos);
    out
}

fn unknown(
    index: &PositionIndex,
    ptr: &str,
    name: &str,
    custom: &[&Field],
    job: &Job,
) -> Diagnostic {
    let nearest = suggest::closest(name, custom.iter().map(|f| f.def.name.as_str()));
    let mut message = format!(
        "`{name}` is not a custom field of tenant {}",
        job.spec.api.tenant_id
    );
    if let Some(n) = nearest {
        let _ = write!(message, "; did you mean `{n}`?");
    }
    let known = custom
        .iter()
        .map(|f| format!("{} ({})", f.def.name, f.type_name))
        .collect::<Vec<_>>()
        .join(", ");
    Diagnostic::new(
        if ptr.starts_with("/output") {
            index.value_of(ptr)
        } else {
            index.key_of(ptr)
        },
        message,
    )
    .with_hint(if known.is_empty() {
        "the tenant has no custom fields".to_string()
    } else {
        format!("the tenant's custom fields: {known}")
    })
}

/// Whether a literal value fits its field; `None` when it does.
fn check_literal(field: &Field, text: &str) -> Option<String> {
    match field.def.field_type {
        3 | 4 if !field.options.is_empty() => {
            if field.options.iter().any(|o| o.id == text) {
                return None;
            }
            let listed = field
                .options
                .iter()
                .map(|o| format!("{}={}", o.id, o.name))
                .collect::<Vec<_>>()
                .join(", ");
            Some(match field.options.iter().find(|o| o.name == text) {
                Some(o) => format!(
                    "{text:?} is an option's name; send its id {:?} (options: {listed})",
                    o.id
                ),
                None => format!("{text:?} is not an option of this field (options: {listed})"),
            })
        }
        2 if !text.trim().parse::<f64>().is_ok_and(f64::is_finite) => Some(format!(
            "{text:?} is not a number, and this is a number field"
        )),
        5 if !is_date(text) => Some(format!("{text:?} is not a date yyyy-MM-dd")),
        6 if !crate::api::wire::is_api_datetime(text) => {
            Some(format!("{text:?} is not a datetime yyyy-MM-dd HH:mm:ss"))
        }
        _ => None,
    }
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok()
}

/// `validate --remote`: the job's problems with the catalogue, as job errors.
pub fn remote_errors(job: &Job, fields: &[Field]) -> Option<JobErrors> {
    let diagnostics = check_job(job, fields);
    (!diagnostics.is_empty()).then(|| JobErrors {
        path: job.path.clone(),
        text: job.text.clone(),
        diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, ty: i64, info: Option<&str>) -> Field {
        Field::new(FieldDef {
            name: name.into(),
            display_name: None,
            display_en_name: None,
            field_type: ty,
            field_type_info: info.map(str::to_string),
            required: false,
            is_preset: false,
            sequence: 0,
        })
    }

    #[test]
    fn literals_are_checked_by_field_type() {
        let choice = field(
            "customize_3_7",
            3,
            Some(r#"[{"id":"1","name":"web"},{"id":"2","name":"store"}]"#),
        );
        assert_eq!(choice.options.len(), 2);
        assert_eq!(check_literal(&choice, "2"), None);
        assert_eq!(
            check_literal(&choice, "store").unwrap(),
            "\"store\" is an option's name; send its id \"2\" (options: 1=web, 2=store)"
        );
        assert!(
            check_literal(&choice, "9")
                .unwrap()
                .contains("not an option")
        );
        let number = field("customize_2_3", 2, None);
        assert_eq!(check_literal(&number, "12.5"), None);
        assert!(check_literal(&number, "many").is_some());
        assert!(check_literal(&number, "NaN").is_some() && check_literal(&number, "inf").is_some());
        let numeric_ids = field(
            "customize_3_8",
            3,
            Some(r#"[{"id":1,"name":"a"},{"id":"2","name":"b"}]"#),
        );
        assert_eq!(check_literal(&numeric_ids, "1"), None);
        assert_eq!(numeric_ids.options[1].id, "2");
        let date = field("customize_5_3", 5, None);
        assert_eq!(check_literal(&date, "2024-02-29"), None);
        assert!(check_literal(&date, "2023-02-29").is_some());
        let dt = field("customize_6_2", 6, None);
        assert_eq!(check_literal(&dt, "2024-02-29 10:00:00"), None);
        assert!(check_literal(&dt, "2024-02-29").is_some());
        assert_eq!(check_literal(&field("customize_1_14", 1, None), "x"), None);
    }
}
