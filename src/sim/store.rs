//! The simulator's customers, tags and their links in SQLite: an embedded database that stays
//! fast at a million customers and persists to a file (`--state`, or the in-process
//! simulator's state under the run root) so that an export after an import sees the import.

use std::path::Path;
use std::sync::Mutex;

use std::collections::HashMap;

use rusqlite::{Connection, params, params_from_iter};
use serde_json::{Map, Value, json};

/// Creates and queries customers; one connection behind a lock (the simulator serializes
/// writes anyway, as one batch is one transaction).
pub struct Store {
    conn: Mutex<Connection>,
    /// Tag ids by (tenant, name): tags are few and looked up for every customer.
    tag_ids: Mutex<std::collections::HashMap<(i64, String), i64>>,
    last_id: Mutex<i64>,
    sequential: std::sync::atomic::AtomicBool,
    /// (tenant, match key, hash of the value) → the lowest id of a customer holding it.
    /// Records are matched through this map rather than SQLite indexes on the contact
    /// columns: at a million customers each random-key index insert dirtied its own pages,
    /// and every commit copied them all (commit 0.3 → 3.9 ms a request). A hit is checked
    /// against the customer's stored value, so a hash collision costs a scan, never a wrong
    /// match; a miss means no customer holds the value.
    keys: Mutex<HashMap<(i64, u8, u64), i64>>,
}

