//! The simulator's customers and tags, held in memory behind one lock (a 100-record batch is
//! applied in well under a millisecond, so the requests in flight barely wait on each
//! other), and — with a state file (`--state`, or the in-process simulator's state under
//! the run root) — logged to it as JSON lines, so that a later simulator (an export after an
//! import) sees them. The log is replayed on open and compacted when most of it is
//! superseded. It is written, not fsynced: the state must outlive the simulator process,
//! not a crash of the machine.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

use super::fields::{Fields, MATCH_KEYS};
use super::order::{Order, ShuffleIndex};
use crate::api::wire::Paging;

/// Creates and queries customers.
pub struct Store {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A record accepted for writing: its fields (batch_create names, `tagStr` and nulls
/// excluded) as they are stored, and its tag names.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub fields: Fields,
    pub tags: Vec<&'a str>,
}

/// How batch_create merges into an existing customer (the body's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    Replace,
    Update,
    Keep,
}

/// The filters and paging of a query (CDP-API §5), already checked.
#[derive(Debug, Clone, Default)]
pub struct QuerySpec {
    pub tenant_id: i64,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub tag_ids: Vec<i64>,
    pub tags_all: bool,
    pub name: Option<String>,
    pub source_type: Option<i64>,
    pub sms_phone: Option<String>,
    pub whats_app_phone: Option<String>,
    pub email: Option<String>,
    pub viber_phone: Option<String>,
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Snowflake-like ids: milliseconds since 2010-11-04 shifted left 22 bits, so every id is
/// far above 2^53 — the test of whether a client keeps them exact.
const ID_EPOCH_MS: i64 = 1_288_834_974_657;

/// One customer as stored, and as one line of the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    id: i64,
    tenant: i64,
    /// batch_create names, `tagStr` excluded.
    fields: Fields,
    /// Tag ids, ascending.
    tags: TagIds,
    created_at: Stamp,
    updated_at: Stamp,
}

/// A customer's tag ids, held in the customer for up to three (the benchmark's customers have
/// three): a `Vec` was an allocation of its own for each of a million customers, whose pages
/// the kernel zeroes as the store grows (see `fields`).
type TagIds = SmallVec<[i64; 3]>;

/// A creation or update time, `yyyy-MM-dd HH:mm:ss` UTC. Every customer a request writes
/// shares the request's one text: two strings a customer were two allocations and ~90
/// bytes of each million customers held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(Arc<str>);

impl Stamp {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Stamp {
    fn from(text: String) -> Stamp {
        Stamp(text.into())
    }
}

impl Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        String::deserialize(d).map(Stamp::from)
    }
}

/// A line of the state file: a tag as it is created, a customer each time it is written
/// (the last line for an id wins).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    Tag { id: i64, tenant: i64, name: String },
    Customer(Stored),
}

#[derive(Default)]
struct Inner {
    /// By id: ids are unique across tenants, and asc and desc paging walk them in order.
    /// Boxed: ids come in ascending, which leaves the tree's nodes little more than half
    /// full, and a node of 136-byte customers held ~260 bytes for each (a million
    /// customers' pages zeroed as the store grew were a sixth of the simulator's CPU).
    customers: BTreeMap<i64, Box<Stored>>,
    /// Per tenant and match key: who holds each value. A record matches the lowest id.
    keys: foldhash::HashMap<i64, [KeyIndex; 3]>,
    /// Per tenant: tag name → id; and id → name.
    tag_ids: foldhash::HashMap<i64, foldhash::HashMap<String, i64>>,
    tag_names: foldhash::HashMap<i64, String>,
    last_tag: i64,
    last_id: i64,
    sequential: bool,
    /// Each second customers were created in, with the first id created in it. Creation
    /// times never decrease with the id (a clock that steps back is not followed), so a
    /// time window is a range of ids, found by binary search.
    created: Vec<(Stamp, i64)>,
    /// The order queries page in.
    order: Sequence,
    /// Whether a query's `end_time` is inside its window (`[start, end]`) rather than just
    /// past it (`[start, end)`, the default): the vendor does not say, so a client must
    /// work with either.
    inclusive_end: bool,
    log: Option<Log>,
}

/// The order queries page in, with what walking it needs.
#[derive(Default)]
enum Sequence {
    #[default]
    Asc,
    Desc,
    /// By position in a keyed hash of the id, kept in an index of its own.
    Shuffled(ShuffleIndex),
}

/// Which customers hold each value of one match key, by a hash of the value. A map keyed by
/// the values themselves rehashed a million strings each time it grew and held the store
/// for ~200 ms (three stalls in a million-customer run); u64 keys through a pass-through
/// hasher grow in milliseconds. Hashes may collide: the ids under one are checked against
/// the customers' actual values.
///
/// Nearly every hash has one id, held in `one` (16 bytes an entry; an enum of one id or a
/// `Vec` was 32, and the three indexes of a million customers took ~200 MB). A hash that
/// came to have more ids is in `many` instead, its ids ascending (it stays there when
/// removals leave it one); a hash is never in both.
#[derive(Default)]
struct KeyIndex {
    one: HashMap<u64, i64, PassThroughHasher>,
    many: HashMap<u64, Vec<i64>, PassThroughHasher>,
}

type PassThroughHasher = std::hash::BuildHasherDefault<PassThrough>;

/// The hasher of `KeyIndex`, whose keys are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys come here (`write_u64`); anything else still hashes, just slowly.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn value_hash(value: &str) -> u64 {
    // Fixed (the same in every process, which is all the index needs) and several times
    // faster than SipHash on short keys: three lookups a record.
    twox_hash::XxHash3_128::oneshot(value.as_bytes()) as u64
}

impl KeyIndex {
    /// The lowest id among those under the value's hash that `holds` the value.
    fn lowest(&self, value: &str, holds: impl Fn(i64) -> bool) -> Option<i64> {
        let h = value_hash(value);
        match self.many.get(&h) {
            Some(ids) => ids.iter().copied().find(|id| holds(*id)),
            None => self.one.get(&h).copied().filter(|id| holds(*id)),
        }
    }

    fn add(&mut self, value: &str, id: i64) {
        use std::collections::hash_map::Entry;
        let h = value_hash(value);
        if let Some(ids) = self.many.get_mut(&h) {
            if let Err(at) = ids.binary_search(&id) {
                ids.insert(at, id);
            }
            return;
        }
        match self.one.entry(h) {
            Entry::Vacant(e) => {
                e.insert(id);
            }
            Entry::Occupied(e) if *e.get() == id => {}
            Entry::Occupied(e) => {
                let held = e.remove();
                self.many.insert(h, vec![held.min(id), held.max(id)]);
            }
        }
    }

