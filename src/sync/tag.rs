//! What change detection knows about one customer: its match key (the field the server
//! matches an existing customer by, SPEC §7) and a SHA-256 of exactly what is sent for it.
//! Two rows with the same key are the same customer on the server; two customers with the
//! same hash would be sent as the same bytes under the same merge rules.

use sha2::{Digest, Sha256};

use crate::customer::{Customer, Field, FieldValue};

/// A customer's match key and content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTag {
    /// The field the key was taken from.
    pub field: Field,
    /// `<field>:<value>`, as the state stores it.
    pub key: String,
    /// The first 16 bytes of the key's SHA-256: what lookups and duplicate checks compare.
    pub key_digest: u128,
    /// SHA-256 of the customer's canonical JSON, its merge type and strict_binding.
    pub hash: [u8; 32],
}

/// The tag of `customer` as sent with `merge_type` and `strict_binding`; `None` for a
/// customer with no match key (it is always sent and never recorded).
pub fn tag_of(customer: &Customer, merge_type: u8, strict_binding: bool) -> Option<SyncTag> {
    probe(customer, merge_type, strict_binding).map(Probe::into_tag)
}

/// A tag before its key is written out: what the unchanged check compares. Most rows of a
/// scheduled sync are unchanged, and for them the `<field>:<value>` string is never needed,
/// so it is built only for a row that is sent ([`Probe::into_tag`]).
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub field: Field,
    pub value: &'a str,
    pub key_digest: u128,
    pub hash: [u8; 32],
}

impl Probe<'_> {
    pub fn into_tag(self) -> SyncTag {
        SyncTag {
            field: self.field,
            key: format!("{}:{}", self.field.name(), self.value),
            key_digest: self.key_digest,
            hash: self.hash,
        }
    }
}

/// The digests of `customer`'s tag; `None` when it has no match key.
pub fn probe(customer: &Customer, merge_type: u8, strict_binding: bool) -> Option<Probe<'_>> {
    let (field, value) = Field::MATCH_KEYS
        .iter()
        .find_map(|&f| customer.text(f).filter(|v| !v.is_empty()).map(|v| (f, v)))?;
    Some(Probe {
        field,
        value,
        key_digest: digest_prefix(
            Sha256::new()
                .chain_update(field.name())
                .chain_update(b":")
                .chain_update(value),
        ),
        hash: content_hash(customer, merge_type, strict_binding),
    })
}

/// The digest lookups use for a stored key.
pub fn key_digest(key: &str) -> u128 {
    digest_prefix(Sha256::new().chain_update(key))
}

fn digest_prefix(h: Sha256) -> u128 {
    short(&h.finalize().into())
}

thread_local! {
    /// The JSON of the customer being hashed: one buffer per mapping thread, reused row
    /// after row instead of a new allocation each.
    static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// SHA-256 over the merge type, strict_binding and the customer's JSON as the request body
/// carries it (fields in the API's order: the serialization is canonical).
pub fn content_hash(customer: &Customer, merge_type: u8, strict_binding: bool) -> [u8; 32] {
    JSON.with_borrow_mut(|json| {
        json.clear();
        write_json(customer, json);
        Sha256::new()
            .chain_update([merge_type, u8::from(strict_binding)])
            .chain_update(&json[..])
            .finalize()
            .into()
    })
}

/// The customer's JSON, byte for byte what `serde_json::to_vec` makes of it (the tests
/// hold the two together), written without serde: the unchanged check writes one for
/// every row, and serde_json's writer took as long as the SHA-256 of its output.
fn write_json(customer: &Customer, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (field, value)) in customer.fields().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Field names are ASCII identifiers: nothing in them to escape.
        out.push(b'"');
        out.extend_from_slice(field.name().as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            FieldValue::Text(s) => write_str(s, out),
            FieldValue::Int(n) => write_int(*n, out),
        }
    }
    out.push(b'}');
}

