//! The run directory of SPEC §4, the same for both kinds of job: its layout, the manifest
//! that pins what the run is about, the journal, atomic writes and the job's lock.
//!
//! Every JSON document a run directory holds (manifest, checkpoint, summary) carries
//! `format_version` (SPEC §12 R2); one written by another format is refused by name rather
//! than misread.

pub mod atomic;
pub mod events;
pub mod journal;
pub mod lock;
mod manifest;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use manifest::{
    ContentHash, ExportRecord, KindRecord, Manifest, RetryOf, RetryRows, SourceFingerprint,
    SpoolRecord, SubWindow, SyncRecord,
};

/// The version of every JSON document cdpjob writes for others to read: `--json` output,
/// manifest, checkpoint and summary (SPEC §12 R2). Raised when one changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

pub const MANIFEST: &str = "manifest.json";
pub const EVENTS: &str = "events.jsonl";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const CREATED: &str = "created.jsonl";
pub const FAILED: &str = "failed.jsonl";
pub const REJECTED: &str = "rejected.jsonl";
pub const SUMMARY: &str = "summary.json";
/// A retry's rows: the records it took from the run it retries (`source::records`).
pub const RETRY_INPUT: &str = "retry-input.jsonl";
/// A sql source's rows, read once before the first request (`source::spool`).
pub const SPOOL: &str = "source.jsonl.zst";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Size and content hash of a source file, read as a stream, as a new run records them.
pub fn fingerprint(path: &Path) -> io::Result<SourceFingerprint> {
    hashed(path, Hashing::Xxh3(Box::default()))
}

fn hashed(path: &Path, mut hashing: Hashing) -> io::Result<SourceFingerprint> {
    // Read 256 KiB at a time: with std's 8 KiB, the read calls of a 135 MB source cost more
    // than hashing it by XXH3 does (a new run does this before its first request).
    let mut file = io::BufReader::with_capacity(256 << 10, fs::File::open(path)?);
    let size = io::copy(&mut file, &mut hashing)?;
    Ok(SourceFingerprint {
        path: path.display().to_string(),
        size,
        content: hashing.finish(),
    })
}

impl SourceFingerprint {
    /// Whether the file at `path` has this size and content, hashed by this fingerprint's
    /// own algorithm (an older manifest's SHA-256 still checks by SHA-256).
    pub fn is_of(&self, path: &Path) -> io::Result<bool> {
        let hashing = match self.content {
            ContentHash::Xxh3(_) => Hashing::Xxh3(Box::default()),
            ContentHash::Sha256(_) => Hashing::Sha256(Sha256::new()),
        };
        let now = hashed(path, hashing)?;
        Ok(now.size == self.size && now.content == self.content)
    }
}

/// A file's content hash as it is being read, by one of [`ContentHash`]'s algorithms.
enum Hashing {
    Xxh3(Box<twox_hash::XxHash3_128>),
    Sha256(Sha256),
}

impl Hashing {
    fn finish(self) -> ContentHash {
        match self {
            Hashing::Xxh3(h) => ContentHash::Xxh3(crate::api::payload::xxh3_hex(h.finish_128())),
            Hashing::Sha256(h) => ContentHash::Sha256(hex::encode(h.finalize())),
        }
    }
}

impl io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Hashing::Xxh3(h) => h.write(buf),
            Hashing::Sha256(h) => h.update(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `YYYYMMDDTHHMMSSZ-xxxx`: sorts by start time; the suffix keeps two runs in one second apart.
pub fn new_run_id() -> String {
    format!(
        "{}-{:04x}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        fastrand::u16(..)
    )
}

/// Create a directory (and its parents) readable by its owner only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Read a document written by [`write_versioned`]: refused, saying which cdpjob wrote it,
/// when its `format_version` is not this one's.
pub fn read_versioned<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<T> {
    let doc: serde_json::Value = read_json(path)?;
    let version = doc
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(FORMAT_VERSION)) {
        let writer = doc
            .get("cdpjob_version")
            .and_then(serde_json::Value::as_str)
            .map_or_else(String::new, |v| format!(" (written by cdpjob {v})"));
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has format version {}{writer}, and this cdpjob {} reads only format {FORMAT_VERSION}",
                path.display(),
                version.map_or_else(|| "0".to_string(), |v| v.to_string()),
                env!("CARGO_PKG_VERSION"),
            ),
        ));
    }
    serde_json::from_value(doc).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// `value` as a document for others to read: its fields after `format_version`.
pub fn versioned<T: Serialize>(value: &T) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("format_version".into(), FORMAT_VERSION.into());
    match serde_json::to_value(value).expect("our documents serialize") {
        serde_json::Value::Object(fields) => doc.extend(fields),
        other => {
            doc.insert("value".into(), other);
        }
    }
    serde_json::Value::Object(doc)
}

/// Write `value` atomically as a versioned document (see [`versioned`]).
pub fn write_versioned<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_json_atomic(path, &versioned(value))
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<T> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    atomic::write_atomic(path, &bytes)
}

/// Paths of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read in 8 KB pieces, a file hashes as its bytes do in one piece; and a fingerprint
    /// of either algorithm knows its file, and not a file of the same size changed.
    #[test]
    fn a_source_s_fingerprint_is_the_hash_of_its_bytes_by_its_own_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.csv");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let new = fingerprint(&path).unwrap();
        assert_eq!(new.size, 100_000);
        assert_eq!(
            new.content,
            ContentHash::Xxh3(crate::api::payload::xxh3_hex(
                twox_hash::XxHash3_128::oneshot(&bytes)
            ))
        );
        let old = SourceFingerprint {
            content: ContentHash::Sha256(sha256_hex(&bytes)),
            ..new.clone()
        };
        assert!(new.is_of(&path).unwrap() && old.is_of(&path).unwrap());
        let mut changed = bytes.clone();
        changed[50_000] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert!(!new.is_of(&path).unwrap() && !old.is_of(&path).unwrap());
    }

    #[test]
    fn a_document_of_another_format_is_refused_naming_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_versioned(&path, &serde_json::json!({"run_id": "x"})).unwrap();
        let doc: serde_json::Value = read_versioned(&path).unwrap();
        assert_eq!(
            (doc["format_version"].as_u64(), doc["run_id"].as_str()),
            (Some(1), Some("x"))
        );
        std::fs::write(&path, r#"{"cdpjob_version": "0.1.0", "run_id": "x"}"#).unwrap();
        let e = read_versioned::<serde_json::Value>(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("format version 0 (written by cdpjob 0.1.0)"),
            "{e}"
        );
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        assert_eq!(a.len(), "20261122T023500Z-abcd".len());
        assert!(a.as_bytes()[8] == b'T' && a.ends_with(|c: char| c.is_ascii_hexdigit()));
    }
}
