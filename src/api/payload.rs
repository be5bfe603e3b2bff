//! The hash a request body is known by. An intent journals it before the body is sent, so
//! that a resume can tell it re-derived the same batch; a retry names it, so that `explain`
//! can tie the retry to its intent.
//!
//! Nothing adversarial is guarded against here, only a source or job that changed between
//! a run and its resume, so the hash is xxh3-128: a run at 32 requests in flight spent
//! ~3.7 % of the client's CPU on SHA-256 of every body. Older journals hold SHA-256
//! hashes, and a resume of such a run still checks by SHA-256.

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// A body's hash, by the algorithm its journal line names: `payload_xxh3` (or, in older
/// journals, `payload_sha256`), lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadHash {
    #[serde(rename = "payload_xxh3")]
    Xxh3(String),
    #[serde(rename = "payload_sha256")]
    Sha256(String),
}

impl PayloadHash {
    /// The hash of `body` as it is journaled now.
    pub fn of(body: &[u8]) -> PayloadHash {
        PayloadHash::Xxh3(xxh3_hex(twox_hash::XxHash3_128::oneshot(body)))
    }

    /// Whether `body` has this hash, by this hash's own algorithm.
    pub fn is_of(&self, body: &[u8]) -> bool {
        match self {
            PayloadHash::Xxh3(_) => *self == PayloadHash::of(body),
            PayloadHash::Sha256(hex) => *hex == hex::encode(sha2::Sha256::digest(body)),
        }
    }

    /// The algorithm's name, as `explain` shows it.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PayloadHash::Xxh3(_) => "xxh3",
            PayloadHash::Sha256(_) => "sha256",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            PayloadHash::Xxh3(hex) | PayloadHash::Sha256(hex) => hex,
        }
    }
}

/// An XXH3-128 hash as cdpjob writes it: 32 lowercase hex digits.
pub fn xxh3_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_known_by_its_hash_and_no_other_body_is() {
        let body = br#"{"customers":[{"email":"a@example.com"}]}"#;
        let hash = PayloadHash::of(body);
        assert_eq!(hash.algorithm(), "xxh3");
        assert_eq!(hash.hex().len(), 32);
        assert!(hash.is_of(body));
        assert!(!hash.is_of(br#"{"customers":[{"email":"b@example.com"}]}"#));
        // The published xxh3-128 of the empty input (seed 0): the hash is the algorithm's,
        // not this build's, so a journal outlives the binary that wrote it.
        assert_eq!(
            PayloadHash::of(b"").hex(),
            "99aa06d3014798d86001c324468d497f"
        );
    }

    #[test]
    fn an_older_journal_s_sha256_is_checked_by_sha256() {
        let body = b"{}";
        let old = PayloadHash::Sha256(
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into(),
        );
        assert!(old.is_of(body));
        assert!(!old.is_of(b"[]"));
        assert_eq!(old.algorithm(), "sha256");
    }

    #[test]
    fn it_is_journaled_under_its_algorithm_s_name() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Line {
            seq: u64,
            #[serde(flatten)]
            payload: PayloadHash,
        }
        let line = Line {
            seq: 1,
            payload: PayloadHash::of(b"x"),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"seq":1,"payload_xxh3":""#), "{text}");
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
        let old: Line = serde_json::from_str(r#"{"seq":2,"payload_sha256":"ab"}"#).unwrap();
        assert_eq!(old.payload, PayloadHash::Sha256("ab".into()));
    }
}
