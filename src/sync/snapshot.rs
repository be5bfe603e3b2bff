//! The sync state as it was when a run started (SPEC §12 R5), kept in the run directory:
//! a resume compares rows with exactly what the first attempt compared them with, whatever
//! the state became since, so it forms the same batches. In memory it is a sorted array of
//! (key digest, content digest) pairs — 32 bytes a customer — with an index by the top bits
//! of the key digest, and on disk the same array behind a header and followed by its
//! SHA-256, so a cut or damaged file is refused rather than read as "everything is new".

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::tag::{SyncTag, short};

/// Format 2: key digests are XXH3-128 (format 1's were SHA-256 prefixes).
const MAGIC: &[u8; 16] = b"cdpjob-snapshot2";

/// The customers a state held, by key digest, with the digest of what was sent.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    entries: Vec<(u128, u128)>,
    /// Where the entries whose key digest starts with each `bits`-bit prefix begin (one
    /// more at the end): a lookup reads two neighbours here and then about one entry. A
    /// binary search of a million entries (32 MB) was ~20 cache misses a row, and the
    /// unchanged check ran at a fraction of the 1,000,000 rows/s it must reach; key digests
    /// are uniform hashes, so the buckets fill evenly. 4 bytes a bucket, about one
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
        self.find(key_digest).map(|(_, hash)| hash)
    }

    /// Where the state's entry for a key digest is (its slot, for [`Seen`]), and the content
    /// digest it holds.
    pub fn find(&self, key_digest: u128) -> Option<(u32, u128)> {
        let b = bucket(key_digest, self.bits);
        let (&start, &end) = (self.index.get(b)?, self.index.get(b + 1)?);
        let at = self.entries[start as usize..end as usize]
            .iter()
            .position(|e| e.0 == key_digest)?;
        let slot = start + at as u32;
        Some((slot, self.entries[slot as usize].1))
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
            .enumerate()
            .filter(|&(slot, &(k, _))| !seen.has(slot, k))
            .count() as u64
    }

    /// Write the snapshot to `path` atomically (temp file, fsync, rename), streamed: a
    /// million customers are 32 MB, which a run need not hold twice.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        crate::run_dir::atomic::write_atomic_with(path, |out| {
            let mut sum = Sha256::new();
            let mut put = |bytes: &[u8]| {
                sum.update(bytes);
                out.write_all(bytes)
            };
            put(MAGIC)?;
            put(&(self.entries.len() as u64).to_le_bytes())?;
            for (k, h) in &self.entries {
                put(&k.to_le_bytes())?;
                put(&h.to_le_bytes())?;
            }
            out.write_all(&sum.finalize())
        })
    }

    /// Read a snapshot [`Snapshot::write`] wrote; anything else is `InvalidData`. Streamed
    /// as it was written.
    pub fn read(path: &Path) -> io::Result<Snapshot> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a sync snapshot cdpjob wrote: {why}",
                    path.display()
                ),
            )
        };
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let head = (MAGIC.len() + 8) as u64;
        let mut input = io::BufReader::with_capacity(1 << 16, file);
        let mut sum = Sha256::new();
        let mut magic = [0u8; 16];
        let mut count = [0u8; 8];
        if len < head + 32 {
            return Err(bad("no snapshot header"));
        }
        input.read_exact(&mut magic)?;
        input.read_exact(&mut count)?;
        if &magic == b"cdpjob-snapshot1" {
            return Err(bad(
                "an earlier cdpjob wrote it, with other key digests: start a new run",
            ));
        }
        if &magic != MAGIC {
            return Err(bad("no snapshot header"));
        }
        sum.update(magic);
        sum.update(count);
        let count = u64::from_le_bytes(count);
        if count.checked_mul(32).and_then(|b| b.checked_add(head + 32)) != Some(len) {
            return Err(bad("its length does not match its count"));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut pair = [0u8; 32];
        for _ in 0..count {
            input.read_exact(&mut pair)?;
            sum.update(pair);
            entries.push((
                u128::from_le_bytes(pair[..16].try_into().expect("16 bytes")),
                u128::from_le_bytes(pair[16..].try_into().expect("16 bytes")),
            ));
        }
        let mut stored = [0u8; 32];
        input.read_exact(&mut stored)?;
        if sum.finalize().as_slice() != stored {
            return Err(bad("its checksum does not match (cut or damaged)"));
        }
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
/// A million keys pass through here in a million-row run. Those the state has are marked
/// in an array beside the snapshot's entries (8 bytes a customer: the row), found by the
/// slot the lookup returned anyway; only keys new to the state go in a hash table (a first
/// run's all do). That table is kept small too: a key digest is already a uniform hash, so
/// its own bits are the hash (no SipHash), and it is held as two `u64`s (24
/// bytes a slot with the row, where a `u128`'s alignment made 32).
#[derive(Debug, Default)]
pub struct Seen {
    /// Per snapshot entry, 1 + the first row that had its key; 0 for none yet.
    known: Vec<u64>,
    new: HashMap<Digest2, u64, BuildHasherDefault<DigestHasher>>,
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
    /// The keys of a source about to be compared with `snapshot`.
    pub fn for_snapshot(snapshot: &Snapshot) -> Seen {
        Seen {
            known: vec![0; snapshot.len()],
            new: HashMap::default(),
        }
    }

    /// Note `row`'s key (with its slot in the snapshot [`Seen::for_snapshot`] was made for,
    /// when the snapshot has it); the earlier row when the key was seen before.
    pub fn note(&mut self, key_digest: u128, slot: Option<u32>, row: u64) -> Option<u64> {
        if let Some(first) = slot.and_then(|s| self.known.get_mut(s as usize)) {
            return match *first {
                0 => {
                    *first = row + 1;
                    None
                }
                earlier => Some(earlier - 1),
            };
        }
        match self.new.entry(Digest2::of(key_digest)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }

    fn has(&self, slot: usize, key_digest: u128) -> bool {
        self.known.get(slot).is_some_and(|&r| r > 0)
            || self.new.contains_key(&Digest2::of(key_digest))
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
    fn a_snapshot_of_the_first_format_is_refused_as_such() {
        // Format 1 held SHA-256 prefixes as key digests: read as format 2, its every
        // customer would look new.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        Snapshot::from_pairs(vec![(1, 10)]).write(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..16].copy_from_slice(b"cdpjob-snapshot1");
        std::fs::write(&path, &bytes).unwrap();
        let e = Snapshot::read(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("an earlier cdpjob wrote it"), "{e}");
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
        let mut seen = Seen::for_snapshot(&s);
        let slot = |k| s.find(k).map(|(slot, _)| slot);
        assert_eq!(seen.note(2, slot(2), 5), None);
        assert_eq!(seen.note(9, slot(9), 6), None);
        assert_eq!(seen.note(2, slot(2), 7), Some(5));
        assert_eq!(seen.note(9, slot(9), 8), Some(6));
        assert_eq!(seen.note(1, slot(1), 0), None);
        assert_eq!(seen.note(1, slot(1), 9), Some(0));
        assert_eq!(s.missing_from(&seen), 1);
        // Keys alike in the half that is hashed are still two keys.
        let mut seen = Seen::default();
        assert_eq!(seen.note(1 << 64 | 7, None, 1), None);
        assert_eq!(seen.note(2 << 64 | 7, None, 2), None);
        assert_eq!(seen.note(2 << 64 | 7, None, 3), Some(2));
        assert_eq!(s.missing_from(&seen), 3);
    }
}
