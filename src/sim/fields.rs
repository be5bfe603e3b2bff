//! A stored customer's fields, held compactly: each entry as a byte naming its key and the
//! kind of its value, then the value itself, with where the match keys' values are beside.
//!
//! As a `serde_json::Map` (entries, a hash table, an allocation per key and per value) the
//! 15 fields of the benchmark's customers took ~4.6 KB each, as their JSON text ~0.5 KB. The
//! store of a million customers grows into fresh pages the kernel zeroes, and on this
//! project's VM that zeroing (~2.6 ms a megabyte) was a quarter of the simulator's CPU at 32
//! requests in flight, so every byte a customer holds costs: a key written out (`"sms_phone":`)
//! is one byte here, a text value is held unescaped, and the match keys are places in the
//! entries rather than copies of them. The fields are decoded only where a whole customer
//! is needed (an update's merge, a patch, a query's answer, the state file); matching, which
//! every incoming record needs, reads the match keys in place.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::records::Val;
use crate::customer::Field;

/// The keys an incoming record is matched by, in priority order.
pub const MATCH_KEYS: [&str; 3] = ["whats_app_phone", "sms_phone", "email"];

/// How an entry's value is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A JSON string, as its UTF-8 text (unescaped).
    Text = 0,
    /// A JSON integer that fits an i64, as its decimal digits.
    Integer = 1,
    /// Any other JSON value (null, a boolean, another number, an array, an object), as
    /// compact JSON.
    Json = 2,
}

const KINDS: u8 = 3;

/// The first byte of an entry: `kind + KINDS × n` for the batch_create field `Field::ALL[n]`,
/// or `OTHER_KEY + kind` when the key is not one of those, its length and bytes following.
const OTHER_KEY: u8 = KINDS * Field::ALL.len() as u8;
const _: () = assert!(OTHER_KEY as usize + KINDS as usize <= 256);

/// `Fields::keys` for a match key the fields do not hold as text.
const NO_KEY: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The entries in the map's order: a first byte (key and kind, see `OTHER_KEY`), then
    /// the value's length (LEB128) and bytes.
    packed: Box<[u8]>,
    /// For each of `MATCH_KEYS`, where its value's length starts in `packed`, when the
    /// field holds text (`NO_KEY` when not).
    keys: [u32; 3],
}

/// One entry of the packed fields.
struct Entry<'a> {
    key: &'a str,
    kind: Kind,
    value: &'a [u8],
}

impl Fields {
    pub fn new(map: &Map<String, Value>) -> Fields {
        let mut out = Vec::with_capacity(256);
        let mut packer = Packer::new(&mut out);
        for (key, value) in map {
            match value {
                Value::String(s) => packer.push(key, Kind::Text, s.as_bytes()),
                Value::Number(n) if n.is_i64() => packer.integer(key, n.as_i64().expect("is_i64")),
                other => packer.json(key, other),
            }
        }
        packer.finish()
    }

    /// The fields of an incoming record, its nulls left out, packed straight from the
    /// parsed body (`scratch` is reused from record to record): the same fields as
    /// [`Fields::new`] of the map of those entries.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a Cow<'a, str>, &'a Val<'a>)>,
        scratch: &mut Vec<u8>,
    ) -> Fields {
        scratch.clear();
        let mut packer = Packer::new(scratch);
        for (key, value) in entries {
            match value {
                Val::Null => continue,
                Val::Text(s) => packer.push(key, Kind::Text, s.as_bytes()),
                Val::Integer(n) => packer.integer(key, *n),
                Val::Other(v) => packer.json(key, v),
            }
        }
        packer.finish()
    }

    /// The fields as a map again (the same entries, in the same order).
    pub fn map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for Entry { key, kind, value } in self.entries() {
            let value = match kind {
                Kind::Text => Value::String(utf8(value).to_string()),
                Kind::Integer => Value::from(
                    utf8(value)
                        .parse::<i64>()
                        .expect("packed from an i64's digits"),
                ),
                Kind::Json => serde_json::from_slice(value).expect("packed as JSON"),
            };
            map.insert(key.to_string(), value);
        }
        map
    }

    /// The value of `MATCH_KEYS[index]`, when it is text.
    pub fn match_key(&self, index: usize) -> Option<&str> {
        let at = self.keys[index];
        (at != NO_KEY).then(|| utf8(read_bytes(&self.packed, at as usize).0))
    }

    fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        let packed = &self.packed[..];
        let mut at = 0;
        std::iter::from_fn(move || {
            let first = *packed.get(at)?;
            at += 1;
            let (key, kind) = if first < OTHER_KEY {
                let field = Field::ALL[usize::from(first / KINDS)];
                (field.name(), first % KINDS)
            } else {
                let (key, next) = read_bytes(packed, at);
                at = next;
                (utf8(key), first - OTHER_KEY)
            };
            let (value, next) = read_bytes(packed, at);
            at = next;
            let kind = match kind {
                0 => Kind::Text,
                1 => Kind::Integer,
                _ => Kind::Json,
            };
            Some(Entry { key, kind, value })
        })
    }
}