    fn remove(&mut self, value: &str, id: i64) {
        let h = value_hash(value);
        if let Some(ids) = self.many.get_mut(&h) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.many.remove(&h);
            }
        } else if self.one.get(&h) == Some(&id) {
            self.one.remove(&h);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.one.is_empty() && self.many.is_empty()
    }
}

/// The state file, open for appending.
struct Log {
    path: PathBuf,
    file: File,
    lines: u64,
    /// Why a write failed: the file no longer follows the store, so every later write is
    /// refused (the request answered 1002) rather than logged after a gap.
    broken: Option<String>,
}

/// The state file, private (it holds phones and e-mails): created 0600.
fn state_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.create(true).read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Open and lock the state file at `path`. A simulator compacting the file renames a new one
/// over the path and lets go of the old: whoever got the lock on the old one must open the
/// path again, or it would write to a file nobody will read.
fn open_locked(path: &Path) -> io::Result<File> {
    loop {
        let file = state_options().open(path)?;
        lock_within(&file, path, LOCK_WAIT)?;
        if same_file(&file, path)? {
            return Ok(file);
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
    Ok((open.dev(), open.ino()) == (named.dev(), named.ino()))
}

#[cfg(not(unix))]
fn same_file(_: &File, _: &Path) -> io::Result<bool> {
    Ok(true)
}

/// How long opening a state file waits for a simulator that is shutting down to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn lock_within(file: &File, path: &Path, wait: std::time::Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other(format!(
                    "{} is in use by another simulator: stop it, or give this one another state file",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str)
}

impl Store {
    /// `None`: in memory. A path: created if missing, kept between runs; one simulator
    /// process at a time (the file is locked).
    pub fn open(path: Option<&Path>) -> io::Result<Store> {
        let mut inner = Inner::default();
        if let Some(path) = path {
            let file = open_locked(path)?;
            let lines = inner.replay(&file)?;
            let mut log = Log {
                path: path.to_path_buf(),
                file,
                lines,
                broken: None,
            };
            let live = inner.customers.len() as u64 + inner.tag_names.len() as u64;
            if log.lines > 2 * live + 1000 {
                log = inner.compact(log)?;
            }
            inner.log = Some(log);
        }
        Ok(Store {
            inner: Mutex::new(inner),
        })
    }

    /// From now on, ids are `start`, `start + 1`, … (above any id already held).
    pub fn use_sequential_ids(&self, start: i64) {
        let mut inner = self.inner.lock().expect("store lock");
        inner.last_id = inner.last_id.max(start - 1);
        inner.sequential = true;
    }

    /// Apply the records in order, as if one by one (a later record sees an earlier one's
    /// customer); returns each one's customer id. With a state file, the customers written
    /// are logged to it before the answer.
    pub fn upsert(
        &self,
        tenant_id: i64,
        mode: MergeMode,
        records: Vec<Incoming<'_>>,
    ) -> io::Result<Vec<i64>> {
        let mut inner = self.inner.lock().expect("store lock");
        if let Some(log) = &inner.log {
            // Nothing is applied that could not be logged.
            log.check()?;
        }
        let now = inner.now_created();
        let mut ids = Vec::with_capacity(records.len());
        let mut written = Vec::new();
        let mut new_tags = Vec::new();
        for rec in records {
            let id = match inner.holder(tenant_id, &rec.fields) {
                None => {
                    let id = inner.next_id();
                    let tags = inner.tag_ids_for(tenant_id, &rec.tags, &mut new_tags);
                    inner.insert(Stored {
                        id,
                        tenant: tenant_id,
                        fields: rec.fields,
                        tags,
                        created_at: now.clone(),
                        updated_at: now.clone(),
                    });
                    written.push(id);
                    id
                }
                Some(id) if mode == MergeMode::Keep => id,
                Some(id) => {
                    let tags = inner.tag_ids_for(tenant_id, &rec.tags, &mut new_tags);
                    let mut c = inner.remove(id);
                    if mode == MergeMode::Replace {
                        c.fields = rec.fields;
                        c.tags = tags;
                    } else {
                        let mut stored = c.fields.map();
                        let mut fields = rec.fields.map();
                        merge_custom_fields(&stored, &mut fields);
                        stored.extend(fields);
                        c.fields = Fields::new(&stored);
                        c.tags.extend(tags);
                        c.tags.sort_unstable();
                        c.tags.dedup();
                    }
                    c.updated_at = now.clone();
                    inner.insert(c);
                    written.push(id);
                    id
                }
            };
            ids.push(id);
        }
        if inner.log.is_some() {
            written.sort_unstable();
            written.dedup();
            let mut lines = Vec::new();
            for (id, name) in new_tags {
                push_line(
                    &mut lines,
                    &Line::Tag {
                        id,
                        tenant: tenant_id,
                        name,
                    },
                )?;
            }
            for id in &written {
                push_line(
                    &mut lines,
                    &Line::Customer(Stored::clone(&inner.customers[id])),
                )?;
            }
            inner.log.as_mut().expect("checked").append(&lines)?;
        }
        Ok(ids)
    }

