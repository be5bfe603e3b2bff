//! How exported customers are written: CSV with a header (chosen columns, tags as their
//! names, nested values as JSON text) or JSON Lines (each customer as received).
//!
//! Numbers are written from `serde_json`'s own integer text, so 64-bit ids stay exact.

use serde_json::Value;

use crate::job::model::OutputFormat;
use crate::suggest;

/// The customer fields of a query answer (CDP-API §5), in the order a default CSV uses.
/// `tags` (a list) and `customize_field` (JSON text) are not scalar and must be asked for.
pub const SCALAR_FIELDS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "full_name",
    "whatsApp_phone",
    "sms_phone",
    "viber_phone",
    "line",
    "messenger",
    "instagram",
    "email",
    "country",
    "birthday",
    "remark",
    "gender",
    "weight",
    "source_type",
    "source_channel_key",
    "status",
    "whatApp_subscribe",
    "sms_subscribe",
    "tenant_id",
    "created_at",
    "updated_at",
];

/// Columns that are not in [`SCALAR_FIELDS`] but may be chosen: the two nested ones, and
/// batch_create fields the query documentation does not list but an answer may carry.
const OTHER_FIELDS: &[&str] = &[
    "tags",
    "customize_field",
    "zalo",
    "address",
    "time_zone",
    "belong_seat_user",
];

/// Whether a column names something a customer has: a field of the query answer, or one
/// custom field (`customize_<type>_<n>`, read out of `customize_field`).
pub fn check_column(name: &str) -> Result<(), String> {
    if SCALAR_FIELDS.contains(&name) || OTHER_FIELDS.contains(&name) || is_custom_field(name) {
        return Ok(());
    }
    if name.starts_with("customize_") {
        return Err(format!(
            "unknown column `{name}`: a custom field is named customize_<type>_<n>, e.g. customize_1_14 (`cdpjob fields JOB` lists them)"
        ));
    }
    let known = SCALAR_FIELDS.iter().chain(OTHER_FIELDS);
    // batch_create's spelling `whats_app_phone` is the usual slip: case and one `_` away.
    Err(match suggest::closest(name, known.clone().copied()) {
        Some(s) => format!("unknown column `{name}`; did you mean `{s}`?"),
        None => format!(
            "unknown column `{name}`; a column is one of {}, or a custom field such as customize_1_14",
            known.copied().collect::<Vec<_>>().join(", ")
        ),
    })
}

