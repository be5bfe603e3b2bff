//! The sync state as it was when a run started (SPEC §12 R5), kept in the run directory:
//! a resume compares rows with exactly what the first attempt compared them with, whatever
//! the state became since, so it forms the same batches. In memory it is a sorted array of
//! (key digest, content digest) pairs — 32 bytes a customer, one binary search a row — and
//! on disk the same array behind a header and followed by its SHA-256, so a cut or damaged
//! file is refused rather than read as "everything is new".

use std::collections::HashMap;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::tag::{SyncTag, short};

const MAGIC: &[u8; 16] = b"cdpjob-snapshot1";

/// The customers a state held, by key digest, with the digest of what was sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    entries: Vec<(u128, u128)>,
}

impl Snapshot {
    /// From (key digest, content digest) pairs in any order.
    pub fn from_pairs(mut entries: Vec<(u128, u128)>) -> Snapshot {
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        Snapshot { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the state holds this customer exactly as `tag` would send it.
    pub fn is_unchanged(&self, tag: &SyncTag) -> bool {
        self.entries
            .binary_search_by_key(&tag.key_digest, |e| e.0)
            .is_ok_and(|i| self.entries[i].1 == short(&tag.hash))
    }

    /// How many of the state's customers `seen` does not hold.
    pub fn missing_from(&self, seen: &Seen) -> u64 {
        self.entries
            .iter()
            .filter(|(k, _)| !seen.first.contains_key(k))
            .count() as u64
    }

    /// Write the snapshot to `path` atomically (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + self.entries.len() * 32 + 32);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (k, h) in &self.entries {
            bytes.extend_from_slice(&k.to_le_bytes());
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum);
        crate::run_dir::atomic::write_atomic(path, &bytes)
    }

    /// Read a snapshot [`Snapshot::write`] wrote; anything else is `InvalidData`.
    pub fn read(path: &Path) -> io::Result<Snapshot> {
        let bytes = std::fs::read(path)?;
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a sync snapshot cdpjob wrote: {why}",
                    path.display()
                ),
            )
        };
        let head = MAGIC.len() + 8;
        if bytes.len() < head + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("no snapshot header"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(bad("its checksum does not match (cut or damaged)"));
        }
        let count = u64::from_le_bytes(body[MAGIC.len()..head].try_into().expect("8 bytes"));
        let pairs = &body[head..];
        if pairs.len() as u64 != count * 32 {
            return Err(bad("its length does not match its count"));
        }
        let entries = pairs
            .chunks_exact(32)
            .map(|c| {
                (
                    u128::from_le_bytes(c[..16].try_into().expect("16 bytes")),
                    u128::from_le_bytes(c[16..].try_into().expect("16 bytes")),
                )
            })
            .collect();
        Ok(Snapshot { entries })
    }
}

/// The match keys a run's source has had so far, and the first row of each (SPEC §12 R7).
#[derive(Debug, Default)]
pub struct Seen {
    first: HashMap<u128, u64>,
}

impl Seen {
    /// Note `row`'s key; the earlier row when the key was seen before.
    pub fn note(&mut self, key_digest: u128, row: u64) -> Option<u64> {
        match self.first.entry(key_digest) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_refuses_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let s = Snapshot::from_pairs(vec![(3, 30), (1, 10), (2, 20)]);
        s.write(&path).unwrap();
        assert_eq!(Snapshot::read(&path).unwrap(), s);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            Snapshot::read(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::write(&path, &bytes[..40]).unwrap();
        assert_eq!(
            Snapshot::read(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn seen_keys_name_the_first_row_and_count_what_is_missing() {
        let s = Snapshot::from_pairs(vec![(1, 10), (2, 20), (3, 30)]);
        let mut seen = Seen::default();
        assert_eq!(seen.note(2, 5), None);
        assert_eq!(seen.note(9, 6), None);
        assert_eq!(seen.note(2, 7), Some(5));
        assert_eq!(s.missing_from(&seen), 2);
    }
}