/// Writes entries into a buffer, noting where the match keys' values are.
struct Packer<'o> {
    out: &'o mut Vec<u8>,
    keys: [u32; 3],
}

impl<'o> Packer<'o> {
    fn new(out: &'o mut Vec<u8>) -> Packer<'o> {
        Packer {
            out,
            keys: [NO_KEY; 3],
        }
    }

    fn push(&mut self, key: &str, kind: Kind, value: &[u8]) {
        match Field::from_name(key) {
            Some(field) => {
                self.out.push(kind as u8 + KINDS * field_index(field));
                if kind == Kind::Text
                    && let Some(i) = Field::MATCH_KEYS.iter().position(|k| *k == field)
                {
                    self.keys[i] =
                        u32::try_from(self.out.len()).expect("a customer's fields under 4 GB");
                }
            }
            None => {
                self.out.push(OTHER_KEY + kind as u8);
                write_bytes(self.out, key.as_bytes());
            }
        }
        write_bytes(self.out, value);
    }

    fn integer(&mut self, key: &str, n: i64) {
        self.push(key, Kind::Integer, itoa::Buffer::new().format(n).as_bytes());
    }

    /// A value held as JSON (rare: a customer's fields are text and integers).
    fn json(&mut self, key: &str, value: &Value) {
        let json = serde_json::to_vec(value).expect("a JSON value serializes");
        self.push(key, Kind::Json, &json);
    }

    /// The fields, in an allocation of their own size (the buffer stays with its owner).
    fn finish(self) -> Fields {
        Fields {
            packed: Box::from(self.out.as_slice()),
            keys: self.keys,
        }
    }
}

/// A field's place in `Field::ALL` (a test holds the two to each other).
fn field_index(field: Field) -> u8 {
    field as u8
}

/// Bytes written with their length first (LEB128: seven bits a byte, low first).
fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

/// The bytes `write_bytes` wrote at `at`, and where the next entry starts.
fn read_bytes(packed: &[u8], mut at: usize) -> (&[u8], usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = packed[at];
        at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    (&packed[at..at + n], at + n)
}

/// Text that was packed from a `str`.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("packed from a str")
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

    #[test]
    fn a_field_s_byte_names_it_and_long_values_keep_their_length() {
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(usize::from(field_index(*field)), i, "{field:?}");
        }
        // Lengths of one, two and three LEB128 bytes, under a known and an unknown key.
        for n in [0, 127, 128, 16_383, 16_384, 70_000] {
            let map = json!({"remark": "é".repeat(n / 2) + &"x".repeat(n % 2),
                             "not a field": "y".repeat(n), "email": "a@b.c"});
            let map = map.as_object().unwrap();
            let fields = Fields::new(map);
            assert_eq!(&fields.map(), map, "{n}");
            assert_eq!(fields.match_key(2), Some("a@b.c"));
        }
        // A null (a patch may hold one) is kept as the map held it.
        let map = json!({"sms_phone": null, "gender": -1});
        let fields = Fields::new(map.as_object().unwrap());
        assert_eq!(&fields.map(), map.as_object().unwrap());
        assert_eq!(fields.match_key(1), None);
    }

    #[test]
    fn a_customer_is_held_in_fewer_bytes_than_its_json_text() {
        let map = json!({"full_name": "Li Liu", "first_name": "Li", "last_name": "Liu",
            "whats_app_phone": "8613754248818", "sms_phone": "8654248818",
            "email": "li.liu1134@example.com", "birthday": "1972-04-16", "gender": 0,
            "weight": 3, "country": "CN", "address": "Shanghai", "remark": "note, 1134",
            "time_zone": "GMT+8",
            "customize_field": "{\"customize_1_14\":\"VIP\",\"customize_1_15\":\"1134\"}"});
        let text = serde_json::to_string(&map).unwrap();
        let fields = Fields::new(map.as_object().unwrap());
        // 14 entries of two bytes each beside their values, against ~13 bytes of key and
        // punctuation each as JSON.
        assert!(
            fields.packed.len() * 10 < text.len() * 7,
            "{} against {}",
            fields.packed.len(),
            text.len()
        );
    }
}
