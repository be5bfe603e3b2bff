//! A batch_create body parsed for what the simulator does with it: its records straight into
//! maps with room for a customer's fields (a map grown one field at a time reallocated its
//! entries and rehashed four times a record), everything else as JSON values.
//!
//! What it accepts and refuses is what parsing the body as one `serde_json::Value` did:
//! any JSON object; `customers` of any type (the handler refuses what is not an array of
//! objects, record by record); the last of a repeated key.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Room for the fields of most records at once (the API has 25 or so).
const FIELDS: usize = 16;

/// The body: its `customers`, and its other keys.
#[derive(Debug)]
pub struct Body {
    pub rest: Map<String, Value>,
    pub customers: Option<Records>,
}

/// The body's `customers`: an array, or something else (a 1002 for the handler).
#[derive(Debug)]
pub enum Records {
    Array(Vec<Record>),
    NotArray,
}

/// One element of `customers`.
#[derive(Debug)]
pub enum Record {
    Object(Map<String, Value>),
    NotObject,
}

impl Body {
    /// `None` when the bytes are not one JSON object.
    pub fn parse(bytes: &[u8]) -> Option<Body> {
        serde_json::from_slice(bytes).ok()
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
                let mut body = Body {
                    rest: Map::new(),
                    customers: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    if key == "customers" {
                        body.customers = Some(map.next_value()?);
                    } else {
                        body.rest.insert(key, map.next_value()?);
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(V)
    }
}

/// The visits of a JSON value that is not the one wanted: it is read past, and `$not`.
macro_rules! other_values {
    ($not:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($not)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($not)
        }
    };
}

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Records, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records, A::Error> {
                let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(100));
                while let Some(r) = seq.next_element()? {
                    records.push(r);
                }
                Ok(Records::Array(records))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Records, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Records::NotArray)
            }
            other_values!(Records::NotArray);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut fields = Map::with_capacity(FIELDS);
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.insert(k, v);
                }
                Ok(Record::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Record::NotObject)
            }
            other_values!(Record::NotObject);
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What parsing the body as one value gives: the same maps, or none.
    fn as_value(bytes: &str) -> Option<(Map<String, Value>, Option<Value>)> {
        match serde_json::from_str::<Value>(bytes).ok()? {
            Value::Object(mut m) => {
                let customers = m.shift_remove("customers");
                Some((m, customers))
            }
            _ => None,
        }
    }

    #[test]
    fn a_body_parses_as_it_did_as_one_value() {
        for text in [
            r#"{"tenant_id": 1, "customers": [{"a": "x", "b": null, "a": 2, "c": [1, {"d": 1}]}, 5, "s", null, [1, [2]], {}, true, 1.5, -3], "type": 0}"#,
            r#"{"customers": {"a": [1]}, "app_key": "k"}"#,
            r#"{"customers": "nope"}"#,
            r#"{"customers": null}"#,
            r#"{"customers": [1], "customers": [{"x": "y"}]}"#,
            r#"{"type": 1}"#,
            r#"{}"#,
            r#"[]"#,
            r#"5"#,
            r#"{"customers": [}"#,
            r#"{"a": 1} x"#,
            "",
        ] {
            let ours = Body::parse(text.as_bytes());
            let theirs = as_value(text);
            match (ours, theirs) {
                (None, None) => {}
                (Some(body), Some((rest, customers))) => {
                    assert_eq!(body.rest, rest, "{text}");
                    assert_eq!(
                        rest.keys().collect::<Vec<_>>(),
                        body.rest.keys().collect::<Vec<_>>(),
                        "{text}"
                    );
                    match (body.customers, customers) {
                        (None, None) => {}
                        (Some(Records::NotArray), Some(v)) => assert!(!v.is_array(), "{text}"),
                        (Some(Records::Array(ours)), Some(Value::Array(theirs))) => {
                            assert_eq!(ours.len(), theirs.len(), "{text}");
                            for (o, t) in ours.into_iter().zip(theirs) {
                                match (o, t) {
                                    (Record::Object(o), Value::Object(t)) => {
                                        assert_eq!(o, t, "{text}");
                                        assert_eq!(
                                            o.keys().collect::<Vec<_>>(),
                                            t.keys().collect::<Vec<_>>()
                                        );
                                    }
                                    (Record::NotObject, t) => assert!(!t.is_object(), "{text}"),
                                    (o, t) => panic!("{text}: {o:?} against {t}"),
                                }
                            }
                        }
                        (o, t) => panic!("{text}: {o:?} against {t:?}"),
                    }
                }
                (o, t) => panic!("{text}: {o:?} against {t:?}"),
            }
        }
    }
}
