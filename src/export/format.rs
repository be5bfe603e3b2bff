//! How exported customers are written: CSV with a header (chosen columns, tags as their
//! names, nested values as JSON text) or JSON Lines (each customer as received).
//!
//! Numbers are written from `serde_json`'s own integer text, so 64-bit ids stay exact.

use serde_json::Value;

// Which columns a query answer has is the API's knowledge; the default CSV uses its order.
pub use crate::api::wire::QUERY_SCALAR_FIELDS as SCALAR_FIELDS;
use crate::api::wire::is_custom_field;
use crate::job::model::OutputFormat;

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
}