/// A JSON string as serde_json escapes it: `"` and `\\`, the short forms of \b \t \n \f
/// \r, `\u00xx` for the other control characters; everything else as it is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values need no escape at all: one pass to find out, then one copy.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let short: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                0x08 => b"\\b",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                0x0C => b"\\f",
                b'\r' => b"\\r",
                0..0x20 => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if short.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
            } else {
                out.extend_from_slice(short);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

/// Whether any byte is a control character, `"` or `\\`; eight bytes at a time (a byte-wise
/// loop was most of the time of writing the JSON).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether some byte of `x` is below `n` (n <= 128): exact for the word as a whole.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let has = |x: u64, b: u64| below(x ^ (ONES * b), 1);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if below(x, 0x20) | has(x, u64::from(b'"')) | has(x, u64::from(b'\\')) {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// An integer as serde_json writes it (as `Display` does).
fn write_int(n: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// The part of a content hash a snapshot keeps (a collision of 128 bits is not a concern).
pub fn short(hash: &[u8; 32]) -> u128 {
    u128::from_be_bytes(hash[..16].try_into().expect("16 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(fields: &[(Field, &str)]) -> Customer {
        Customer::from_rendered(fields.iter().map(|(f, v)| (*f, v.to_string()))).unwrap()
    }

    #[test]
    fn the_key_follows_the_servers_matching_order() {
        let both = customer(&[
            (Field::FullName, "A"),
            (Field::Email, "a@x.io"),
            (Field::SmsPhone, "8613800000001"),
        ]);
        let t = tag_of(&both, 1, false).unwrap();
        assert_eq!(
            (t.field, t.key.as_str()),
            (Field::SmsPhone, "sms_phone:8613800000001")
        );
        let email = customer(&[(Field::FullName, "A"), (Field::Email, "a@x.io")]);
        assert_eq!(tag_of(&email, 1, false).unwrap().key, "email:a@x.io");
    }

    #[test]
    fn the_json_hashed_is_the_json_serde_writes() {
        let texts = [
            "plain",
            "",
            "quote \" and backslash \\ and slash /",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
            "名字 émoji 🎉 \u{2028}",
            "\\\"\\",
        ];
        for text in texts {
            // Free-text fields take any text; a number is written as one.
            let c = customer(&[
                (Field::FullName, "A"),
                (Field::Email, "a@x.io"),
                (Field::TagStr, text),
                (Field::TimeZone, &format!("{text}{text}")),
                (Field::Weight, "3"),
            ]);
            let mut ours = Vec::new();
            write_json(&c, &mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&c).unwrap(),
                "for {text:?}"
            );
        }
    }

    #[test]
    fn escapes_are_found_at_every_place_in_a_word_and_integers_written_as_serde_does() {
        for len in 0..20 {
            for at in 0..len {
                for b in [0u8, 0x1f, b'"', b'\\'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert!(needs_escape(&bytes), "{b:#x} at {at} of {len}");
                }
            }
            for b in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff, 0xa2, 0xdc] {
                assert!(!needs_escape(&vec![b; len]), "{b:#x} x {len}");
            }
        }
        for n in [0, 1, 9, 10, -1, -10, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_int(n, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&n).unwrap()
            );
        }
    }

    #[test]
    fn a_probes_key_digest_is_the_digest_of_the_key_the_state_stores() {
        let c = customer(&[(Field::FullName, "A"), (Field::Email, "a@x.io")]);
        let t = tag_of(&c, 1, false).unwrap();
        assert_eq!(t.key_digest, key_digest(&t.key));
        assert_ne!(t.key_digest, key_digest("email:b@x.io"));
    }

    #[test]
    fn the_hash_covers_the_body_the_merge_type_and_strict_binding() {
        let a = customer(&[(Field::FullName, "A"), (Field::Email, "a@x.io")]);
        let b = customer(&[(Field::FullName, "B"), (Field::Email, "a@x.io")]);
        let h = |c: &Customer, m, s| tag_of(c, m, s).unwrap().hash;
        assert_eq!(h(&a, 1, false), h(&a.clone(), 1, false));
        assert_ne!(h(&a, 1, false), h(&b, 1, false));
        assert_ne!(h(&a, 1, false), h(&a, 0, false));
        assert_ne!(h(&a, 1, false), h(&a, 1, true));
    }
}
