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
    /// The key's 128-bit XXH3 ([`key_digest`]): what lookups and duplicate checks compare.
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

/// The field the server matches `customer` by (the first of [`Field::MATCH_KEYS`] it has,
/// not empty) and its value; `None` when it has none.
pub fn match_key(customer: &Customer) -> Option<(Field, &str)> {
    Field::MATCH_KEYS
        .iter()
        .find_map(|&f| customer.text(f).filter(|v| !v.is_empty()).map(|v| (f, v)))
}

/// The digests of `customer`'s tag; `None` when it has no match key.
pub fn probe(customer: &Customer, merge_type: u8, strict_binding: bool) -> Option<Probe<'_>> {
    let (field, value) = match_key(customer)?;
    Some(Probe {
        field,
        value,
        key_digest: digest_of(&[field.name().as_bytes(), b":", value.as_bytes()]),
        hash: content_hash(customer, merge_type, strict_binding),
    })
}

/// The digest lookups use for a stored key (`<field>:<value>`): its 128-bit XXH3. Not a
/// cryptographic hash, and it need not be one: the key comes from the job's own source, and
/// a collision (at 2^-128 a pair) would only make two customers one in a lookup. What was
/// sent is compared by SHA-256 ([`content_hash`]). Uniform bits either way: the snapshot's
/// index and [`super::Seen`] take them as they are.
pub fn key_digest(key: &str) -> u128 {
    digest_of(&[key.as_bytes()])
}

/// The XXH3-128 of the concatenated `parts`, put together on the stack when they fit (the
/// crate's streaming hasher allocates a buffer).
fn digest_of(parts: &[&[u8]]) -> u128 {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut small = [0u8; 128];
    let mut large = Vec::new();
    let buf = if len <= small.len() {
        &mut small[..len]
    } else {
        large.resize(len, 0);
        &mut large[..]
    };
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    twox_hash::XxHash3_128::oneshot(buf)
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
/// \r, `\u00xx` for the other control characters; everything else as it is. The runs
/// between escapes are copied whole: every customer with custom fields has a JSON object
/// in a string (`customize_field`), full of quotes, and a byte-wise loop over it was a
/// third of the time of writing the JSON.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut rest = s.as_bytes();
    while let Some(at) = first_escape(rest) {
        let b = rest[at];
        out.extend_from_slice(&rest[..at]);
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0C => b"\\f",
            b'\r' => b"\\r",
            _ => b"",
        };
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        } else {
            out.extend_from_slice(short);
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Where the first control character, `"` or `\\` is; eight bytes at a time (a byte-wise
/// loop was most of the time of writing the JSON).
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` below `n` (n <= 128). A borrow can also mark a byte
    // above one that is marked, never one below: the lowest mark is exact.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let equal = |x: u64, b: u64| below(x ^ (ONES * b), 1);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let marks = below(x, 0x20) | equal(x, u64::from(b'"')) | equal(x, u64::from(b'\\'));
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| at + i)
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
                    assert_eq!(first_escape(&bytes), Some(at), "{b:#x} at {at} of {len}");
                }
            }
            for b in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff, 0xa2, 0xdc] {
                assert_eq!(first_escape(&vec![b; len]), None, "{b:#x} x {len}");
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
    fn strings_of_every_mix_of_escapes_are_written_as_serde_writes_them() {
        // Bytes whose neighbours a word-wise scan could confuse: controls, quotes and
        // backslashes beside 0x20, 0x21, 0x5b..0x5d and multi-byte characters.
        let alphabet = [
            "a", " ", "!", "\"", "\\", "\u{1f}", "\n", "\u{0}", "[", "]", "名", "é", "{", ":",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for i in 0..(seed % 40) {
                text.push_str(
                    alphabet[((seed >> (i % 50)) as usize + i as usize) % alphabet.len()],
                );
            }
            let mut ours = Vec::new();
            write_str(&text, &mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "for {text:?}"
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
