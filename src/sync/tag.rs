//! What change detection knows about one customer: its match key (the field the server
//! matches an existing customer by, SPEC §7) and a SHA-256 of exactly what is sent for it.
//! Two rows with the same key are the same customer on the server; two customers with the
//! same hash would be sent as the same bytes under the same merge rules.

use sha2::{Digest, Sha256};

use crate::customer::{Customer, Field};

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
    // A customer without a match key is not written out at all.
    match_key(customer)?;
    crate::customer_json::with_written(customer, |json| {
        probe_written(customer, json, merge_type, strict_binding)
    })
}

/// [`probe`], given the customer's JSON as [`crate::customer_json::write`] wrote it (a run
/// has it already for its request: it is not written a second time for the hash).
pub fn probe_written<'a>(
    customer: &'a Customer,
    json: &[u8],
    merge_type: u8,
    strict_binding: bool,
) -> Option<Probe<'a>> {
    let (field, value) = match_key(customer)?;
    Some(Probe {
        field,
        value,
        key_digest: digest_of(&[field.name().as_bytes(), b":", value.as_bytes()]),
        hash: content_hash(json, merge_type, strict_binding),
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

/// SHA-256 over the merge type, strict_binding and the customer's JSON as the request body
/// carries it (fields in the API's order: the serialization is canonical).
pub fn content_hash(json: &[u8], merge_type: u8, strict_binding: bool) -> [u8; 32] {
    Sha256::new()
        .chain_update([merge_type, u8::from(strict_binding)])
        .chain_update(json)
        .finalize()
        .into()
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
    fn a_probe_of_the_json_a_run_wrote_is_the_probe_of_the_customer() {
        let c = customer(&[
            (Field::FullName, "牛 \"A\""),
            (Field::Email, "a@x.io"),
            (Field::Gender, "1"),
        ]);
        let json = serde_json::to_vec(&c).unwrap();
        for (merge_type, strict) in [(0, false), (1, true)] {
            let whole = probe(&c, merge_type, strict).unwrap();
            let written = probe_written(&c, &json, merge_type, strict).unwrap();
            assert_eq!(written.hash, whole.hash);
            assert_eq!(written.key_digest, whole.key_digest);
            assert_eq!((written.field, written.value), (whole.field, whole.value));
        }
        assert_ne!(
            probe(&c, 0, false).unwrap().hash,
            probe(&c, 1, false).unwrap().hash
        );
        let no_key = customer(&[(Field::FullName, "A"), (Field::Line, "l")]);
        assert!(probe(&no_key, 0, false).is_none());
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
