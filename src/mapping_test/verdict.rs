//! Whether a case passed: what the mapping made of its row against what the case expects,
//! compared as the API would receive the customer (SPEC §12 R22: tagStr as its joined text,
//! customize_field as a mapping), and, when it did not, what differs field by field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::customer::{Customer, FieldError};
use crate::job::model::Expectation;
use crate::mapping::Outcome;

/// What the mapping made of a row, as a case reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Got {
    /// The customer as sent (customize_field as a mapping).
    Customer {
        customer: Map<String, Value>,
    },
    Rejected {
        errors: Vec<Rejection>,
    },
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub field: String,
    pub rule: String,
    pub message: String,
}

/// One expected field that the customer does not have as expected: the value as the case
/// wrote it and as the customer would be sent; `None` is "absent".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub expected: Option<Value>,
    pub rendered: Option<Value>,
}

/// A case's verdict: passed, or what differs (field by field when both are customers).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub got: Got,
    pub passed: bool,
    pub diff: Vec<FieldDiff>,
}

pub fn judge(expected: &Expectation<'_>, outcome: &Outcome) -> Verdict {
    let got = match outcome {
        Outcome::Valid(c) => Got::Customer {
            customer: as_sent(c),
        },
        Outcome::Rejected(errors) => Got::Rejected {
            errors: errors.iter().map(rejection).collect(),
        },
        Outcome::Skipped => Got::Skipped,
    };
    let (passed, diff) = match (expected, &got) {
        (Expectation::Customer(fields), Got::Customer { customer }) => {
            let diff = diff(fields, customer);
            (diff.is_empty(), diff)
        }
        (Expectation::Rejected(field), Got::Rejected { errors }) => {
            (errors.iter().any(|e| e.field == *field), Vec::new())
        }
        (Expectation::Skipped, Got::Skipped) => (true, Vec::new()),
        _ => (false, Vec::new()),
    };
    Verdict { got, passed, diff }
}

fn rejection(e: &FieldError) -> Rejection {
    Rejection {
        field: e.field.clone(),
        rule: e.rule.as_str().to_string(),
        message: e.message.clone(),
    }
}

/// The customer's fields as the request carries them, with the JSON text of
/// customize_field read back into the mapping a case writes.
fn as_sent(c: &Customer) -> Map<String, Value> {
    let Ok(Value::Object(mut map)) = serde_json::to_value(c) else {
        unreachable!("a customer serializes to an object")
    };
    if let Some(Value::String(text)) = map.get("customize_field")
        && let Ok(fields @ Value::Object(_)) = serde_json::from_str::<Value>(text)
    {
        map.insert("customize_field".into(), fields);
    }
    map
}

/// The expected fields that differ, in the case's order.
fn diff(expected: &Map<String, Value>, customer: &Map<String, Value>) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    for (field, written) in expected {
        let want = expected_value(field, written);
        let have = customer.get(field).map(canonical);
        if want != have {
            out.push(FieldDiff {
                field: field.clone(),
                // As the case wrote it: that is what its author looks for.
                expected: want.map(|_| written.clone()),
                rendered: customer.get(field).cloned(),
            });
        }
    }
    out
}

/// An expected value in the form it is compared in: null is "absent", a tagStr list is
/// joined as the mapping joins its items.
fn expected_value(field: &str, v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(items) if field == "tagStr" => Some(Value::String(
            items
                .iter()
                .map(|i| text_of(&canonical(i)))
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
                .join(","),
        )),
        other => Some(canonical(other)),
    }
}

/// Scalars as text, so that YAML's `5` equals the `5` a template rendered, and `1` the
/// gender the API receives as a number.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => Value::String(s.clone()),
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Field;

    fn customer() -> Outcome {
        Outcome::Valid(
            Customer::from_rendered([
                (Field::FullName, "Ann Lee".to_string()),
                (Field::Email, "ann@example.com".to_string()),
                (Field::TagStr, "vip,imported".to_string()),
                (Field::Gender, "1".to_string()),
                (
                    Field::CustomizeField,
                    r#"{"customize_1_14":"VIP"}"#.to_string(),
                ),
            ])
            .unwrap(),
        )
    }

    fn expect(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fields_compare_as_sent_with_numbers_as_text() {
        let want = expect(serde_json::json!({
            "full_name": "Ann Lee", "gender": 1, "tagStr": ["vip", "imported"],
            "customize_field": {"customize_1_14": "VIP"}, "sms_phone": null,
        }));
        let v = judge(&Expectation::Customer(&want), &customer());
        assert!(v.passed, "{:?}", v.diff);
        let joined = expect(serde_json::json!({"tagStr": "vip,imported"}));
        assert!(judge(&Expectation::Customer(&joined), &customer()).passed);
    }

    #[test]
    fn a_difference_is_reported_per_field() {
        let want = expect(
            serde_json::json!({"full_name": "Ann Lee", "email": "ann@example.org", "remark": "x"}),
        );
        let v = judge(&Expectation::Customer(&want), &customer());
        assert!(!v.passed);
        assert_eq!(
            v.diff,
            vec![
                FieldDiff {
                    field: "email".into(),
                    expected: Some("ann@example.org".into()),
                    rendered: Some("ann@example.com".into()),
                },
                FieldDiff {
                    field: "remark".into(),
                    expected: Some("x".into()),
                    rendered: None,
                },
            ]
        );
    }

    #[test]
    fn outcomes_must_match_the_expectation() {
        let rejected = Outcome::Rejected(vec![FieldError::new(
            "email",
            crate::customer::Rule::MaxLength,
            "too long",
        )]);
        assert!(judge(&Expectation::Rejected("email"), &rejected).passed);
        assert!(!judge(&Expectation::Rejected("sms_phone"), &rejected).passed);
        assert!(!judge(&Expectation::Rejected("email"), &customer()).passed);
        assert!(judge(&Expectation::Skipped, &Outcome::Skipped).passed);
        assert!(!judge(&Expectation::Skipped, &customer()).passed);
        let any = expect(serde_json::json!({"email": "ann@example.com"}));
        assert!(!judge(&Expectation::Customer(&any), &Outcome::Skipped).passed);
    }
}
