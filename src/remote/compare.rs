//! What a stored customer should be after a customer was sent under a merge mode (SPEC §12
//! R15, inferred: the vendor does not document its merges), and where the one the query
//! endpoint returns differs from that. `plan --remote` reads the differences as what a run
//! would change (`old → new`); `verify` reads them as mismatches (`sent`, `stored`).
//!
//! - `replace`: the stored customer equals the sent one; a field not sent is cleared.
//! - `update`: every sent field equals stored; the sent tags are among the stored ones (tags
//!   as a set of names); each sent `customize_field` key equals stored, key by key.
//! - `keep`: an existing customer is left as it is (nothing to compare).
//!
//! Fields the query endpoint does not return (CDP-API §5: `zalo`, `address`, `time_zone`,
//! `belong_seat_user`) are `unverifiable`, never a difference (R14).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::customer::{Customer, Field, FieldValue};
use crate::job::model::Merge;

/// The batch_create fields a query answer does not carry (CDP-API §5 lists the others).
pub const UNVERIFIABLE: [Field; 4] = [
    Field::Zalo,
    Field::Address,
    Field::TimeZone,
    Field::BelongSeatUser,
];

/// The name a query answer gives a batch_create field, for the fields it carries as
/// they are (tags and custom fields are compared apart).
fn answer_name(field: Field) -> Option<&'static str> {
    match field {
        Field::WhatsAppPhone => Some("whatsApp_phone"),
        Field::TagStr | Field::CustomizeField => None,
        f if UNVERIFIABLE.contains(&f) => None,
        f => Some(f.name()),
    }
}

/// One field where the stored customer is not what the merge makes of the sent one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The batch_create name (`full_name`, `tagStr`), or `customize_field.<key>`.
    pub field: String,
    /// What was sent; none when the field was not sent (and `replace` clears it).
    pub sent: Option<String>,
    /// What is stored; none when the field is empty or absent.
    pub stored: Option<String>,
    /// What the field holds after the merge: the sent value, none when cleared, and for
    /// `update`'s tags the stored ones with the sent ones added.
    pub expected: Option<String>,
}

/// A stored customer compared with a sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    /// Fields sent that the query endpoint does not return: nothing can be said of them.
    pub unverifiable: Vec<&'static str>,
}

/// Compare `stored` (one customer of a query answer) with what `merge` makes of `sent`.
pub fn compare(merge: Merge, sent: &Customer, stored: &Value) -> Comparison {
    let mut out = Comparison::default();
    if merge == Merge::Keep {
        return out;
    }
    out.unverifiable = UNVERIFIABLE
        .iter()
        .filter(|f| sent.get(**f).is_some())
        .map(|f| f.name())
        .collect();
    let replace = merge == Merge::Replace;
    for field in Field::ALL {
        let Some(name) = answer_name(field) else {
            continue;
        };
        let sent_text = sent.get(field).map(value_text);
        if sent_text.is_none() && !replace {
            continue;
        }
        let stored_text = scalar(stored.get(name));
        if sent_text != stored_text {
            out.differences.push(Difference {
                field: field.name().to_string(),
                expected: sent_text.clone(),
                sent: sent_text,
                stored: stored_text,
            });
        }
    }
    compare_tags(replace, sent, stored, &mut out.differences);
    compare_custom(replace, sent, stored, &mut out.differences);
    out
}

fn compare_tags(replace: bool, sent: &Customer, stored: &Value, out: &mut Vec<Difference>) {
    let sent_tags: Option<BTreeSet<String>> = sent.text(Field::TagStr).map(tag_names);
    if sent_tags.is_none() && !replace {
        return;
    }
    let sent_tags = sent_tags.unwrap_or_default();
    let stored_tags: BTreeSet<String> = stored
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("tag_name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let expected = if replace {
        sent_tags.clone()
    } else {
        stored_tags.union(&sent_tags).cloned().collect()
    };
    if expected != stored_tags {
        out.push(Difference {
            field: Field::TagStr.name().to_string(),
            sent: joined(&sent_tags),
            stored: joined(&stored_tags),
            expected: joined(&expected),
        });
    }
}

fn compare_custom(replace: bool, sent: &Customer, stored: &Value, out: &mut Vec<Difference>) {
    let sent_text = sent.text(Field::CustomizeField);
    if sent_text.is_none() && !replace {
        return;
    }
    // A sent customize_field is the text of a JSON object: the customer's rules checked it.
    let sent_map: Map<String, Value> = sent_text
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let stored_map = match stored.get("customize_field") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Map<String, Value>>(s) {
            Ok(m) => m,
            Err(_) => {
                // Not an object's text: the keys cannot be told apart; the whole is wrong.
                out.push(Difference {
                    field: Field::CustomizeField.name().to_string(),
                    sent: sent_text.map(str::to_string),
                    stored: Some(s.clone()),
                    expected: sent_text.map(str::to_string),
                });
                return;
            }
        },
        Some(Value::Object(m)) => m.clone(),
        Some(other) => Map::from_iter([(String::new(), other.clone())]),
    };
    let key_name = |k: &str| format!("{}.{k}", Field::CustomizeField.name());
    for (key, value) in &sent_map {
        if stored_map.get(key) != Some(value) {
            out.push(Difference {
                field: key_name(key),
                sent: Some(value.to_string()),
                stored: stored_map.get(key).map(Value::to_string),
                expected: Some(value.to_string()),
            });
        }
    }
    if replace {
        for (key, value) in &stored_map {
            if !sent_map.contains_key(key) {
                out.push(Difference {
                    field: key_name(key),
                    sent: None,
                    stored: Some(value.to_string()),
                    expected: None,
                });
            }
        }
    }
}