    /// One page of customers as the query endpoint returns them, and its paging, in the
    /// store's order: `after` continues just past that id's position in the order,
    /// `before` ends just before it; `next` is the first id of the next page (null on the
    /// last), `previous` the first id of the page before (null on the first).
    pub fn query(&self, q: &QuerySpec) -> io::Result<(Vec<Value>, Paging)> {
        let inner = self.inner.lock().expect("store lock");
        let window = inner.window(q);
        let limit = q.limit.max(0) as usize;
        let page: Vec<&Stored> = match q.before {
            Some(before) => {
                let mut page: Vec<&Stored> = inner
                    .preceding(q, window, Some(before))
                    .take(limit)
                    .collect();
                page.reverse();
                page
            }
            None => inner.following(q, window, q.after).take(limit).collect(),
        };
        let mut paging = Paging::default();
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            paging.before = Some(first.id);
            paging.after = Some(last.id);
            paging.next = inner
                .following(q, window, Some(last.id))
                .next()
                .map(|c| c.id);
            paging.previous = inner
                .preceding(q, window, Some(first.id))
                .take(limit)
                .last()
                .map(|c| c.id);
        }
        let list = page.into_iter().map(|c| inner.shown(c)).collect();
        Ok((list, paging))
    }

    /// From now on, a query's `end_time` is inside its window.
    pub fn use_inclusive_end(&self) {
        self.inner.lock().expect("store lock").inclusive_end = true;
    }

    /// From now on, queries page in `order`; `seed` fixes the `shuffled` one.
    pub fn use_order(&self, order: Order, seed: u64) {
        let mut inner = self.inner.lock().expect("store lock");
        inner.order = match order {
            Order::Asc => Sequence::Asc,
            Order::Desc => Sequence::Desc,
            Order::Shuffled => {
                let mut index = ShuffleIndex::new(seed);
                for id in inner.customers.keys() {
                    index.insert(*id);
                }
                Sequence::Shuffled(index)
            }
        };
    }

    /// Create these customers of `tenant_id` (fields and `created_at`, in creation order),
    /// but only into a store that holds no customer yet, so that a simulator restarted on
    /// its state file does not seed twice: whether it did. With a state file the lines are
    /// written a few MiB at a time, not one write per customer.
    pub fn seed(
        &self,
        tenant_id: i64,
        customers: impl IntoIterator<Item = (Map<String, Value>, String)>,
    ) -> io::Result<bool> {
        const CHUNK: usize = 4 << 20;
        let mut inner = self.inner.lock().expect("store lock");
        if !inner.customers.is_empty() {
            return Ok(false);
        }
        if let Some(log) = &inner.log {
            log.check()?;
        }
        let mut lines = Vec::new();
        for (fields, created_at) in customers {
            let created_at = Stamp::from(created_at);
            // Ids ascend with creation times (see `created`): so must the seeded times.
            if inner.created.last().is_some_and(|(t, _)| *t > created_at) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "customers to seed must come in creation order",
                ));
            }
            let line = Line::Customer(Stored {
                id: inner.next_id(),
                tenant: tenant_id,
                fields: Fields::new(&fields),
                tags: TagIds::new(),
                updated_at: created_at.clone(),
                created_at,
            });
            if inner.log.is_some() {
                push_line(&mut lines, &line)?;
            }
            let Line::Customer(c) = line else {
                unreachable!("built as a customer")
            };
            inner.insert(c);
            if lines.len() >= CHUNK {
                inner
                    .log
                    .as_mut()
                    .expect("lines only with a log")
                    .append(&lines)?;
                lines.clear();
            }
        }
        if !lines.is_empty() {
            inner
                .log
                .as_mut()
                .expect("lines only with a log")
                .append(&lines)?;
        }
        Ok(true)
    }

    /// Change a stored customer behind the API's back (for tests: what `cdpjob verify` must
    /// notice). `patch` holds batch_create names: a value replaces the field, null removes
    /// it, `tagStr` replaces the tags. The customer as the query endpoint now shows it; none
    /// when the tenant has no customer `id`.
    pub fn patch(
        &self,
        tenant_id: i64,
        id: i64,
        patch: &Map<String, Value>,
    ) -> io::Result<Option<Value>> {
        let mut inner = self.inner.lock().expect("store lock");
        if inner
            .customers
            .get(&id)
            .is_none_or(|c| c.tenant != tenant_id)
        {
            return Ok(None);
        }
        if let Some(log) = &inner.log {
            log.check()?;
        }
        let mut new_tags = Vec::new();
        // Out and back in: its match keys may change.
        let mut c = inner.remove(id);
        let mut fields = c.fields.map();
        for (key, value) in patch {
            match (key.as_str(), value) {
                ("tagStr", v) => {
                    let names: Vec<&str> = v
                        .as_str()
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .collect();
                    c.tags = inner.tag_ids_for(tenant_id, &names, &mut new_tags);
                }
                (_, Value::Null) => {
                    fields.remove(key);
                }
                (_, v) => {
                    fields.insert(key.clone(), v.clone());
                }
            }
        }
        c.fields = Fields::new(&fields);
        c.updated_at = inner.now_created();
        inner.insert(c);
        if inner.log.is_some() {
            let mut lines = Vec::new();
            for (tag, name) in new_tags {
                push_line(
                    &mut lines,
                    &Line::Tag {
                        id: tag,
                        tenant: tenant_id,
                        name,
                    },
                )?;
            }
            push_line(
                &mut lines,
                &Line::Customer(Stored::clone(&inner.customers[&id])),
            )?;
            inner.log.as_mut().expect("checked").append(&lines)?;
        }
        Ok(Some(inner.shown(&inner.customers[&id])))
    }

    /// Every customer of a tenant (for tests and demos), in id order.
    pub fn all(&self, tenant_id: i64) -> io::Result<Vec<Value>> {
        let inner = self.inner.lock().expect("store lock");
        Ok(inner
            .customers
            .values()
            .filter(|c| c.tenant == tenant_id)
            .map(|c| inner.shown(c))
            .collect())
    }
}

/// Update (type 1) adds onto old data: a record's `customize_field` keys go onto the
/// stored ones, key by key, rather than replacing the whole text (the vendor does not say;
/// this is what `verify` and `plan --remote` expect of an update, SPEC §12 R15).
fn merge_custom_fields(stored: &Map<String, Value>, incoming: &mut Map<String, Value>) {
    let object = |fields: &Map<String, Value>| {
        text(fields, "customize_field")
            .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
    };
    if let (Some(mut merged), Some(new)) = (object(stored), object(incoming)) {
        merged.extend(new);
        incoming.insert(
            "customize_field".into(),
            Value::String(Value::Object(merged).to_string()),
        );
    }
}

fn push_line(buf: &mut Vec<u8>, line: &Line) -> io::Result<()> {
    serde_json::to_writer(&mut *buf, line).map_err(io::Error::other)?;
    buf.push(b'\n');
    Ok(())
}

impl Log {
    fn check(&self) -> io::Result<()> {
        match &self.broken {
            Some(why) => Err(io::Error::other(format!(
                "the simulator's state file {} could not be written ({why}); restart the simulator",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        self.check()?;
        // One write: a simulator killed mid-way leaves at most a torn last line, which the
        // replay drops. A failed write is cut back, and the log refuses any more.
        let len = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(lines) {
            let _ = self.file.set_len(len);
            self.broken = Some(e.to_string());
            return Err(e);
        }
        self.lines += lines.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(())
    }
}

impl Inner {
    /// Read the state file's lines; a torn last line (a simulator killed while writing) is
    /// cut off. Returns the number of lines kept.
    fn replay(&mut self, file: &File) -> io::Result<u64> {
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let (mut lines, mut good) = (0u64, 0u64);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            let parsed = match line.last() {
                Some(b'\n') => serde_json::from_slice::<Line>(&line).ok(),
                _ => None,
            };
            match parsed {
                Some(Line::Tag { id, tenant, name }) => {
                    self.last_tag = self.last_tag.max(id);
                    self.tag_ids
                        .entry(tenant)
                        .or_default()
                        .insert(name.clone(), id);
                    self.tag_names.insert(id, name);
                }
                Some(Line::Customer(c)) => {
                    self.last_id = self.last_id.max(c.id);
                    if self.customers.contains_key(&c.id) {
                        self.remove(c.id);
                    }
                    self.insert(c);
                }
                None => {
                    let mut rest = Vec::new();
                    io::Read::read_to_end(&mut reader, &mut rest)?;
                    if !rest.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the simulator state is corrupt at line {}", lines + 1),
                        ));
                    }
                    file.set_len(good)?;
                    break;
                }
            }
            lines += 1;
            good += n as u64;
        }
        Ok(lines)
    }

