//! The sync state as it was when a run started (SPEC §12 R5), kept in the run directory:
//! a resume compares rows with exactly what the first attempt compared them with, whatever
//! the state became since, so it forms the same batches. In memory it is a sorted array of
//! (key digest, content digest) pairs — 32 bytes a customer — with an index by the top bits
//! of the key digest, and on disk the same array behind a header and followed by its
//! SHA-256, so a cut or damaged file is refused rather than read as "everything is new".

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::tag::{SyncTag, short};

const MAGIC: &[u8; 16] = b"cdpjob-snapshot1";

/// The customers a state held, by key digest, with the digest of what was sent.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    entries: Vec<(u128, u128)>,
    /// Where the entries whose key digest starts with each `bits`-bit prefix begin (one
    /// more at the end): a lookup reads two neighbours here and then about one entry. A
    /// binary search of a million entries (32 MB) was ~20 cache misses a row, and the
    /// unchanged check ran at a fraction of the 1,000,000 rows/s it must reach; key digests
    /// are SHA-256 prefixes, so the buckets fill evenly. 4 bytes a bucket, about one
    /// bucket a customer. Empty in a `default()` snapshot.
    index: Vec<u32>,
    bits: u32,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// From (key digest, content digest) pairs in any order.
    pub fn from_pairs(mut entries: Vec<(u128, u128)>) -> Snapshot {
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        Snapshot::indexed(entries)
    }

    /// `entries`, sorted by key digest with no key twice, with their index.
    fn indexed(entries: Vec<(u128, u128)>) -> Snapshot {
        // About one entry a bucket: 2^bits is the least power of two above the count.
        let bits = (usize::BITS - entries.len().leading_zeros()).min(32);
        let buckets = 1usize << bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for b in 0..buckets {
            while at < entries.len() && bucket(entries[at].0, bits) < b {
                at += 1;
            }
            index.push(at as u32);
        }
        index.push(entries.len() as u32);
        Snapshot {
            entries,
            index,
            bits,
        }
    }

    /// The content digest the state holds for a key digest.
    fn get(&self, key_digest: u128) -> Option<u128> {
        let b = bucket(key_digest, self.bits);
        let (&start, &end) = (self.index.get(b)?, self.index.get(b + 1)?);
        self.entries[start as usize..end as usize]
            .iter()
            .find(|e| e.0 == key_digest)
            .map(|e| e.1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the state holds this customer exactly as `tag` would send it.
    pub fn is_unchanged(&self, tag: &SyncTag) -> bool {
        self.holds(tag.key_digest, &tag.hash)
    }

    /// Whether the state holds the customer of key digest `key_digest` with content hash
    /// `hash`.
    pub fn holds(&self, key_digest: u128, hash: &[u8; 32]) -> bool {
        self.get(key_digest) == Some(short(hash))
    }

    /// How many of the state's customers `seen` does not hold.
    pub fn missing_from(&self, seen: &Seen) -> u64 {
        self.entries
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
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
            .collect::<Vec<_>>();
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(bad("its entries are not in order"));
        }
        Ok(Snapshot::indexed(entries))
    }
}

/// The bucket of a key digest: its top `bits` bits.
fn bucket(key_digest: u128, bits: u32) -> usize {
    key_digest.checked_shr(128 - bits).unwrap_or(0) as usize
}

/// The match keys a run's source has had so far, and the first row of each (SPEC §12 R7).
///
/// A million keys live here by the end of a million-row run, so the table is kept small:
/// a key digest is already a uniform SHA-256 prefix, so its own bits are the hash (no
/// SipHash), and it is held as two `u64`s (24 bytes a slot with the row, where a `u128`'s
/// alignment made 32).
#[derive(Debug, Default)]
pub struct Seen {
    first: HashMap<Digest2, u64, BuildHasherDefault<DigestHasher>>,
}

/// A key digest in two halves (alignment 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest2(u64, u64);

impl Digest2 {
    fn of(d: u128) -> Digest2 {
        Digest2((d >> 64) as u64, d as u64)
    }
}

impl Hash for Digest2 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.1);
    }
}

/// The hasher of [`Digest2`]: the digest's low half, as it is.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes, if slowly.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Seen {
    /// Room for `keys` keys from the start: a run expects about as many as its state holds,
    /// and growing the table late holds the old and the new one at once.
    pub fn with_capacity(keys: usize) -> Seen {
        Seen {
            first: HashMap::with_capacity_and_hasher(keys, Default::default()),
        }
    }

    /// Note `row`'s key; the earlier row when the key was seen before.
    pub fn note(&mut self, key_digest: u128, row: u64) -> Option<u64> {
        match self.first.entry(Digest2::of(key_digest)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }

    fn contains(&self, key_digest: u128) -> bool {
        self.first.contains_key(&Digest2::of(key_digest))
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
    fn every_entry_is_found_by_its_key_and_no_other_key_is() {
        let digest = |i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        for n in [0u128, 1, 2, 3, 100, 1000] {
            let s = Snapshot::from_pairs((0..n).map(|i| (digest(i), i)).collect());
            for i in 0..n {
                assert_eq!(s.get(digest(i)), Some(i), "entry {i} of {n}");
            }
            assert_eq!(s.get(digest(n)), None);
            assert_eq!(s.get(0), if n > 0 { Some(0) } else { None });
            assert_eq!(s.get(u128::MAX), None);
        }
        assert_eq!(Snapshot::default().get(1), None);
        let all = Snapshot::from_pairs(vec![(0, 1), (u128::MAX, 2), (1 << 127, 3)]);
        assert_eq!(
            (all.get(0), all.get(u128::MAX), all.get(1 << 127)),
            (Some(1), Some(2), Some(3))
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
        // Keys alike in the half that is hashed are still two keys.
        let mut seen = Seen::with_capacity(2);
        assert_eq!(seen.note(1 << 64 | 7, 1), None);
        assert_eq!(seen.note(2 << 64 | 7, 2), None);
        assert_eq!(seen.note(2 << 64 | 7, 3), Some(2));
    }
}
