//! A batch_create body parsed for what the simulator does with it: each record as a short
//! list of its keys and values, borrowed from the body where the text needs no unescaping,
//! everything else as JSON values. A record is checked, written into the store as text and
//! dropped: a `serde_json::Map` of owned strings (two allocations a field, a SipHash of
//! each key) was a third of the simulator's CPU per request.
//!
//! What it accepts and refuses is what parsing the body as one `serde_json::Value` did:
//! any JSON object; `customers` of any type (the handler refuses what is not an array of
//! objects, record by record); the last of a repeated key, at the place of its first.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

use crate::customer::JsonField;

/// Room for the fields of most records at once (the API has 25 or so).
const FIELDS: usize = 16;

/// The body: its `customers`, and its other keys.
#[derive(Debug)]
pub struct Body<'a> {
    pub rest: Map<String, Value>,
    pub customers: Option<Records<'a>>,
}

/// The body's `customers`: an array, or something else (a 1002 for the handler).
#[derive(Debug)]
pub enum Records<'a> {
    Array(Vec<Record<'a>>),
    NotArray,
}

/// One element of `customers`.
#[derive(Debug)]
pub enum Record<'a> {
    Object(Object<'a>),
    NotObject,
}

/// A record's keys and values, in the order of their first appearance; beside them, one
/// bit of each key (see `key_bit`), so that a new key is seldom compared with the others.
#[derive(Debug, Default, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Val<'a>)>, u64);

/// One of 64 bits for a key, from its length and its first and last bytes: keys with
/// different bits differ (a repeated key is rare, and looking for it each time was a
/// twentieth of the simulator's work).
fn key_bit(key: &str) -> u64 {
    let b = key.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    let mix =
        b.len() ^ (usize::from(first.unwrap_or(0)) * 7) ^ (usize::from(last.unwrap_or(0)) * 13);
    1 << (mix % 64)
}

/// A value of a record: text and integers as the rules and the store take them, the rest
/// as parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Text(Cow<'a, str>),
    /// An integer that fits an i64.
    Integer(i64),
    /// Any other number, a boolean, an array or an object.
    Other(Value),
}

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Val<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Val<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The entries with their keys as parsed: a borrowed key had no escape in the body.
    pub fn entries(&self) -> impl Iterator<Item = (&Cow<'a, str>, &Val<'a>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// A repeated key keeps its first place and takes the last value (as a map does).
    fn insert(&mut self, key: Cow<'a, str>, value: Val<'a>) {
        let bit = key_bit(&key);
        if self.1 & bit != 0
            && let Some((_, v)) = self.0.iter_mut().find(|(k, _)| *k == key)
        {
            *v = value;
            return;
        }
        self.1 |= bit;
        self.0.push((key, value));
    }
}

impl Val<'_> {
    /// As the rules look at it.
    pub fn as_field(&self) -> JsonField<'_> {
        match self {
            Val::Null => JsonField::Null,
            Val::Text(s) => JsonField::Text(s),
            Val::Integer(n) => JsonField::Integer(*n),
            Val::Other(_) => JsonField::Other,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Text(s) => Value::String(s.to_string()),
            Val::Integer(n) => Value::from(*n),
            Val::Other(v) => v.clone(),
        }
    }
}

/// As JSON: the value the record gave (the answer echoes a record's `whats_app_phone`).
impl serde::Serialize for Val<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Text(text) => s.serialize_str(text),
            Val::Integer(n) => s.serialize_i64(*n),
            Val::Other(v) => v.serialize(s),
        }
    }
}

impl Body<'_> {
    /// `None` when the bytes are not one JSON object. The body is checked to be UTF-8 once,
    /// as a whole, and parsed as text: parsed as bytes, each of its strings was checked on
    /// its own, a fifteenth of the simulator's work (JSON is UTF-8: a body that is not is
    /// refused either way).
    pub fn parse(bytes: &[u8]) -> Option<Body<'_>> {
        serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()
    }
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
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