    /// Rewrite the state file with one line per tag and customer (replacing it atomically).
    fn compact(&self, old: Log) -> io::Result<Log> {
        let tmp = old.path.with_extension("compacting");
        let mut out = io::BufWriter::new(
            state_options()
                .append(false)
                .write(true)
                .truncate(true)
                .open(&tmp)?,
        );
        let mut lines = 0;
        let mut tags: Vec<(&i64, &String)> = self.tag_names.iter().collect();
        tags.sort();
        let tenant_of: HashMap<i64, i64> = self
            .tag_ids
            .iter()
            .flat_map(|(t, m)| m.values().map(move |id| (*id, *t)))
            .collect();
        let mut buf = Vec::new();
        for (id, name) in tags {
            let line = Line::Tag {
                id: *id,
                tenant: tenant_of[id],
                name: name.clone(),
            };
            push_line(&mut buf, &line)?;
            lines += 1;
        }
        out.write_all(&buf)?;
        for c in self.customers.values() {
            buf.clear();
            push_line(&mut buf, &Line::Customer(Stored::clone(c)))?;
            out.write_all(&buf)?;
            lines += 1;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        drop(file);
        // The new file is locked before it replaces the old one, which holds its lock until
        // it is dropped here.
        let file = OpenOptions::new().read(true).append(true).open(&tmp)?;
        file.try_lock()
            .map_err(|_| io::Error::other("cannot lock the compacted state"))?;
        std::fs::rename(&tmp, &old.path)?;
        let path = old.path.clone();
        drop(old);
        Ok(Log {
            path,
            file,
            lines,
            broken: None,
        })
    }

    /// The creation time of customers written now: the clock, but never before the last
    /// customer's (ids and creation times ascend together; see `created`).
    fn now_created(&self) -> Stamp {
        let now = now_text();
        match self.created.last() {
            Some((last, _)) if last.as_str() > now.as_str() => last.clone(),
            _ => Stamp::from(now),
        }
    }

    fn next_id(&mut self) -> i64 {
        let candidate = if self.sequential {
            0
        } else {
            (jiff::Timestamp::now().as_millisecond() - ID_EPOCH_MS) << 22
        };
        self.last_id = candidate.max(self.last_id + 1);
        self.last_id
    }

    /// The customer an incoming record matches: the lowest id holding its `whats_app_phone`,
    /// else its `sms_phone`, else its `email`.
    fn holder(&self, tenant: i64, fields: &Fields) -> Option<i64> {
        let keys = self.keys.get(&tenant)?;
        keys.iter().enumerate().find_map(|(i, index)| {
            let v = fields.match_key(i)?;
            index.lowest(v, |id| {
                self.customers
                    .get(&id)
                    .is_some_and(|c| c.fields.match_key(i) == Some(v))
            })
        })
    }

    /// Ids of the tags named (created on first use, reported in `created`), ascending.
    fn tag_ids_for(
        &mut self,
        tenant: i64,
        names: &[&str],
        created: &mut Vec<(i64, String)>,
    ) -> TagIds {
        let mut ids = TagIds::with_capacity(names.len());
        for name in names {
            let by_name = self.tag_ids.entry(tenant).or_default();
            let id = match by_name.get(*name) {
                Some(id) => *id,
                None => {
                    self.last_tag += 1;
                    let id = self.last_tag;
                    by_name.insert(name.to_string(), id);
                    self.tag_names.insert(id, name.to_string());
                    created.push((id, name.to_string()));
                    id
                }
            };
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Store a customer (not held now) and index its keys.
    fn insert(&mut self, c: Stored) {
        let keys = self.keys.entry(c.tenant).or_default();
        for (i, index) in keys.iter_mut().enumerate() {
            if let Some(v) = c.fields.match_key(i) {
                index.add(v, c.id);
            }
        }
        if self.created.last().is_none_or(|(t, _)| *t < c.created_at) {
            self.created.push((c.created_at.clone(), c.id));
        }
        if let Sequence::Shuffled(index) = &mut self.order {
            index.insert(c.id);
        }
        self.customers.insert(c.id, Box::new(c));
    }

    /// Take a customer out, and out of the key index (its keys may change).
    fn remove(&mut self, id: i64) -> Stored {
        let c = *self
            .customers
            .remove(&id)
            .expect("a matched customer is held");
        if let Some(keys) = self.keys.get_mut(&c.tenant) {
            for (i, index) in keys.iter_mut().enumerate() {
                if let Some(v) = c.fields.match_key(i) {
                    index.remove(v, id);
                }
            }
        }
        if let Sequence::Shuffled(index) = &mut self.order {
            index.remove(id);
        }
        c
    }

    /// The matching customers in the order, from just after `after`'s position (from the
    /// first without).
    fn following<'a>(
        &'a self,
        q: &'a QuerySpec,
        window: (i64, i64),
        after: Option<i64>,
    ) -> Box<dyn Iterator<Item = &'a Stored> + 'a> {
        let walk: Box<dyn Iterator<Item = &'a Stored> + 'a> = match &self.order {
            Sequence::Asc => Box::new(self.above(window, after)),
            Sequence::Desc => Box::new(self.below(window, after).rev()),
            Sequence::Shuffled(index) => Box::new(self.in_window(window, index.after(after))),
        };
        Box::new(walk.filter(move |c| self.matches(c, q)))
    }

    /// The matching customers before `before`'s position (all without), walking back
    /// towards the first.
    fn preceding<'a>(
        &'a self,
        q: &'a QuerySpec,
        window: (i64, i64),
        before: Option<i64>,
    ) -> Box<dyn Iterator<Item = &'a Stored> + 'a> {
        let walk: Box<dyn Iterator<Item = &'a Stored> + 'a> = match &self.order {
            Sequence::Asc => Box::new(self.below(window, before).rev()),
            Sequence::Desc => Box::new(self.above(window, before)),
            Sequence::Shuffled(index) => {
                Box::new(self.in_window(window, index.before(before).rev()))
            }
        };
        Box::new(walk.filter(move |c| self.matches(c, q)))
    }

    /// The customers with ids in the window `lo..=hi` and above `id` (all without), by id.
    fn above(
        &self,
        (lo, hi): (i64, i64),
        id: Option<i64>,
    ) -> impl DoubleEndedIterator<Item = &Stored> {
        let lo = match id {
            None => Some(lo),
            Some(id) => id.checked_add(1).map(|above| above.max(lo)),
        };
        self.ids_between(lo, Some(hi))
    }

    /// The customers with ids in the window `lo..=hi` and below `id` (all without), by id.
    fn below(
        &self,
        (lo, hi): (i64, i64),
        id: Option<i64>,
    ) -> impl DoubleEndedIterator<Item = &Stored> {
        let hi = match id {
            None => Some(hi),
            Some(id) => id.checked_sub(1).map(|below| below.min(hi)),
        };
        self.ids_between(Some(lo), hi)
    }

    /// The customers with ids in `lo..=hi`, by id; none when an end is missing (past the
    /// ids there are) or `lo` is above `hi`.
    fn ids_between(
        &self,
        lo: Option<i64>,
        hi: Option<i64>,
    ) -> impl DoubleEndedIterator<Item = &Stored> {
        let range = match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => self.customers.range(lo..=hi),
            _ => self.customers.range(0..0),
        };
        range.map(|(_, c)| &**c)
    }