fn is_custom_field(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("customize_") else {
        return false;
    };
    let mut parts = rest.split('_');
    let digits =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// Turns pages of customers into the bytes of the output file.
#[derive(Debug, Clone)]
pub enum Encoder {
    Csv { columns: Vec<String> },
    Jsonl,
}

impl Encoder {
    pub fn new(format: OutputFormat, columns: &[String]) -> Encoder {
        match format {
            OutputFormat::Csv => Encoder::Csv {
                columns: columns.to_vec(),
            },
            OutputFormat::Jsonl => Encoder::Jsonl,
        }
    }

    /// What the file starts with: the CSV header, nothing for JSON Lines.
    pub fn header(&self) -> Vec<u8> {
        match self {
            Encoder::Csv { columns } => csv_lines(std::iter::once(columns.clone())),
            Encoder::Jsonl => Vec::new(),
        }
    }

    /// Append one page of customers to `out`.
    pub fn encode(&self, customers: &[Value], out: &mut Vec<u8>) {
        match self {
            Encoder::Csv { columns } => {
                out.extend(csv_lines(customers.iter().map(|c| {
                    columns.iter().map(|col| cell(c, col)).collect::<Vec<_>>()
                })))
            }
            Encoder::Jsonl => {
                for c in customers {
                    serde_json::to_writer(&mut *out, c).expect("a JSON value serializes");
                    out.push(b'\n');
                }
            }
        }
    }
}

fn csv_lines(records: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for r in records {
        w.write_record(&r)
            .expect("writing CSV to memory cannot fail");
    }
    w.into_inner().expect("writing CSV to memory cannot fail")
}

/// One CSV cell: text as is, numbers exact, absent or null empty, `tags` as the tag names
/// joined with commas, lists and objects as JSON text.
pub fn cell(customer: &Value, column: &str) -> String {
    let value = if is_custom_field(column) && customer.get(column).is_none() {
        custom_field(customer, column)
    } else {
        customer.get(column).cloned()
    };
    match (column, value) {
        (_, None | Some(Value::Null)) => String::new(),
        ("tags", Some(Value::Array(tags))) => tags
            .iter()
            .map(|t| match t.get("tag_name") {
                Some(Value::String(name)) => name.clone(),
                _ => scalar_text(t),
            })
            .collect::<Vec<_>>()
            .join(","),
        (_, Some(v)) => scalar_text(&v),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A custom field out of `customize_field` (JSON text, or an object if the API sends one).
fn custom_field(customer: &Value, name: &str) -> Option<Value> {
    match customer.get("customize_field")? {
        Value::String(text) => serde_json::from_str::<Value>(text).ok()?.get(name).cloned(),
        Value::Object(map) => map.get(name).cloned(),
        _ => None,
    }
}

/// A customer's id, exact.
pub fn id_of(customer: &Value) -> Option<i64> {
    match customer.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer() -> Value {
        serde_json::from_str(
            r#"{"id": 1214631327620775936, "full_name": "Lee, \"Ann\"", "whatsApp_phone": "8613800000001",
                "tags": [{"id": 1, "tag_name": "vip"}, {"id": 2, "tag_name": "new"}],
                "customize_field": "{\"customize_1_14\": \"gold\", \"customize_4_52\": [\"1\",\"2\"]}",
                "gender": 1, "email": null, "remark": "two\nlines"}"#,
        )
        .unwrap()
    }

    #[test]
    fn cells_keep_ids_exact_and_flatten_what_is_nested() {
        let c = customer();
        assert_eq!(cell(&c, "id"), "1214631327620775936");
        assert_eq!(cell(&c, "tags"), "vip,new");
        assert_eq!(cell(&c, "gender"), "1");
        assert_eq!(cell(&c, "email"), "");
        assert_eq!(cell(&c, "country"), "");
        assert_eq!(cell(&c, "customize_1_14"), "gold");
        assert_eq!(cell(&c, "customize_4_52"), r#"["1","2"]"#);
        assert_eq!(id_of(&c), Some(1214631327620775936));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let e = Encoder::new(
            OutputFormat::Csv,
            &[
                "id".into(),
                "full_name".into(),
                "tags".into(),
                "remark".into(),
            ],
        );
        let mut out = e.header();
        e.encode(&[customer()], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,full_name,tags,remark\n1214631327620775936,\"Lee, \"\"Ann\"\"\",\"vip,new\",\"two\nlines\"\n"
        );
    }

    #[test]
    fn jsonl_writes_each_customer_as_received() {
        let e = Encoder::new(OutputFormat::Jsonl, &[]);
        assert!(e.header().is_empty());
        let mut out = Vec::new();
        e.encode(&[customer(), json!({"id": 2})], &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(r#"{"id":1214631327620775936,"full_name":"Lee, \"Ann\"""#));
        assert_eq!(serde_json::from_str::<Value>(lines[0]).unwrap(), customer());
    }

    #[test]
    fn columns_are_checked_with_a_suggestion() {
        assert!(check_column("whatsApp_phone").is_ok());
        assert!(check_column("customize_4_52").is_ok());
        assert!(check_column("tags").is_ok());
        assert_eq!(
            check_column("whats_app_phone").unwrap_err(),
            "unknown column `whats_app_phone`; did you mean `whatsApp_phone`?"
        );
        assert!(
            check_column("full_nme")
                .unwrap_err()
                .contains("`full_name`")
        );
        assert!(
            check_column("customize_x")
                .unwrap_err()
                .contains("custom field")
        );
    }
}
