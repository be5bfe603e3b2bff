//! The sync state on disk: one redb file per API target under `<run.root>/<name>/sync/`
//! (SPEC §7, §12 R6). redb is an ACID key-value store in one file with crash-safe commits,
//! pure Rust; a run's confirmed customers go in with one write transaction, so a crash
//! leaves the state as it was before that commit or after it, never half of it.
//!
//! Tables: `customers` (match key → content hash, customer id, run index), `runs` (run id
//! → run index: which runs are in, so a second commit of the same run does nothing) and
//! `meta` (format version, target). Only a finishing run writes; everything else reads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::Target;
use super::snapshot::Snapshot;
use super::tag::{key_digest, short};

/// The state's own format; a state written by a newer cdpjob is refused, not guessed at.
pub const STATE_FORMAT: u32 = 1;

const CUSTOMERS: TableDefinition<&str, ([u8; 32], i64, u32)> = TableDefinition::new("customers");
/// Run id → (index, when the run began, in nanoseconds since the epoch: run ids of one
/// second do not sort by start).
const RUNS: TableDefinition<&str, (u32, i128)> = TableDefinition::new("runs");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// redb keeps a page cache of its own (1 GiB by default); the state is read once per run,
/// front to back, so a small one keeps a run's memory flat.
const CACHE_BYTES: usize = 16 << 20;

/// Why a state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the sync state {path} cannot be read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the sync state {path} was written by a newer cdpjob (state format {found}; this one reads {STATE_FORMAT})"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error(
        "the sync state {path} is in use by another cdpjob process (a plan reading it, a run recording its customers)"
    )]
    Held { path: PathBuf },
    #[error(
        "the sync state {path} was left by a crash and needs a repair, which the next run makes"
    )]
    NeedsRepair { path: PathBuf },
    #[error("cannot write the sync state {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl StateError {
    /// Whether it is the state itself that is bad (as opposed to busy or unwritable).
    pub fn is_broken(&self) -> bool {
        matches!(
            self,
            StateError::Unreadable { .. } | StateError::Newer { .. }
        )
    }
}

/// A confirmed customer, as a finishing run records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub key: String,
    pub hash: [u8; 32],
    pub customer_id: i64,
}

/// The state file of `target` in the job's sync directory.
pub fn state_path(sync_dir: &Path, target: &Target) -> PathBuf {
    sync_dir.join(format!("{}.redb", target.digest()))
}

/// The states of other targets beside `target`'s (R6: they are kept, not used).
pub fn other_targets(sync_dir: &Path, target: &Target) -> usize {
    let own = state_path(sync_dir, target);
    std::fs::read_dir(sync_dir).map_or(0, |d| {
        d.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p != &own && p.extension().is_some_and(|x| x == "redb"))
            .count()
    })
}

/// That the state at `path` opens and is of a format this cdpjob reads (no state is fine).
/// For a run, which holds the job's lock: a state a crash left needing redb's repair (its
/// last commit is intact, its free-page bookkeeping is rebuilt) is repaired here.
pub fn check(path: &Path) -> Result<(), StateError> {
    if !path.exists() {
        return Ok(());
    }
    let db = open_for_write(path)?;
    let txn = db.begin_read().map_err(|e| StateError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_format(&txn, path)
}

/// Read the state at `path` into a snapshot; an empty one when there is no state yet.
/// Read-only: a state that needs a repair first (see [`check`]) is `NeedsRepair`.
pub fn snapshot(path: &Path) -> Result<Snapshot, StateError> {
    if !path.exists() {
        return Ok(Snapshot::default());
    }
    let db = Builder::new()
        .set_cache_size(CACHE_BYTES)
        .open_read_only(path)
        .map_err(|e| open_error(path, e))?;
    read_snapshot(&db, path)
}

fn read_snapshot(db: &impl ReadableDatabase, path: &Path) -> Result<Snapshot, StateError> {
    let unreadable = |e: redb::Error| StateError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let txn = db.begin_read().map_err(|e| unreadable(e.into()))?;
    check_format(&txn, path)?;
    let table = match txn.open_table(CUSTOMERS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Snapshot::default()),
        Err(e) => return Err(unreadable(e.into())),
    };
    let mut pairs = Vec::with_capacity(table.len().map_err(|e| unreadable(e.into()))? as usize);
    for entry in table.iter().map_err(|e| unreadable(e.into()))? {
        let (k, v) = entry.map_err(|e| unreadable(e.into()))?;
        pairs.push((key_digest(k.value()), short(&v.value().0)));
    }
    Ok(Snapshot::from_pairs(pairs))
}

