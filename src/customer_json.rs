//! A customer's JSON as a request body carries it, written without serde: every sent
//! customer is written once for its request (and once more for its content hash with
//! `sync: changed`), and serde_json's writer took as long as the SHA-256 of its output.
//! Byte for byte what `serde_json::to_vec` makes of a [`Customer`]: the tests hold the two
//! together, and a request's signature and journaled hash are of these bytes.

use crate::customer::{Customer, FieldValue};

/// The customer's JSON, byte for byte what `serde_json::to_vec` makes of it (the tests
/// hold the two together), written without serde.
pub fn write(customer: &Customer, out: &mut Vec<u8>) {
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

thread_local! {
    /// Where [`with_written`] writes: one buffer per thread, reused row after row.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `customer`'s JSON ([`write`]) handed to `use_it`, written into a buffer of the calling
/// thread's rather than a new allocation each time. Not to be called from `use_it`.
pub fn with_written<R>(customer: &Customer, use_it: impl FnOnce(&[u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|json| {
        json.clear();
        write(customer, json);
        use_it(json)
    })
}

/// A JSON string as serde_json escapes it: `"` and `\\`, the short forms of \b \t \n \f
/// \r, `\u00xx` for the other control characters; everything else as it is. The runs
/// between escapes are copied whole: every customer with custom fields has a JSON object
/// in a string (`customize_field`), full of quotes, and a byte-wise loop over it was a
/// third of the time of writing the JSON.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Field;

    fn customer(fields: &[(Field, &str)]) -> Customer {
        Customer::from_rendered(fields.iter().map(|(f, v)| (*f, v.to_string()))).unwrap()
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
            write(&c, &mut ours);
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
}