fn key_hash(value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable within the process, which is all the map needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A record accepted for writing: its fields (batch_create names, `tagStr` excluded) and
/// its tag names.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub fields: Map<String, Value>,
    pub tags: Vec<String>,
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

fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Store {
    /// `None`: in memory. A path: created if missing, kept between runs.
    pub fn open(path: Option<&Path>) -> rusqlite::Result<Store> {
        // The store's own mutex serializes access: SQLite's per-call mutex is not needed.
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match path {
            Some(p) => Connection::open_with_flags(p, flags)?,
            None => Connection::open_in_memory_with_flags(flags)?,
        };
        conn.execute_batch(
            // A large page cache: the indexes of a million customers do not fit SQLite's
            // default 2 MB. No fsync and rare WAL checkpoints: the simulator's state must
            // outlive the simulator process, not a crash of the machine, and the fsyncs of
            // checkpoints were most of its write cost.
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = OFF;
             PRAGMA wal_autocheckpoint = 20000;
             PRAGMA cache_size = -262144;
             PRAGMA temp_store = MEMORY;
             CREATE TABLE IF NOT EXISTS customers (
                 id INTEGER PRIMARY KEY,
                 tenant_id INTEGER NOT NULL,
                 whats_app_phone TEXT, sms_phone TEXT, email TEXT, full_name TEXT,
                 data TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 updated_at TEXT NOT NULL);
             DROP INDEX IF EXISTS customers_wa;
             DROP INDEX IF EXISTS customers_sms;
             DROP INDEX IF EXISTS customers_email;
             CREATE INDEX IF NOT EXISTS customers_created ON customers(tenant_id, created_at);
             CREATE TABLE IF NOT EXISTS tags (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 tenant_id INTEGER NOT NULL,
                 name TEXT NOT NULL,
                 UNIQUE(tenant_id, name));
             CREATE TABLE IF NOT EXISTS customer_tags (
                 customer_id INTEGER NOT NULL,
                 tag_id INTEGER NOT NULL,
                 PRIMARY KEY (customer_id, tag_id)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS customer_tags_tag ON customer_tags(tag_id, customer_id);",
        )?;
        // Every statement is prepared once and reused; the default cache of 16 is too small
        // for the query endpoint's filter combinations.
        conn.set_prepared_statement_cache_capacity(256);
        let last_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM customers", [], |r| {
                r.get(0)
            })?;
        let mut keys = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT id, tenant_id, whats_app_phone, sms_phone, email FROM customers ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (id, tenant): (i64, i64) = (r.get(0)?, r.get(1)?);
                for k in 0..MATCH_KEYS.len() {
                    if let Some(v) = r.get::<_, Option<String>>(k + 2)? {
                        // Ascending ids: the first holder is the lowest.
                        keys.entry((tenant, k as u8, key_hash(&v))).or_insert(id);
                    }
                }
            }
        }
        Ok(Store {
            conn: Mutex::new(conn),
            tag_ids: Mutex::new(Default::default()),
            last_id: Mutex::new(last_id),
            sequential: std::sync::atomic::AtomicBool::new(false),
            keys: Mutex::new(keys),
        })
    }

    /// From now on, ids are `start`, `start + 1`, … (above any id already held).
    pub fn use_sequential_ids(&self, start: i64) {
        let mut last = self.last_id.lock().expect("id lock");
        *last = (*last).max(start - 1);
        self.sequential
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn next_id(&self) -> i64 {
        let mut last = self.last_id.lock().expect("id lock");
        let candidate = if self.sequential.load(std::sync::atomic::Ordering::SeqCst) {
            0
        } else {
            (jiff::Timestamp::now().as_millisecond() - ID_EPOCH_MS) << 22
        };
        *last = candidate.max(*last + 1);
        *last
    }

    /// Write accepted records in one transaction; returns each one's customer id.
    pub fn upsert(
        &self,
        tenant_id: i64,
        mode: MergeMode,
        records: Vec<Incoming>,
    ) -> rusqlite::Result<Vec<i64>> {
        let result = self.upsert_in_transaction(tenant_id, mode, records);
        if result.is_err() {
            // The transaction rolled back: tags it created may be in the cache, not the table.
            self.tag_ids.lock().expect("tag cache lock").clear();
        }
        result
    }

    fn upsert_in_transaction(
        &self,
        tenant_id: i64,
        mode: MergeMode,
        records: Vec<Incoming>,
    ) -> rusqlite::Result<Vec<i64>> {
        let mut conn = self.conn.lock().expect("store lock");
        let tx = conn.transaction()?;
        // 1. The existing customers any record could match, found through the key map and
        //    loaded by id.
        let mut by_key: [HashMap<String, i64>; 3] = Default::default();
        let mut state: HashMap<i64, Pending> = HashMap::new();
        let mut hits: Vec<(usize, String, i64)> = Vec::new();
        {
            let keys = self.keys.lock().expect("key map lock");
            for (k, key) in MATCH_KEYS.iter().enumerate() {
                let mut values: Vec<String> = records
                    .iter()
                    .filter_map(|r| text(&r.fields, key))
                    .collect();
                values.sort();
                values.dedup();
                for v in values {
                    if let Some(id) = keys.get(&(tenant_id, k as u8, key_hash(&v))) {
                        hits.push((k, v, *id));
                    }
                }
            }
        }
        let mut ids: Vec<i64> = hits.iter().map(|h| h.2).collect();
        ids.sort_unstable();
        ids.dedup();
        load_pending(&tx, &ids, &mut state)?;
        for (k, v, id) in hits {
            let key = MATCH_KEYS[k];
            let holder = if state.get(&id).and_then(|p| text(&p.fields, key)).as_deref()
                == Some(v.as_str())
            {
                Some(id)
            } else {
                // The slot is stale (its customer's value changed since) or a hash collision:
                // find the value's holder the slow way, and repair the slot for next time.
                let found: Option<i64> = tx
                    .prepare_cached(&format!(
                        "SELECT MIN(id) FROM customers WHERE tenant_id = ? AND {key} = ?"
                    ))?
                    .query_row(params![tenant_id, v], |r| r.get(0))?;
                let slot = (tenant_id, k as u8, key_hash(&v));
                let mut keys = self.keys.lock().expect("key map lock");
                match found {
                    Some(f) => {
                        keys.insert(slot, f);
                        drop(keys);
                        load_pending(&tx, &[f], &mut state)?;
                    }
                    None => {
                        keys.remove(&slot);
                    }
                }
                found
            };
            if let Some(h) = holder {
                by_key[k].insert(v, h);
            }
        }
        // 2. Apply the records in order, as if one by one: a later record sees an earlier
        //    one's customer.
        let now = now_text();
        let mut ids = Vec::with_capacity(records.len());
        for rec in records {
            let found = MATCH_KEYS.iter().enumerate().find_map(|(k, key)| {
                text(&rec.fields, key).and_then(|v| by_key[k].get(&v).copied())
            });
            let id = match found {
                None => {
                    let id = self.next_id();
                    state.insert(
                        id,
                        Pending {
                            fields: rec.fields,
                            new: true,
                            dirty: true,
                            replace_tags: false,
                            tags: rec.tags,
                        },
                    );
                    id
                }
                Some(id) => {
                    let p = state.get_mut(&id).expect("a matched customer is loaded");
                    match mode {
                        MergeMode::Keep => {}
                        MergeMode::Replace => {
                            p.fields = rec.fields;
                            p.tags = rec.tags;
                            p.replace_tags = !p.new;
                            p.dirty = true;
                        }
                        MergeMode::Update => {
                            p.fields.extend(rec.fields);
                            p.tags.extend(rec.tags);
                            p.dirty = true;
                        }
                    }
                    id
                }
            };
            let fields = &state[&id].fields;
            for (k, key) in MATCH_KEYS.iter().enumerate() {
                if let Some(v) = text(fields, key) {
                    by_key[k].entry(v).or_insert(id);
                }
            }
            ids.push(id);
        }
        // 3. Write what changed: new customers in multi-row INSERTs, the others one by one.
        let mut new_rows: Vec<(i64, &Pending)> = state
            .iter()
            .filter(|(_, p)| p.new)
            .map(|(id, p)| (*id, p))
            .collect();
        new_rows.sort_by_key(|(id, _)| *id);
        for chunk in new_rows.chunks(INSERT_CHUNK) {
            insert_rows(&tx, tenant_id, chunk, &now)?;
        }
        for (id, p) in state.iter().filter(|(_, p)| p.dirty && !p.new) {
            update_row(&tx, *id, &p.fields, &now)?;
        }
        let mut links = Vec::new();
        for (id, p) in &state {
            if p.dirty && (!p.tags.is_empty() || p.replace_tags) {
                self.tag_links(&tx, tenant_id, *id, &p.tags, p.replace_tags, &mut links)?;
            }
        }
        links.sort_unstable();
        links.dedup();
        for chunk in links.chunks(INSERT_CHUNK) {
            insert_links(&tx, chunk)?;
        }
        tx.commit()?;
        self.update_keys(tenant_id, &state);
        Ok(ids)
    }

    /// After a commit: the key map learns the written customers' keys. A key a customer no
    /// longer holds stays in its slot (finding its next holder would need a scan); the
    /// lookup that meets it checks, scans and repairs it.
    fn update_keys(&self, tenant_id: i64, state: &HashMap<i64, Pending>) {
        let mut keys = self.keys.lock().expect("key map lock");
        for (id, p) in state.iter().filter(|(_, p)| p.dirty) {
            for (k, key) in MATCH_KEYS.iter().enumerate() {
                if let Some(v) = text(&p.fields, key) {
                    let e = keys
                        .entry((tenant_id, k as u8, key_hash(&v)))
                        .or_insert(*id);
                    *e = (*e).min(*id);
                }
            }
        }
    }

    /// The (customer, tag) links for tags named `names` (tags are created on first use);
    /// `replace` first drops the customer's other tags. The caller inserts the links.
    fn tag_links(
        &self,
        conn: &Connection,
        tenant_id: i64,
        customer: i64,
        names: &[String],
        replace: bool,
        links: &mut Vec<(i64, i64)>,
    ) -> rusqlite::Result<()> {
        if replace {
            conn.prepare_cached("DELETE FROM customer_tags WHERE customer_id = ?")?
                .execute([customer])?;
        }
        let mut cache = self.tag_ids.lock().expect("tag cache lock");
        for name in names {
            let key = (tenant_id, name.clone());
            let tag = match cache.get(&key) {
                Some(id) => *id,
                None => {
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO tags (tenant_id, name) VALUES (?, ?)",
                    )?
                    .execute(params![tenant_id, name])?;
                    let id: i64 = conn
                        .prepare_cached("SELECT id FROM tags WHERE tenant_id = ? AND name = ?")?
                        .query_row(params![tenant_id, name], |r| r.get(0))?;
                    cache.insert(key, id);
                    id
                }
            };
            links.push((customer, tag));
        }
        Ok(())
    }

    /// One page of customers as the query endpoint returns them, and its paging.
    pub fn query(
        &self,
        q: &QuerySpec,
    ) -> rusqlite::Result<(Vec<Value>, super::super::api::wire::Paging)> {
        let conn = self.conn.lock().expect("store lock");
        let (filter_sql, filter_params) = filters(q);
        let page_ids: Vec<i64> = if let Some(before) = q.before {
            let mut ids = ids_where(
                &conn,
                &filter_sql,
                &filter_params,
                "id < ?",
                before,
                "DESC",
                q.limit,
            )?;
            ids.reverse();
            ids
        } else {
            ids_where(
                &conn,
                &filter_sql,
                &filter_params,
                "id > ?",
                q.after.unwrap_or(i64::MIN),
                "ASC",
                q.limit,
            )?
        };
        let mut paging = super::super::api::wire::Paging::default();
        if let (Some(first), Some(last)) = (page_ids.first(), page_ids.last()) {
            paging.before = Some(*first);
            paging.after = Some(*last);
            paging.next = ids_where(
                &conn,
                &filter_sql,
                &filter_params,
                "id > ?",
                *last,
                "ASC",
                1,
            )?
            .first()
            .copied();
            paging.previous = ids_where(
                &conn,
                &filter_sql,
                &filter_params,
                "id < ?",
                *first,
                "DESC",
                q.limit,
            )?
            .last()
            .copied();
        }
        let mut customers = Vec::with_capacity(page_ids.len());
        for id in page_ids {
            customers.push(load_customer(&conn, id)?);
        }
        Ok((customers, paging))
    }

    /// Every customer of a tenant (for tests and demos), in id order.
    pub fn all(&self, tenant_id: i64) -> rusqlite::Result<Vec<Value>> {
        let conn = self.conn.lock().expect("store lock");
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM customers WHERE tenant_id = ? ORDER BY id")?
            .query_map([tenant_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter().map(|id| load_customer(&conn, id)).collect()
    }

    pub fn count(&self, tenant_id: i64) -> rusqlite::Result<i64> {
        let conn = self.conn.lock().expect("store lock");
        conn.query_row(
            "SELECT COUNT(*) FROM customers WHERE tenant_id = ?",
            [tenant_id],
            |r| r.get(0),
        )
    }
}

fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Link customers to tags in multi-row statements (one statement per link made the tags
/// a quarter of the simulator's write time).
fn insert_links(conn: &Connection, links: &[(i64, i64)]) -> rusqlite::Result<()> {
    let sql = format!(
        "INSERT OR IGNORE INTO customer_tags (customer_id, tag_id) VALUES {}",
        vec!["(?, ?)"; links.len()].join(", ")
    );
    let params = links.iter().flat_map(|(c, t)| {
        [
            rusqlite::types::Value::Integer(*c),
            rusqlite::types::Value::Integer(*t),
        ]
    });
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(params))?;
    Ok(())
}

/// Rewrite an existing customer (new ones are written by `insert_rows`).
fn update_row(
    conn: &Connection,
    id: i64,
    fields: &Map<String, Value>,
    now: &str,
) -> rusqlite::Result<()> {
    let data = Value::Object(fields.clone()).to_string();
    let (wa, sms, email, name) = (
        text(fields, "whats_app_phone"),
        text(fields, "sms_phone"),
        text(fields, "email"),
        text(fields, "full_name"),
    );
    conn.prepare_cached(
        "UPDATE customers SET whats_app_phone = ?, sms_phone = ?, email = ?, full_name = ?, data = ?, updated_at = ?
         WHERE id = ?",
    )?
    .execute(params![wa, sms, email, name, data, now, id])?;
    Ok(())
}

/// A customer touched by the current request.
struct Pending {
    fields: Map<String, Value>,
    new: bool,
    dirty: bool,
    replace_tags: bool,
    tags: Vec<String>,
}

/// Load customers by id (the primary key) into `state`, unless already there.
fn load_pending(
    conn: &Connection,
    ids: &[i64],
    state: &mut HashMap<i64, Pending>,
) -> rusqlite::Result<()> {
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let sql = format!(
            "SELECT id, data FROM customers WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(chunk.iter()))?;
        while let Some(r) = rows.next()? {
            let (id, data): (i64, String) = (r.get(0)?, r.get(1)?);
            state.entry(id).or_insert_with(|| Pending {
                fields: serde_json::from_str(&data).unwrap_or_default(),
                new: false,
                dirty: false,
                replace_tags: false,
                tags: Vec::new(),
            });
        }
    }
    Ok(())
}

/// The keys an incoming record is matched by, in priority order.
const MATCH_KEYS: [&str; 3] = ["whats_app_phone", "sms_phone", "email"];
const LOOKUP_CHUNK: usize = 100;
const INSERT_CHUNK: usize = 100;

fn insert_rows(
    conn: &Connection,
    tenant_id: i64,
    rows: &[(i64, &Pending)],
    now: &str,
) -> rusqlite::Result<()> {
    use rusqlite::types::Value as Sql;
    let opt = |v: Option<String>| v.map_or(Sql::Null, Sql::Text);
    let mut params: Vec<Sql> = Vec::with_capacity(rows.len() * 9);
    for (id, p) in rows {
        params.extend([
            Sql::Integer(*id),
            Sql::Integer(tenant_id),
            opt(text(&p.fields, "whats_app_phone")),
            opt(text(&p.fields, "sms_phone")),
            opt(text(&p.fields, "email")),
            opt(text(&p.fields, "full_name")),
            Sql::Text(Value::Object(p.fields.clone()).to_string()),
            Sql::Text(now.to_string()),
            Sql::Text(now.to_string()),
        ]);
    }
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, whats_app_phone, sms_phone, email, full_name, data, created_at, updated_at) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ")
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(params))?;
    Ok(())
}