fn check_format(txn: &redb::ReadTransaction, path: &Path) -> Result<(), StateError> {
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => {
            return Err(StateError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let found = meta
        .get("format_version")
        .ok()
        .flatten()
        .map(|v| v.value().to_string());
    match found.as_deref().map(str::parse::<u32>) {
        // A state created and not yet committed to has no format yet.
        None => Ok(()),
        Some(Ok(STATE_FORMAT)) => Ok(()),
        Some(Ok(v)) if v > STATE_FORMAT => Err(StateError::Newer {
            path: path.to_path_buf(),
            found: v,
        }),
        Some(_) => Err(StateError::Unreadable {
            path: path.to_path_buf(),
            reason: format!(
                "its format_version {:?} is none cdpjob ever wrote",
                found.unwrap_or_default()
            ),
        }),
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StateError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StateError::Held {
            path: path.to_path_buf(),
        },
        redb::DatabaseError::RepairAborted => StateError::NeedsRepair {
            path: path.to_path_buf(),
        },
        e => StateError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

/// Record `run_id`'s confirmed customers in one write transaction, creating the state when
/// there is none. A run already recorded is not recorded again (a resume after a crash
/// between this commit and the summary), and a customer a run that began later recorded
/// keeps that run's entry (a late `resume --force` of an older run does not undo it). An item that is an error (the run's own record of its customers cannot be read)
/// aborts the transaction: all of the run or none of it. Returns how many customers were
/// written.
pub fn commit(
    path: &Path,
    target: &Target,
    run_id: &str,
    began_at: jiff::Timestamp,
    confirmed: impl IntoIterator<Item = Result<Confirmed, String>>,
) -> Result<u64, StateError> {
    let began = began_at.as_nanosecond();
    let write = |reason: String| StateError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let db = open_for_write(path)?;
    let txn = db.begin_write().map_err(|e| write(e.to_string()))?;
    let mut written = 0u64;
    {
        let mut runs = txn.open_table(RUNS).map_err(|e| write(e.to_string()))?;
        if runs
            .get(run_id)
            .map_err(|e| write(e.to_string()))?
            .is_some()
        {
            return Ok(0);
        }
        let index = runs.len().map_err(|e| write(e.to_string()))? as u32;
        // The runs newer than this one, by index (few: one a night).
        let mut newer = std::collections::HashSet::new();
        for entry in runs.iter().map_err(|e| write(e.to_string()))? {
            let (_, run) = entry.map_err(|e| write(e.to_string()))?;
            let (i, other_began) = run.value();
            if other_began > began {
                newer.insert(i);
            }
        }
        runs.insert(run_id, (index, began))
            .map_err(|e| write(e.to_string()))?;
        let mut meta = txn.open_table(META).map_err(|e| write(e.to_string()))?;
        meta.insert("format_version", STATE_FORMAT.to_string().as_str())
            .map_err(|e| write(e.to_string()))?;
        meta.insert("target", target.to_string().as_str())
            .map_err(|e| write(e.to_string()))?;
        let mut customers = txn
            .open_table(CUSTOMERS)
            .map_err(|e| write(e.to_string()))?;
        let sorted = InKeyOrder::of(confirmed).map_err(write)?;
        for (key, hash, customer_id) in sorted.iter() {
            if !newer.is_empty() {
                let by_newer = customers
                    .get(key)
                    .map_err(|e| write(e.to_string()))?
                    .is_some_and(|v| newer.contains(&v.value().2));
                if by_newer {
                    continue;
                }
            }
            customers
                .insert(key, (*hash, customer_id, index))
                .map_err(|e| write(e.to_string()))?;
            written += 1;
        }
    }
    #[cfg(feature = "failpoints")]
    crate::failpoint::io("sync_commit").map_err(|e| write(e.to_string()))?;
    txn.commit().map_err(|e| write(e.to_string()))?;
    crate::failpoint!("after_sync_commit");
    Ok(written)
}

/// How long a run waits for readers of the state (a `plan`: well under a second a million
/// customers) to let go before it says the state is in use.
const WAIT_FOR_READERS: Duration = Duration::from_secs(10);

/// A run's confirmed customers in key order, to be inserted so. In the order of
/// created.jsonl (random, as far as the tree is concerned) a million inserts took 14.3 s,
/// every one a page the 16 MB cache did not hold, and left the tree's pages half full, so
/// that each night's copy-on-write pages no longer fitted and the file doubled; in key
/// order: 3.1 s, 73 MB of pages instead of 122 MB. The keys live in one buffer (48 bytes a
/// customer beside it, where a `Confirmed` with its own `String` is ~96).
struct InKeyOrder {
    keys: Vec<u8>,
    /// (offset in `keys`, length, hash, customer id), sorted by key, then by line.
    entries: Vec<(u32, u32, [u8; 32], i64)>,
}

impl InKeyOrder {
    /// An item that is an error is the first error (the run's record cannot be read).
    fn of(
        confirmed: impl IntoIterator<Item = Result<Confirmed, String>>,
    ) -> Result<InKeyOrder, String> {
        let mut keys = Vec::new();
        let mut entries = Vec::new();
        for c in confirmed {
            let c = c?;
            let at = u32::try_from(keys.len()).expect("under 4 GB of keys in one run");
            keys.extend_from_slice(c.key.as_bytes());
            entries.push((at, c.key.len() as u32, c.hash, c.customer_id));
        }
        let key =
            |&(at, len, ..): &(u32, u32, [u8; 32], i64)| &keys[at as usize..(at + len) as usize];
        // A key written twice (a resumed run's line again) keeps its last line, as inserting
        // the lines in order did: the tie is broken by the offset, which grows line by line.
        entries.sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.0.cmp(&b.0)));
        Ok(InKeyOrder { keys, entries })
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &[u8; 32], i64)> {
        self.entries.iter().map(|(at, len, hash, id)| {
            let key = &self.keys[*at as usize..(*at + *len) as usize];
            (
                std::str::from_utf8(key).expect("keys were strings"),
                hash,
                *id,
            )
        })
    }
}

fn open_for_write(path: &Path) -> Result<Database, StateError> {
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    if path.exists() {
        // redb refuses a writer while any process reads the file: wait for them, a while.
        let deadline = Instant::now() + WAIT_FOR_READERS;
        loop {
            match builder.open(path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other.map_err(|e| open_error(path, e)),
            }
        }
    }
    let write = |e: std::io::Error| StateError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        crate::run_dir::create_private_dir(dir).map_err(write)?;
    }
    // The state holds phone numbers and emails: private, like the run directories. redb
    // initializes an empty file it is given.
    drop(crate::run_dir::atomic::create_private(path).map_err(write)?);
    builder.create(path).map_err(|e| open_error(path, e))
}

/// Move a state that cannot be read aside (R8), so a `--full` run starts a fresh one.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let aside = path.with_extension(format!("sync.broken-{stamp}"));
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When a test run began: its id's digits, as seconds (later ids, later starts).
    fn at(run_id: &str) -> jiff::Timestamp {
        let digits: String = run_id.chars().filter(char::is_ascii_digit).collect();
        let n: i64 = digits
            .chars()
            .rev()
            .take(9)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        jiff::Timestamp::from_second(n).unwrap()
    }

    fn target() -> Target {
        Target {
            base_url: "sim".into(),
            tenant_id: 1,
            app_key: "k".into(),
        }
    }

    fn confirmed(key: &str, byte: u8, id: i64) -> Confirmed {
        Confirmed {
            key: key.into(),
            hash: [byte; 32],
            customer_id: id,
        }
    }

    #[test]
    fn a_commit_is_read_back_and_a_second_commit_of_a_run_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), &target());
        assert!(snapshot(&path).unwrap().is_empty());
        let n = commit(
            &path,
            &target(),
            "run-1",
            at("run-1"),
            [
                Ok(confirmed("email:a@x", 1, 10)),
                Ok(confirmed("email:b@x", 2, 11)),
            ],
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            commit(
                &path,
                &target(),
                "run-1",
                at("run-1"),
                [Ok(confirmed("email:c@x", 3, 12))]
            )
            .unwrap(),
            0
        );
        let snap = snapshot(&path).unwrap();
        assert_eq!(snap.len(), 2);
        commit(
            &path,
            &target(),
            "run-2",
            at("run-2"),
            [Ok(confirmed("email:a@x", 9, 10))],
        )
        .unwrap();
        assert_eq!(snapshot(&path).unwrap().len(), 2);
        // A run whose record cannot be read is recorded not at all.
        let e = commit(
            &path,
            &target(),
            "run-3",
            at("run-3"),
            [
                Ok(confirmed("email:d@x", 4, 13)),
                Err("line 2: not JSON".into()),
            ],
        );
        assert!(e.is_err());
        assert_eq!(snapshot(&path).unwrap().len(), 2);
        // … and so it can be recorded later, as a whole.
        assert_eq!(
            commit(
                &path,
                &target(),
                "run-3",
                at("run-3"),
                [Ok(confirmed("email:d@x", 4, 13))]
            )
            .unwrap(),
            1
        );
    }

    #[test]
    fn an_older_run_recorded_late_leaves_a_newer_runs_customers_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), &target());
        let newer = "20261202T020000Z-bbbb";
        let older = "20261201T020000Z-aaaa";
        commit(
            &path,
            &target(),
            newer,
            at(newer),
            [Ok(confirmed("email:a@x", 2, 10))],
        )
        .unwrap();
        let written = commit(
            &path,
            &target(),
            older,
            at(older),
            [
                Ok(confirmed("email:a@x", 1, 10)),
                Ok(confirmed("email:b@x", 1, 11)),
            ],
        )
        .unwrap();
        assert_eq!(written, 1, "only the customer the newer run did not record");
        let snap = snapshot(&path).unwrap();
        let newer_a = crate::sync::SyncTag {
            field: crate::customer::Field::Email,
            key: "email:a@x".into(),
            key_digest: super::key_digest("email:a@x"),
            hash: [2; 32],
        };
        assert!(snap.is_unchanged(&newer_a));
    }

    #[test]
    fn customers_go_in_in_key_order_and_a_key_twice_keeps_its_last_line() {
        let sorted = InKeyOrder::of([
            Ok(confirmed("email:c@x", 1, 1)),
            Ok(confirmed("email:a@x", 2, 2)),
            Ok(confirmed("email:b@x", 3, 3)),
            Ok(confirmed("email:a@x", 4, 4)),
        ])
        .unwrap();
        let order: Vec<_> = sorted.iter().map(|(k, h, id)| (k, h[0], id)).collect();
        assert_eq!(
            order,
            [
                ("email:a@x", 2, 2),
                ("email:a@x", 4, 4),
                ("email:b@x", 3, 3),
                ("email:c@x", 1, 1)
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), &target());
        commit(
            &path,
            &target(),
            "run-1",
            at("run-1"),
            [
                Ok(confirmed("email:a@x", 2, 2)),
                Ok(confirmed("email:a@x", 4, 4)),
            ],
        )
        .unwrap();
        let snap = snapshot(&path).unwrap();
        assert_eq!(snap.len(), 1);
        assert!(snap.holds(key_digest("email:a@x"), &[4; 32]));
    }

    #[test]
    fn a_damaged_state_is_unreadable_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), &target());
        commit(
            &path,
            &target(),
            "run-1",
            at("run-1"),
            [Ok(confirmed("email:a@x", 1, 10))],
        )
        .unwrap();
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format_version", "99")
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(
            snapshot(&path).unwrap_err(),
            StateError::Newer { .. }
        ));
        std::fs::write(&path, b"not a database at all").unwrap();
        let e = snapshot(&path).unwrap_err();
        assert!(e.is_broken(), "{e}");
        let aside = move_aside(&path).unwrap();
        assert!(!path.exists() && aside.exists());
        assert!(aside.to_string_lossy().contains(".sync.broken-"));
    }
}