impl<'de> Deserialize<'de> for Records<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Records<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records<'de>, A::Error> {
                let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(100));
                while let Some(r) = seq.next_element()? {
                    records.push(r);
                }
                Ok(Records::Array(records))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Records<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Records::NotArray)
            }
            other_values!(Records::NotArray);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
                let mut fields = Object(Vec::with_capacity(FIELDS), 0);
                while let Some(key) = map.next_key_seed(Text)? {
                    fields.insert(key, map.next_value()?);
                }
                Ok(Record::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Record::NotObject)
            }
            other_values!(Record::NotObject);
        }
        d.deserialize_any(V)
    }
}

/// A string, borrowed from the body when it has no escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Owned(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Owned(s))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Val<'de>, E> {
                Ok(Val::Text(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Val<'de>, E> {
                Ok(Val::Text(Cow::Owned(s)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Val<'de>, E> {
                Ok(Val::Integer(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Val<'de>, E> {
                Ok(i64::try_from(n).map_or(Val::Other(Value::from(n)), Val::Integer))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Val<'de>, E> {
                Ok(Val::Other(Value::from(n)))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Val<'de>, E> {
                Ok(Val::Other(Value::Bool(b)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Val<'de>, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Val::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<'de>, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Val::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The first record of a body that is an array of objects (for tests).
#[cfg(test)]
pub fn first_object(body: &str) -> Object<'_> {
    match Body::parse(body.as_bytes()) {
        Some(Body {
            customers: Some(Records::Array(records)),
            ..
        }) => match records.into_iter().next() {
            Some(Record::Object(object)) => object,
            _ => panic!("the first record is not an object"),
        },
        _ => panic!("not a body with an array of customers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_serializes_as_the_json_value_it_was_parsed_from() {
        let body = r#"{"customers": [{"a": null, "b": "861", "c": "牛 \"q\"\n", "d": -7,
            "e": 18446744073709551615, "f": 1.5, "g": true, "h": {"x": [1, null]}}]}"#;
        let object = first_object(body);
        assert_eq!(object.iter().count(), 8);
        for (key, value) in object.iter() {
            assert_eq!(
                serde_json::to_string(value).unwrap(),
                serde_json::to_string(&value.to_value()).unwrap(),
                "{key}"
            );
        }
    }

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
    fn a_body_that_is_not_utf8_is_refused_as_parsing_it_as_a_value_refuses_it() {
        for bytes in [
            &b"{\"customers\": [{\"full_name\": \"\xff\"}]}"[..],
            &b"{\"customers\": [{\"full_\xc3\": \"a\"}]}"[..],
            &b"{\"customers\": []}\xff"[..],
        ] {
            assert!(serde_json::from_slice::<Value>(bytes).is_err());
            assert!(Body::parse(bytes).is_none());
        }
        let good = "{\"customers\": [{\"full_name\": \"\u{e9}\"}]}";
        assert!(Body::parse(good.as_bytes()).is_some());
    }

    #[test]
    fn a_body_parses_as_it_did_as_one_value() {
        for text in [
            r#"{"tenant_id": 1, "customers": [{"a": "x", "b": null, "a": 2, "c": [1, {"d": 1}]}, 5, "s", null, [1, [2]], {}, true, 1.5, -3], "type": 0}"#,
            r#"{"customers": [{"k\"q": "a\nb", "n": 18446744073709551615, "f": -0.5, "b": false, "o": {"x": [null]}, "u": "\u00e9牛", "i": -9223372036854775808, "k\"q": null}]}"#,
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
            "{\"customers\": [{\"a\": \"\u{e9}\"}]}",
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
                                        let o: Vec<(String, Value)> = o
                                            .iter()
                                            .map(|(k, v)| (k.to_string(), v.to_value()))
                                            .collect();
                                        let t: Vec<(String, Value)> = t.into_iter().collect();
                                        assert_eq!(o, t, "{text}");
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
