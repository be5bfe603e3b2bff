//! A stored customer's fields, held compactly: their JSON text, with the match keys beside it.
//!
//! As a `serde_json::Map` (entries, a hash table, an allocation per key and per value) the
//! 15 fields of the benchmark's customers took ~4.6 KB each, their text ~0.5 KB: a million
//! customers held 4.6 GB, and zeroing the pages they grew into was a third of the
//! simulator's CPU per request. The fields are parsed back only where a whole customer is
//! needed (an update's merge, a patch, a query's answer, the state file); the match keys,
//! which every incoming record is looked up by, are kept apart so that matching never parses.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::records::Val;
use crate::customer_json;

/// The keys an incoming record is matched by, in priority order.
pub const MATCH_KEYS: [&str; 3] = ["whats_app_phone", "sms_phone", "email"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The map as compact JSON, in the map's order.
    text: Box<str>,
    /// The text value of each of `MATCH_KEYS`, when the field holds one.
    keys: [Option<Box<str>>; 3],
}

impl Fields {
    pub fn new(map: &Map<String, Value>) -> Fields {
        // Room for a typical customer's text at once (one shrink at the end, not four
        // growths on the way).
        let mut text = Vec::with_capacity(512);
        serde_json::to_writer(&mut text, map).expect("a JSON map serializes");
        let text = String::from_utf8(text).expect("JSON is UTF-8");
        Fields {
            text: text.into_boxed_str(),
            keys: MATCH_KEYS.map(|k| map.get(k).and_then(Value::as_str).map(Box::from)),
        }
    }

    /// The fields of an incoming record, its nulls left out, written straight from the
    /// parsed body (`scratch` is reused from record to record): the same text and keys as
    /// [`Fields::new`] of the map of those entries.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a Cow<'a, str>, &'a Val<'a>)>,
        scratch: &mut Vec<u8>,
    ) -> Fields {
        scratch.clear();
        scratch.push(b'{');
        let mut keys: [Option<Box<str>>; 3] = Default::default();
        for (key, value) in entries {
            if matches!(value, Val::Null) {
                continue;
            }
            if scratch.len() > 1 {
                scratch.push(b',');
            }
            write_text(key, scratch);
            scratch.push(b':');
            match value {
                Val::Null => unreachable!("skipped above"),
                Val::Text(s) => {
                    write_text(s, scratch);
                    if let Some(i) = MATCH_KEYS.iter().position(|k| *k == key.as_ref()) {
                        keys[i] = Some(Box::from(s.as_ref()));
                    }
                }
                Val::Integer(n) => {
                    scratch.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                }
                Val::Other(v) => {
                    serde_json::to_writer(&mut *scratch, v).expect("a JSON value serializes")
                }
            }
        }
        scratch.push(b'}');
        Fields {
            text: Box::from(std::str::from_utf8(scratch).expect("JSON is UTF-8")),
            keys,
        }
    }

    /// The fields as a map again (the same entries, in the same order).
    pub fn map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.text).expect("the text was written from a map")
    }

    /// The value of `MATCH_KEYS[index]`, when it is text.
    pub fn match_key(&self, index: usize) -> Option<&str> {
        self.keys[index].as_deref()
    }
}

/// As the map it holds: the state file's lines are what they were when a map was stored.
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        Ok(Fields::new(&Map::deserialize(d)?))
    }
}

/// A parsed string as JSON. One borrowed from the body had no escape there (serde_json
/// borrows only such strings), so it holds no quote, backslash or control character (the
/// parser refuses those unescaped) and is written as it stands: what `write_str` would
/// write, without looking at each byte (that look was a tenth of the simulator's work).
#[expect(clippy::ptr_arg, reason = "whether it is borrowed is the point")]
fn write_text(s: &Cow<'_, str>, out: &mut Vec<u8>) {
    match s {
        Cow::Borrowed(raw) => {
            out.push(b'"');
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(text) => customer_json::write_str(text, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_map_comes_back_whole_and_in_order_and_serializes_as_the_map_did() {
        let map = json!({"whats_app_phone": "86139", "zeta": "z", "email": "a@b.c", "alpha": 1,
                         "sms_phone": 5, "tags": ["x"], "customize_field": "{\"a\":\"1\"}",
                         "name": "牛小信 \"q\"\n"});
        let map = map.as_object().unwrap();
        let fields = Fields::new(map);
        assert_eq!(&fields.map(), map);
        let keys: Vec<_> = map.keys().collect();
        assert_eq!(fields.map().keys().collect::<Vec<_>>(), keys);
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            serde_json::to_string(map).unwrap()
        );
        let back: Fields = serde_json::from_str(&serde_json::to_string(map).unwrap()).unwrap();
        assert_eq!(back, fields);
        // A match key holds only text: a number is no key.
        assert_eq!(fields.match_key(0), Some("86139"));
        assert_eq!(fields.match_key(1), None);
        assert_eq!(fields.match_key(2), Some("a@b.c"));
    }

    #[test]
    fn fields_written_from_a_parsed_record_are_those_of_its_map() {
        use crate::sim::records::first_object;
        let body = r#"{"customers": [{"full_name": "牛 \"q\"\n", "email": "a@b.c", "sms_phone": 5,
            "whats_app_phone": "861\u00e9", "nil": null, "gender": -3, "big": 18446744073709551615,
            "f": 1.5, "t": true, "o": {"x": [1, null, "y"]}, "k\\ey": "v", "email": "z@b.c",
            "address": "上海 / <路> '", "": ""}]}"#;
        let object = first_object(body);
        let map: Map<String, Value> = object
            .iter()
            .filter(|(_, v)| !matches!(v, Val::Null))
            .map(|(k, v)| (k.to_string(), v.to_value()))
            .collect();
        let mut scratch = b"left over".to_vec();
        let written = Fields::from_entries(object.entries(), &mut scratch);
        assert_eq!(written, Fields::new(&map));
        assert_eq!(written.match_key(0), Some("861é"));
        assert_eq!(written.match_key(1), None);
        assert_eq!(written.match_key(2), Some("z@b.c"));
    }
}