    /// The customers of these ids that fall in the window `lo..=hi`.
    fn in_window<'a>(
        &'a self,
        (lo, hi): (i64, i64),
        ids: impl Iterator<Item = i64> + 'a,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        ids.filter(move |id| (lo..=hi).contains(id))
            .filter_map(|id| self.customers.get(&id).map(|c| &**c))
    }

    /// The ids a query's time window allows, `lo..=hi` (creation times ascend with the id;
    /// an empty window has `lo > hi`).
    fn window(&self, q: &QuerySpec) -> (i64, i64) {
        let first_at_or_after = |t: &str| {
            let i = self.created.partition_point(|(at, _)| at.as_str() < t);
            self.created.get(i).map(|(_, id)| *id)
        };
        let first_after = |t: &str| {
            let i = self.created.partition_point(|(at, _)| at.as_str() <= t);
            self.created.get(i).map(|(_, id)| *id)
        };
        let lo = match q.start_time.as_deref().map(first_at_or_after) {
            None => i64::MIN,
            Some(Some(id)) => id,
            Some(None) => return (1, 0),
        };
        let end = if self.inclusive_end {
            q.end_time.as_deref().and_then(first_after)
        } else {
            q.end_time.as_deref().and_then(first_at_or_after)
        };
        let hi = match end {
            Some(id) => id - 1,
            None => i64::MAX,
        };
        (lo, hi)
    }

    fn matches(&self, c: &Stored, q: &QuerySpec) -> bool {
        let key = |name: &str| {
            let i = MATCH_KEYS
                .iter()
                .position(|k| *k == name)
                .expect("a match key");
            c.fields.match_key(i)
        };
        let equal = |name: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| key(name) == Some(w))
        };
        // The other fields are parsed only for a filter that needs them, after the cheap ones.
        let others = || {
            (q.viber_phone.is_none() && q.name.is_none()) || {
                let fields = c.fields.map();
                q.viber_phone
                    .as_deref()
                    .is_none_or(|w| text(&fields, "viber_phone") == Some(w))
                    && q.name.as_deref().is_none_or(|n| {
                        // The API's name filter: a part of the full name (ASCII case
                        // ignored), or the whole first or last name.
                        text(&fields, "full_name").is_some_and(|f| {
                            f.to_ascii_lowercase().contains(&n.to_ascii_lowercase())
                        }) || text(&fields, "first_name") == Some(n)
                            || text(&fields, "last_name") == Some(n)
                    })
            }
        };
        c.tenant == q.tenant_id
            && equal("sms_phone", &q.sms_phone)
            && equal("whats_app_phone", &q.whats_app_phone)
            && equal("email", &q.email)
            // Everything the simulator holds came through the API: source type 6.
            && q.source_type.is_none_or(|s| s == 6)
            && (q.tag_ids.is_empty()
                || if q.tags_all {
                    q.tag_ids.iter().all(|t| c.tags.binary_search(t).is_ok())
                } else {
                    q.tag_ids.iter().any(|t| c.tags.binary_search(t).is_ok())
                })
            && others()
    }

    /// A customer as the query endpoint shows it: exactly the fields CDP-API §5 lists, with
    /// its names (`whatsApp_phone`). What batch_create takes but §5 does not list — `zalo`,
    /// `address`, `time_zone`, `belong_seat_user` — is stored and never shown, as a client
    /// must expect of the real API (SPEC §12 R14).
    fn shown(&self, c: &Stored) -> Value {
        let mut fields = c.fields.map();
        let mut get = |k: &str| fields.remove(k).unwrap_or(Value::Null);
        let tags: Vec<Value> = c
            .tags
            .iter()
            .map(|id| json!({"id": id, "tag_name": self.tag_names.get(id).cloned().unwrap_or_default()}))
            .collect();
        json!({
            "id": c.id,
            "first_name": get("first_name"),
            "last_name": get("last_name"),
            "full_name": get("full_name"),
            "sms_phone": get("sms_phone"),
            "whatsApp_phone": get("whats_app_phone"),
            "viber_phone": get("viber_phone"),
            "line": get("line"),
            "messenger": get("messenger"),
            "instagram": get("instagram"),
            "email": get("email"),
            "country": get("country"),
            "birthday": get("birthday"),
            "remark": get("remark"),
            "source_type": 6,
            "source_channel_key": "",
            "gender": get("gender"),
            "created_at": c.created_at.as_str().replace(' ', "T"),
            "updated_at": c.updated_at.as_str().replace(' ', "T"),
            "status": 1,
            "tags": tags,
            "whatApp_subscribe": 1,
            "sms_subscribe": 1,
            "customize_field": get("customize_field"),
            "tenant_id": c.tenant,
            "weight": get("weight"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Incoming<'static> {
        Incoming {
            fields: Fields::new(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(*v)))
                    .collect(),
            ),
            tags: Vec::new(),
        }
    }

    fn tagged(name: &str, phone: &str, tags: &[&'static str]) -> Incoming<'static> {
        let mut r = rec(&[("full_name", name), ("whats_app_phone", phone)]);
        r.tags = tags.to_vec();
        r
    }

    /// Write one record; its customer's id.
    fn put(store: &Store, tenant: i64, mode: MergeMode, record: Incoming<'_>) -> i64 {
        store.upsert(tenant, mode, vec![record]).unwrap()[0]
    }

    fn query(store: &Store, f: impl FnOnce(&mut QuerySpec)) -> (Vec<i64>, Paging) {
        let mut q = QuerySpec {
            tenant_id: 1,
            limit: 50,
            ..QuerySpec::default()
        };
        f(&mut q);
        let (list, paging) = store.query(&q).unwrap();
        (
            list.iter().map(|c| c["id"].as_i64().unwrap()).collect(),
            paging,
        )
    }

    #[test]
    fn a_key_index_finds_the_lowest_id_that_really_holds_the_value() {
        let mut index = KeyIndex::default();
        index.add("x", 5);
        index.add("x", 3);
        index.add("x", 3);
        assert_eq!(index.lowest("x", |_| true), Some(3));
        // As when id 3's value only shares the hash of "x": it is passed over.
        assert_eq!(index.lowest("x", |id| id != 3), Some(5));
        assert_eq!(index.lowest("y", |_| true), None);
        index.remove("x", 3);
        assert_eq!(index.lowest("x", |_| true), Some(5));
        index.remove("x", 5);
        assert!(index.is_empty());
        // One id, then three (kept ascending), then back down to none.
        index.add("y", 7);
        index.remove("y", 8);
        assert_eq!(index.lowest("y", |_| true), Some(7));
        index.add("y", 9);
        index.add("y", 2);
        index.add("y", 9);
        assert_eq!(index.many[&value_hash("y")], vec![2, 7, 9]);
        assert!(!index.one.contains_key(&value_hash("y")));
        assert_eq!(index.lowest("y", |id| id > 2), Some(7));
        for id in [7, 2, 9] {
            index.remove("y", id);
        }
        assert!(index.is_empty());
    }

    /// Every field filter of a query, now that the fields are held as text: the match keys
    /// from beside it, the others parsed back.
    #[test]
    fn each_field_filter_finds_its_customer() {
        let store = Store::open(None).unwrap();
        let a = put(
            &store,
            1,
            MergeMode::Update,
            rec(&[
                ("full_name", "Ann Lee"),
                ("first_name", "Ann"),
                ("last_name", "Lee"),
                ("whats_app_phone", "111"),
                ("sms_phone", "211"),
                ("email", "ann@x.io"),
                ("viber_phone", "311"),
            ]),
        );
        let b = put(
            &store,
            1,
            MergeMode::Update,
            rec(&[("full_name", "Bo Lee"), ("email", "bo@x.io")]),
        );
        let found = |f: fn(&mut QuerySpec)| query(&store, f).0;
        assert_eq!(found(|q| q.whats_app_phone = Some("111".into())), [a]);
        assert_eq!(found(|q| q.sms_phone = Some("211".into())), [a]);
        assert_eq!(found(|q| q.email = Some("bo@x.io".into())), [b]);
        assert_eq!(found(|q| q.viber_phone = Some("311".into())), [a]);
        assert!(found(|q| q.viber_phone = Some("111".into())).is_empty());
        assert_eq!(found(|q| q.name = Some("lee".into())), [a, b]);
        assert_eq!(found(|q| q.name = Some("Ann".into())), [a]);
        assert_eq!(found(|q| q.name = Some("Lee".into())), [a, b]);
        assert_eq!(
            found(|q| {
                q.name = Some("lee".into());
                q.email = Some("ann@x.io".into());
            }),
            [a]
        );
        assert!(
            found(|q| {
                q.viber_phone = Some("311".into());
                q.sms_phone = Some("999".into());
            })
            .is_empty()
        );
    }

    #[test]
    fn a_reopened_state_file_holds_customers_tags_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let ids = {
            let store = Store::open(Some(&path)).unwrap();
            store.use_sequential_ids(10);
            store
                .upsert(
                    1,
                    MergeMode::Update,
                    vec![
                        tagged("A", "111", &["vip", "new"]),
                        tagged("B", "222", &["new"]),
                    ],
                )
                .unwrap()
        };
        assert_eq!(ids, vec![10, 11]);
        // While one simulator holds the file, another may not open it.
        let store = Store::open(Some(&path)).unwrap();
        let file = OpenOptions::new().read(true).open(&path).unwrap();
        let second = lock_within(&file, &path, std::time::Duration::ZERO).unwrap_err();
        assert!(
            second.to_string().contains("in use by another simulator"),
            "{second}"
        );
        // Update merges into A: fields kept and added, tags added.
        let again = put(&store, 1, MergeMode::Update, {
            let mut r = rec(&[
                ("full_name", "A"),
                ("whats_app_phone", "111"),
                ("email", "a@x.io"),
            ]);
            r.tags = vec!["late"];
            r
        });
        assert_eq!(again, 10);
        drop(store);
        let store = Store::open(Some(&path)).unwrap();
        let all = store.all(1).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["email"], "a@x.io");
        let names: Vec<&str> = all[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["vip", "new", "late"]);
        // New ids continue above the stored ones; tag ids are not reused.
        let c = put(&store, 1, MergeMode::Update, tagged("C", "333", &["other"]));
        assert!(c > 11);
        let tag_ids: Vec<i64> = store.all(1).unwrap()[2]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        assert_eq!(tag_ids, vec![4]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_superseded_log_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let store = Store::open(Some(&path)).unwrap();
            put(&store, 1, MergeMode::Update, tagged("A", "111", &["t"]));
            for i in 0..1500 {
                let name = format!("A{i}");
                put(&store, 1, MergeMode::Replace, tagged(&name, "111", &["t"]));
            }
        }
        // A simulator killed in the middle of a line.
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1 + 1501);
        text.push_str("{\"t\":\"customer\",\"id\":");
        std::fs::write(&path, text).unwrap();
        let store = Store::open(Some(&path)).unwrap();
        let all = store.all(1).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["full_name"], "A1499");
        assert_eq!(all[0]["tags"][0]["tag_name"], "t");
        // Compacted on open: one line for the tag, one for the customer.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        put(&store, 1, MergeMode::Update, tagged("B", "222", &[]));
        drop(store);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert_eq!(Store::open(Some(&path)).unwrap().all(1).unwrap().len(), 2);
    }

    /// Two simulators wait for one state file; the first to get it compacts it (a new file
    /// renamed over the path, the old one let go). The second must not take the old one.
    #[test]
    fn a_simulator_waiting_for_a_compacted_state_file_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let store = Store::open(Some(&path)).unwrap();
            for i in 0..1500 {
                let name = format!("A{i}");
                put(&store, 1, MergeMode::Replace, tagged(&name, "111", &[]));
            }
        }
        let holder = OpenOptions::new().read(true).open(&path).unwrap();
        holder.lock().unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(Some(&path)).unwrap())
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(holder);
        let (first, second) = loop {
            if let Some(i) = waiting.iter().position(|t| t.is_finished()) {
                let mut waiting = waiting;
                let first = waiting.remove(i).join().unwrap();
                break (first, waiting.pop().unwrap());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        first
            .upsert(1, MergeMode::Update, vec![tagged("X", "999", &[])])
            .unwrap();
        drop(first);
        let second = second.join().unwrap();
        let names: Vec<String> = second
            .all(1)
            .unwrap()
            .iter()
            .map(|c| c["full_name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["A1499", "X"]);
    }

    #[test]
    fn a_failed_state_write_is_cut_back_and_later_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let store = Store::open(Some(&path)).unwrap();
        put(&store, 1, MergeMode::Update, tagged("A", "111", &[]));
        let before = std::fs::read(&path).unwrap();
        // A handle that cannot write, as a full disk would refuse.
        store.inner.lock().unwrap().log.as_mut().unwrap().file = File::open(&path).unwrap();
        assert!(
            store
                .upsert(1, MergeMode::Update, vec![tagged("B", "222", &[])])
                .is_err()
        );
        let refused = store
            .upsert(1, MergeMode::Update, vec![tagged("C", "333", &[])])
            .unwrap_err();
        assert!(
            refused.to_string().contains("restart the simulator"),
            "{refused}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Nothing after the refusal was applied.
        assert_eq!(store.all(1).unwrap().len(), 2);
    }

    #[test]
    fn a_time_window_is_a_range_of_ids_and_paging_stays_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        // Customers 1..=9 created in three seconds, three in each.
        let lines: String = (1..=9)
            .map(|id| {
                let at = format!("2026-01-01 00:00:0{}", (id - 1) / 3);
                format!(
                    "{{\"t\":\"customer\",\"id\":{id},\"tenant\":1,\"fields\":{{\"full_name\":\"C{id}\"}},\"tags\":[],\"created_at\":\"{at}\",\"updated_at\":\"{at}\"}}\n"
                )
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        let store = Store::open(Some(&path)).unwrap();
        let window = |q: &mut QuerySpec| {
            q.start_time = Some("2026-01-01 00:00:01".into());
            q.end_time = Some("2026-01-01 00:00:02".into());
        };
        assert_eq!(query(&store, window).0, vec![4, 5, 6]);
        let (page, paging) = query(&store, |q| {
            window(q);
            q.limit = 2;
        });
        assert_eq!(page, vec![4, 5]);
        assert_eq!((paging.next, paging.previous), (Some(6), None));
        let (page, paging) = query(&store, |q| {
            window(q);
            q.limit = 2;
            q.after = Some(5);
        });
        assert_eq!(page, vec![6]);
        assert_eq!((paging.next, paging.previous), (None, Some(4)));
        let (page, _) = query(&store, |q| {
            window(q);
            q.before = Some(6);
        });
        assert_eq!(page, vec![4, 5]);
        // Windows before, between and after the customers.
        let times = |s: &str, e: &str| {
            let (s, e) = (s.to_string(), e.to_string());
            query(&store, move |q| {
                q.start_time = Some(s);
                q.end_time = Some(e);
            })
            .0
        };
        assert_eq!(
            times("2025-01-01 00:00:00", "2026-01-01 00:00:00"),
            Vec::<i64>::new()
        );
        assert_eq!(
            times("2026-01-01 00:00:02", "2027-01-01 00:00:00"),
            vec![7, 8, 9]
        );
        assert_eq!(
            times("2026-01-01 00:00:03", "2027-01-01 00:00:00"),
            Vec::<i64>::new()
        );
        assert_eq!(
            query(&store, |q| q.start_time =
                Some("2026-01-01 00:00:01".into()))
            .0
            .len(),
            6
        );
        assert_eq!(
            query(&store, |q| q.after = Some(i64::MAX)).0,
            Vec::<i64>::new()
        );
        assert_eq!(
            query(&store, |q| q.before = Some(i64::MIN)).0,
            Vec::<i64>::new()
        );
        // Name: part of the full name, ASCII case ignored.
        assert_eq!(query(&store, |q| q.name = Some("c7".into())).0, vec![7]);
    }

    /// Page through a query to the end (`next` null), checking each page's paging and that
    /// `before` gives back the page before; the ids in the order they came.
    fn page_all(store: &Store, f: impl Fn(&mut QuerySpec)) -> Vec<i64> {
        let mut seen: Vec<i64> = Vec::new();
        let mut after = None;
        let mut last_page: Option<Vec<i64>> = None;
        loop {
            let (page, paging) = query(store, |q| {
                f(q);
                q.limit = 4;
                q.after = after;
            });
            assert_eq!(paging.before, page.first().copied());
            assert_eq!(paging.after, page.last().copied());
            if let Some(prev) = &last_page {
                assert_eq!(paging.previous, prev.first().copied());
                let (back, _) = query(store, |q| {
                    f(q);
                    q.limit = 4;
                    q.before = paging.before;
                });
                assert_eq!(&back, prev, "before gives back the page before");
            } else {
                assert_eq!(paging.previous, None);
            }
            seen.extend(&page);
            match paging.next {
                None => break,
                Some(next) => {
                    let (ahead, _) = query(store, |q| {
                        f(q);
                        q.limit = 1;
                        q.after = paging.after;
                    });
                    assert_eq!(ahead, vec![next], "next is the next page's first id");
                }
            }
            after = paging.after;
            last_page = Some(page);
        }
        seen
    }

    #[test]
    fn every_order_pages_through_a_window_once_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        // Customers 1..=30, three created each second.
        let lines: String = (1..=30)
            .map(|id| {
                let at = format!("2026-01-01 00:00:{:02}", (id - 1) / 3);
                format!(
                    "{{\"t\":\"customer\",\"id\":{id},\"tenant\":1,\"fields\":{{\"full_name\":\"C{}\"}},\"tags\":[],\"created_at\":\"{at}\",\"updated_at\":\"{at}\"}}\n",
                    if id % 2 == 0 { "even" } else { "odd" }
                )
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        let store = Store::open(Some(&path)).unwrap();
        // Seconds 2..8 (ids 7..=24), even ones by name.
        let filter = |q: &mut QuerySpec| {
            q.start_time = Some("2026-01-01 00:00:02".into());
            q.end_time = Some("2026-01-01 00:00:08".into());
            q.name = Some("even".into());
        };
        let expected: Vec<i64> = (7..=24).filter(|id| id % 2 == 0).collect();
        let mut shuffled = Vec::new();
        for order in [Order::Asc, Order::Desc, Order::Shuffled] {
            store.use_order(order, 3);
            let seen = page_all(&store, filter);
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, expected, "{order}: each once");
            let all = page_all(&store, |_| {});
            assert_eq!(all.len(), 30, "{order}");
            match order {
                Order::Asc => assert_eq!(seen, expected),
                Order::Desc => assert_eq!(seen, expected.iter().rev().copied().collect::<Vec<_>>()),
                Order::Shuffled => {
                    assert!(
                        all.windows(2).any(|w| w[0] < w[1]) && all.windows(2).any(|w| w[0] > w[1])
                    );
                    shuffled = all;
                }
            }
        }
        // A simulator restarted on its state file with the same seed pages the same way,
        // and a customer added later takes its place in that order.
        drop(store);
        let store = Store::open(Some(&path)).unwrap();
        store.use_order(Order::Shuffled, 3);
        assert_eq!(page_all(&store, |_| {}), shuffled);
        let late = put(&store, 1, MergeMode::Update, tagged("late", "999", &[]));
        let with_late = page_all(&store, |_| {});
        assert_eq!(with_late.len(), 31);
        assert_eq!(
            with_late
                .iter()
                .filter(|id| **id != late)
                .copied()
                .collect::<Vec<_>>(),
            shuffled
        );
        // Past either end of the ids: nothing, in any order.
        for order in [Order::Asc, Order::Desc] {
            store.use_order(order, 3);
            let (end, start) = match order {
                Order::Asc => (i64::MAX, i64::MIN),
                _ => (i64::MIN, i64::MAX),
            };
            assert_eq!(query(&store, |q| q.after = Some(end)).0, Vec::<i64>::new());
            assert_eq!(
                query(&store, |q| q.before = Some(start)).0,
                Vec::<i64>::new()
            );
        }
    }

    #[test]
    fn seeding_fills_an_empty_state_once_and_windows_find_the_customers() {
        use crate::sim::seed::Seeding;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let seeding = Seeding::new(
            1_000,
            "2026-01-01 00:00:00..2026-01-11 00:00:00".parse().unwrap(),
        )
        .unwrap();
        {
            let store = Store::open(Some(&path)).unwrap();
            assert!(store.seed(1, seeding.customers(1)).unwrap());
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1_000
        );
        let store = Store::open(Some(&path)).unwrap();
        assert!(!store.seed(1, seeding.customers(1)).unwrap(), "seeded once");
        assert_eq!(store.all(1).unwrap().len(), 1_000);
        let half = |q: &mut QuerySpec| {
            q.start_time = Some("2026-01-01 00:00:00".into());
            q.end_time = Some("2026-01-06 00:00:00".into());
        };
        let first = page_all(&store, half);
        let rest = page_all(&store, |q| {
            q.start_time = Some("2026-01-06 00:00:00".into())
        });
        assert_eq!((first.len(), rest.len()), (500, 500));
        let all = store.all(1).unwrap();
        let created = |id: &i64| {
            all.iter().find(|c| c["id"] == *id).unwrap()["created_at"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(
            first
                .iter()
                .all(|id| created(id).as_str() < "2026-01-06T00:00:00")
        );
        assert!(
            rest.iter()
                .all(|id| created(id).as_str() >= "2026-01-06T00:00:00")
        );
        // Customers created later come after the seeded ones, and the window still holds.
        put(&store, 1, MergeMode::Update, tagged("new", "777", &[]));
        assert_eq!(page_all(&store, half).len(), 500);
        assert_eq!(page_all(&store, |_| {}).len(), 1_001);
    }

    #[test]
    fn an_update_merges_custom_fields_key_by_key_and_a_patch_changes_what_is_stored() {
        let store = Store::open(None).unwrap();
        let mut first = rec(&[
            ("full_name", "A"),
            ("whats_app_phone", "111"),
            ("customize_field", r#"{"a":"1","b":"2"}"#),
        ]);
        first.tags = vec!["vip"];
        let id = put(&store, 1, MergeMode::Update, first);
        let second = rec(&[
            ("full_name", "A"),
            ("whats_app_phone", "111"),
            ("customize_field", r#"{"b":"3"}"#),
        ]);
        assert_eq!(put(&store, 1, MergeMode::Update, second), id);
        let shown = &store.all(1).unwrap()[0];
        assert_eq!(shown["customize_field"], r#"{"a":"1","b":"3"}"#);
        assert!(shown.get("address").is_none() && shown.get("zalo").is_none());

        let patch = json!({"whats_app_phone": "222", "full_name": null, "tagStr": "x, y"});
        let shown = store
            .patch(1, id, patch.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(shown["whatsApp_phone"], "222");
        assert_eq!(shown["full_name"], Value::Null);
        let names: Vec<&str> = shown["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["x", "y"]);
        // The match keys follow the patch.
        assert_eq!(
            query(&store, |q| q.whats_app_phone = Some("222".into())).0,
            [id]
        );
        assert!(
            query(&store, |q| q.whats_app_phone = Some("111".into()))
                .0
                .is_empty()
        );
        assert_eq!(store.patch(1, id + 1, &Map::new()).unwrap(), None);
        assert_eq!(
            store.patch(2, id, &Map::new()).unwrap(),
            None,
            "another tenant's"
        );
    }

    #[test]
    fn matching_survives_a_reopen_and_follows_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let (a, b) = {
            let store = Store::open(Some(&path)).unwrap();
            let ids = store
                .upsert(
                    1,
                    MergeMode::Update,
                    vec![
                        rec(&[("full_name", "A"), ("whats_app_phone", "111")]),
                        rec(&[("full_name", "B"), ("email", "b@x.io")]),
                    ],
                )
                .unwrap();
            (ids[0], ids[1])
        };
        // A new process: the customers and their keys are read back from the state file.
        let store = Store::open(Some(&path)).unwrap();
        let again = put(
            &store,
            1,
            MergeMode::Update,
            rec(&[("full_name", "A2"), ("whats_app_phone", "111")]),
        );
        assert_eq!(again, a);
        // A gains an email, then a record matched by that email replaces A's phone 111 by
        // 333: 111 matches nobody any more (a new customer), 333 is A.
        put(
            &store,
            1,
            MergeMode::Update,
            rec(&[
                ("full_name", "A"),
                ("whats_app_phone", "111"),
                ("email", "a@x.io"),
            ]),
        );
        put(
            &store,
            1,
            MergeMode::Replace,
            rec(&[
                ("full_name", "A"),
                ("whats_app_phone", "333"),
                ("email", "a@x.io"),
            ]),
        );
        let by_111 = put(
            &store,
            1,
            MergeMode::Keep,
            rec(&[("full_name", "N"), ("whats_app_phone", "111")]),
        );
        assert!(by_111 != a && by_111 != b);
        let by_333 = put(
            &store,
            1,
            MergeMode::Keep,
            rec(&[("full_name", "?"), ("whats_app_phone", "333")]),
        );
        assert_eq!(by_333, a);
        let by_email = put(
            &store,
            1,
            MergeMode::Keep,
            rec(&[("full_name", "?"), ("email", "b@x.io")]),
        );
        assert_eq!(by_email, b);
        // Another tenant shares nothing.
        let other = put(
            &store,
            2,
            MergeMode::Update,
            rec(&[("full_name", "A"), ("whats_app_phone", "111")]),
        );
        assert_ne!(other, a);
    }
}
