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
    /// The first 16 bytes of the key's SHA-256: what lookups and duplicate checks compare.
    pub key_digest: u128,
    /// SHA-256 of the customer's canonical JSON, its merge type and strict_binding.
    pub hash: [u8; 32],
}

/// The tag of `customer` as sent with `merge_type` and `strict_binding`; `None` for a
/// customer with no match key (it is always sent and never recorded).
pub fn tag_of(customer: &Customer, merge_type: u8, strict_binding: bool) -> Option<SyncTag> {
    let (field, value) = Field::MATCH_KEYS
        .iter()
        .find_map(|&f| customer.text(f).filter(|v| !v.is_empty()).map(|v| (f, v)))?;
    let key = format!("{}:{value}", field.name());
    Some(SyncTag {
        field,
        key_digest: key_digest(&key),
        key,
        hash: content_hash(customer, merge_type, strict_binding),
    })
}

/// The digest lookups use for a stored key.
pub fn key_digest(key: &str) -> u128 {
    let d = Sha256::digest(key.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("16 bytes"))
}

/// SHA-256 over the merge type, strict_binding and the customer's JSON as the request body
/// carries it (fields in the API's order: the serialization is canonical).
pub fn content_hash(customer: &Customer, merge_type: u8, strict_binding: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([merge_type, u8::from(strict_binding)]);
    let json = serde_json::to_vec(customer).expect("a customer serializes");
    h.update(&json);
    h.finalize().into()
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