type Params = Vec<rusqlite::types::Value>;

fn filters(q: &QuerySpec) -> (String, Params) {
    use rusqlite::types::Value as Sql;
    // Paging walks the primary key (`id > cursor ORDER BY id LIMIT n`). Left to itself, SQLite
    // answers `tenant_id = ?` from the (tenant_id, created_at) index and sorts every customer
    // of the tenant for each page: O(n) a page. The unary `+` keeps the tenant test off the
    // indexes, so the page is a range scan of the primary key — unless a phone or email
    // filter names a row that the (tenant_id, …) indexes find directly.
    let by_contact = q.sms_phone.is_some() || q.whats_app_phone.is_some() || q.email.is_some();
    let mut sql = vec![
        if by_contact {
            "tenant_id = ?"
        } else {
            "+tenant_id = ?"
        }
        .to_string(),
    ];
    let mut p: Params = vec![Sql::Integer(q.tenant_id)];
    if let Some(t) = &q.start_time {
        sql.push("created_at >= ?".into());
        p.push(Sql::Text(t.clone()));
    }
    if let Some(t) = &q.end_time {
        sql.push("created_at < ?".into());
        p.push(Sql::Text(t.clone()));
    }
    for (col, v) in [
        ("sms_phone", &q.sms_phone),
        ("whats_app_phone", &q.whats_app_phone),
        ("email", &q.email),
    ] {
        if let Some(v) = v {
            sql.push(format!("{col} = ?"));
            p.push(Sql::Text(v.clone()));
        }
    }
    if let Some(v) = &q.viber_phone {
        sql.push("json_extract(data, '$.viber_phone') = ?".into());
        p.push(Sql::Text(v.clone()));
    }
    if let Some(name) = &q.name {
        sql.push("(full_name LIKE ? OR json_extract(data, '$.first_name') = ? OR json_extract(data, '$.last_name') = ?)".into());
        p.push(Sql::Text(format!("%{name}%")));
        p.push(Sql::Text(name.clone()));
        p.push(Sql::Text(name.clone()));
    }
    if let Some(st) = q.source_type {
        // Everything the simulator holds came through the API: source type 6.
        sql.push("? = 6".into());
        p.push(Sql::Integer(st));
    }
    if !q.tag_ids.is_empty() {
        let marks = vec!["?"; q.tag_ids.len()].join(", ");
        let having = if q.tags_all {
            format!(
                " GROUP BY customer_id HAVING COUNT(DISTINCT tag_id) = {}",
                q.tag_ids.len()
            )
        } else {
            String::new()
        };
        sql.push(format!(
            "id IN (SELECT customer_id FROM customer_tags WHERE tag_id IN ({marks}){having})"
        ));
        p.extend(q.tag_ids.iter().map(|t| Sql::Integer(*t)));
    }
    (sql.join(" AND "), p)
}

