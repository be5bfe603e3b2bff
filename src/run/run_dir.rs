//! The run directory of SPEC §4: its layout, the manifest that pins what the run is about
//! (job text, source fingerprint, vars), and the checkpoint of what is done.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::atomic;

pub const MANIFEST: &str = "manifest.json";
pub const EVENTS: &str = "events.jsonl";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const CREATED: &str = "created.jsonl";
pub const FAILED: &str = "failed.jsonl";
pub const REJECTED: &str = "rejected.jsonl";
pub const SUMMARY: &str = "summary.json";

/// What a run is about; written once when it starts, checked on every resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub cdpjob_version: String,
    pub run_id: String,
    pub job_path: String,
    pub job_text: String,
    pub job_sha256: String,
    pub source: SourceFingerprint,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub started_at: String,
    /// What an export run is about (query_export jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
}

/// An export's query and output, rendered once when the run started: a resume continues
/// exactly this export, whatever `state.json` or the clock say by then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The request body of the first page (no cursor).
    pub request: serde_json::Value,
    /// Where the export lands when it is complete…
    pub output: String,
    /// …and where it grows until then.
    pub partial: String,
    pub format: crate::job::model::OutputFormat,
    /// CSV columns, in order.
    pub columns: Vec<String>,
    pub max_records: Option<u64>,
    /// The state file read at the start, and what it held.
    pub state_file: String,
    pub state_read: serde_json::Map<String, serde_json::Value>,
    /// The end of the window this export covers (the query's `end_time`): `last_end_time`
    /// in the next state. None for a query without an end.
    #[serde(default)]
    pub window_end: Option<String>,
}

/// What an export has written: the cursor to continue from and the output's committed
/// length (a resume cuts the output back to it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    /// The `after` cursor of the next page; none before the first page.
    pub after: Option<i64>,
    pub pages: u64,
    pub rows: u64,
    pub output_len: u64,
    /// The id of the last customer written.
    pub last_id: Option<i64>,
    /// Every page is written: what is left is renaming the output and recording the state.
    pub complete: bool,
    /// `max_records` ended the export while the API had more.
    pub capped: bool,
}

/// Enough to tell that the source is not the one the run started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFingerprint {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What is done: the batches whose results are in the result files, and those files'
/// lengths at that moment (a resume cuts them back to these lengths).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every batch below this one is done…
    pub done_below: u64,
    /// …and these above it.
    pub done_above: Vec<u64>,
    pub created_len: u64,
    pub failed_len: u64,
    pub rejected_len: u64,
    pub counts: Counts,
}

impl Checkpoint {
    pub fn is_done(&self, seq: u64) -> bool {
        seq < self.done_below || self.done_above.contains(&seq)
    }

    pub fn mark_done(&mut self, seq: u64) {
        self.done_above.push(seq);
        self.done_above.sort_unstable();
        while self.done_above.first() == Some(&self.done_below) {
            self.done_above.remove(0);
            self.done_below += 1;
        }
    }
}

/// Where every source row ended up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows: u64,
    pub created: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Size and SHA-256 of a source file, read as a stream.
pub fn fingerprint(path: &Path) -> io::Result<SourceFingerprint> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let size = io::copy(&mut f, &mut HashWriter(&mut h))?;
    Ok(SourceFingerprint {
        path: path.display().to_string(),
        size,
        sha256: hex::encode(h.finalize()),
    })
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
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

    #[test]
    fn done_batches_compress_into_a_prefix() {
        let mut c = Checkpoint::default();
        c.mark_done(1);
        c.mark_done(3);
        assert!(!c.is_done(0) && c.is_done(1) && !c.is_done(2) && c.is_done(3));
        c.mark_done(0);
        assert_eq!((c.done_below, c.done_above.clone()), (2, vec![3]));
        c.mark_done(2);
        assert_eq!((c.done_below, c.done_above.clone()), (4, vec![]));
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        assert_eq!(a.len(), "20261122T023500Z-abcd".len());
        assert!(a.as_bytes()[8] == b'T' && a.ends_with(|c: char| c.is_ascii_hexdigit()));
    }
}