/// A sent value as text: integers in decimal.
fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Text(s) => s.clone(),
        FieldValue::Int(i) => i.to_string(),
    }
}

/// A stored scalar as text, so that `1` and `"1"` compare equal (a field's JSON type is
/// the API's business); null and empty text are both "absent".
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `tagStr`'s names: separated by commas, trimmed, empty ones dropped (as the API reads it).
fn tag_names(tag_str: &str) -> BTreeSet<String> {
    tag_str
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn joined(tags: &BTreeSet<String>) -> Option<String> {
    (!tags.is_empty()).then(|| tags.iter().cloned().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer(v: Value) -> Customer {
        Customer::from_json(v.as_object().unwrap()).unwrap()
    }

    fn stored() -> Value {
        json!({
            "id": 7, "full_name": "Ann Lee", "whatsApp_phone": "8613800000001",
            "email": "ann@example.com", "gender": 0, "country": null, "remark": "",
            "tags": [{"id": 1, "tag_name": "vip"}, {"id": 2, "tag_name": "new"}],
            "customize_field": "{\"customize_1_14\": \"gold\", \"customize_2_3\": 5}",
        })
    }

    /// A difference as (field, sent, stored, expected).
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn fields(c: &Comparison) -> Vec<Row<'_>> {
        c.differences
            .iter()
            .map(|d| {
                (
                    d.field.as_str(),
                    d.sent.as_deref(),
                    d.stored.as_deref(),
                    d.expected.as_deref(),
                )
            })
            .collect()
    }

    #[test]
    fn update_checks_what_was_sent_only() {
        let same = customer(json!({
            "full_name": "Ann Lee", "whats_app_phone": "8613800000001", "gender": 0,
            "tagStr": "vip", "customize_field": "{\"customize_1_14\": \"gold\"}",
        }));
        assert_eq!(
            compare(Merge::Update, &same, &stored()),
            Comparison::default()
        );
        let changed = customer(json!({
            "full_name": "Ann Li", "whats_app_phone": "8613800000001", "country": "CN",
            "tagStr": "vip, b2b", "customize_field": "{\"customize_1_14\": \"silver\", \"customize_2_3\": 5}",
            "address": "1 Road", "zalo": "1",
        }));
        let c = compare(Merge::Update, &changed, &stored());
        assert_eq!(
            fields(&c),
            [
                ("full_name", Some("Ann Li"), Some("Ann Lee"), Some("Ann Li")),
                ("country", Some("CN"), None, Some("CN")),
                (
                    "tagStr",
                    Some("b2b,vip"),
                    Some("new,vip"),
                    Some("b2b,new,vip")
                ),
                (
                    "customize_field.customize_1_14",
                    Some("\"silver\""),
                    Some("\"gold\""),
                    Some("\"silver\"")
                ),
            ]
        );
        assert_eq!(c.unverifiable, ["zalo", "address"]);
    }

    #[test]
    fn replace_clears_what_was_not_sent() {
        let sent = customer(json!({
            "full_name": "Ann Lee", "whats_app_phone": "8613800000001", "tagStr": "vip",
            "customize_field": "{\"customize_1_14\": \"gold\"}",
        }));
        let c = compare(Merge::Replace, &sent, &stored());
        assert_eq!(
            fields(&c),
            [
                ("email", None, Some("ann@example.com"), None),
                ("gender", None, Some("0"), None),
                ("tagStr", Some("vip"), Some("new,vip"), Some("vip")),
                ("customize_field.customize_2_3", None, Some("5"), None),
            ]
        );
    }

    #[test]
    fn keep_compares_nothing_and_types_do_not_matter_for_plain_fields() {
        let sent = customer(json!({"full_name": "X", "whats_app_phone": "1", "gender": 1}));
        assert_eq!(
            compare(Merge::Keep, &sent, &stored()),
            Comparison::default()
        );
        let as_text = json!({"full_name": "X", "whatsApp_phone": "1", "gender": "1"});
        assert!(
            compare(Merge::Update, &sent, &as_text)
                .differences
                .is_empty()
        );
        // A custom field's value is compared as JSON: "5" is not 5.
        let sent = customer(
            json!({"full_name": "Ann Lee", "whats_app_phone": "8613800000001",
                                    "customize_field": "{\"customize_2_3\": \"5\"}"}),
        );
        assert_eq!(
            fields(&compare(Merge::Update, &sent, &stored())),
            [(
                "customize_field.customize_2_3",
                Some("\"5\""),
                Some("5"),
                Some("\"5\"")
            )]
        );
    }
}