fn ids_where(
    conn: &Connection,
    filter_sql: &str,
    filter_params: &Params,
    cursor_sql: &str,
    cursor: i64,
    order: &str,
    limit: i64,
) -> rusqlite::Result<Vec<i64>> {
    let sql = format!(
        "SELECT id FROM customers WHERE {filter_sql} AND {cursor_sql} ORDER BY id {order} LIMIT {limit}"
    );
    let mut params = filter_params.clone();
    params.push(rusqlite::types::Value::Integer(cursor));
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids: Vec<i64> = stmt
        .query_map(params_from_iter(params), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// A customer as the query endpoint shows it (CDP-API §5 names: `whatsApp_phone`).
fn load_customer(conn: &Connection, id: i64) -> rusqlite::Result<Value> {
    let (tenant_id, data, created, updated): (i64, String, String, String) = conn
        .prepare_cached(
            "SELECT tenant_id, data, created_at, updated_at FROM customers WHERE id = ?",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let fields: Map<String, Value> = serde_json::from_str(&data).unwrap_or_default();
    let mut tag_stmt = conn.prepare_cached(
        "SELECT t.id, t.name FROM tags t JOIN customer_tags ct ON ct.tag_id = t.id WHERE ct.customer_id = ? ORDER BY t.id",
    )?;
    let tags: Vec<Value> = tag_stmt
        .query_map([id], |r| {
            Ok(json!({"id": r.get::<_, i64>(0)?, "tag_name": r.get::<_, String>(1)?}))
        })?
        .collect::<Result<_, _>>()?;
    let get = |k: &str| fields.get(k).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "id": id,
        "first_name": get("first_name"),
        "last_name": get("last_name"),
        "full_name": get("full_name"),
        "sms_phone": get("sms_phone"),
        "whatsApp_phone": get("whats_app_phone"),
        "viber_phone": get("viber_phone"),
        "line": get("line"),
        "messenger": get("messenger"),
        "instagram": get("instagram"),
        "zalo": get("zalo"),
        "email": get("email"),
        "country": get("country"),
        "address": get("address"),
        "birthday": get("birthday"),
        "remark": get("remark"),
        "time_zone": get("time_zone"),
        "source_type": 6,
        "source_channel_key": "",
        "gender": get("gender"),
        "belong_seat_user": get("belong_seat_user"),
        "created_at": created.replace(' ', "T"),
        "updated_at": updated.replace(' ', "T"),
        "status": 1,
        "tags": tags,
        "whatApp_subscribe": 1,
        "sms_subscribe": 1,
        "customize_field": get("customize_field"),
        "tenant_id": tenant_id,
        "weight": get("weight"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Incoming {
        Incoming {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn matching_survives_a_reopen_and_follows_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
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
        // A new process: the key map is rebuilt from the table.
        let store = Store::open(Some(&path)).unwrap();
        let again = store
            .upsert(
                1,
                MergeMode::Update,
                vec![rec(&[("full_name", "A2"), ("whats_app_phone", "111")])],
            )
            .unwrap();
        assert_eq!(again, vec![a]);
        // A gains an email, then a record matched by that email replaces A's phone 111 by
        // 333: 111 matches nobody any more (a new customer), 333 is A.
        store
            .upsert(
                1,
                MergeMode::Update,
                vec![rec(&[
                    ("full_name", "A"),
                    ("whats_app_phone", "111"),
                    ("email", "a@x.io"),
                ])],
            )
            .unwrap();
        store
            .upsert(
                1,
                MergeMode::Replace,
                vec![rec(&[
                    ("full_name", "A"),
                    ("whats_app_phone", "333"),
                    ("email", "a@x.io"),
                ])],
            )
            .unwrap();
        let by_111 = store
            .upsert(
                1,
                MergeMode::Keep,
                vec![rec(&[("full_name", "N"), ("whats_app_phone", "111")])],
            )
            .unwrap();
        assert!(by_111[0] != a && by_111[0] != b);
        let by_333 = store
            .upsert(
                1,
                MergeMode::Keep,
                vec![rec(&[("full_name", "?"), ("whats_app_phone", "333")])],
            )
            .unwrap();
        assert_eq!(by_333, vec![a]);
        let by_email = store
            .upsert(
                1,
                MergeMode::Keep,
                vec![rec(&[("full_name", "?"), ("email", "b@x.io")])],
            )
            .unwrap();
        assert_eq!(by_email, vec![b]);
        // Another tenant shares nothing.
        let other = store
            .upsert(
                2,
                MergeMode::Update,
                vec![rec(&[("full_name", "A"), ("whats_app_phone", "111")])],
            )
            .unwrap();
        assert_ne!(other, vec![a]);
    }
}
