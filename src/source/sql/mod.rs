//! A database query as a source (SPEC §8 "sql"): PostgreSQL, MySQL/MariaDB or SQLite. The
//! query's columns are the record's keys; every value arrives as text (the server formats
//! it, so exact numerics stay exact), SQL NULL as JSON null, dates and timestamps as
//! `yyyy-MM-dd` / `yyyy-MM-dd HH:mm:ss`. Rows stream — a server-side cursor (PostgreSQL),
//! an unbuffered result (MySQL), a stepped statement (SQLite) — never all in memory.
//!
//! Opening connects and prepares the query, so an unreachable server, bad credentials or a
//! query that does not compile are known before anything else happens; reading the rows
//! happens in [`RecordSource::for_each`].

mod mysql;
mod postgres;
mod session;
mod sqlite;
pub mod url;

use std::io;
use std::path::Path;

use super::{OpenError, Record, RecordSource, RowData, SourceSpec};
pub use url::{Backend, DbUrl};

/// How many rows a PostgreSQL cursor fetch brings at a time (memory: one such chunk).
const FETCH_ROWS: usize = 1000;

/// Why a database could not be used.
#[derive(Debug)]
pub enum SqlError {
    /// The server could not be reached (down, refused, timed out): trying again can help.
    Unreachable(String),
    /// The server answered no: bad credentials, unknown database, a query that does not
    /// compile. The message is the database's.
    Refused(String),
}

/// One connected database with the query prepared: its columns are known, no row read.
trait Driver: Send {
    fn columns(&self) -> &[String];
    /// Every row, in order, its values as text (`None`: NULL); stop when `sink` says so.
    fn rows(
        self: Box<Self>,
        sink: &mut dyn FnMut(Vec<Option<String>>) -> bool,
    ) -> Result<(), SqlError>;
}

/// A sql source, connected and prepared.
pub struct SqlSource {
    url: DbUrl,
    /// Always `Some` but while being dropped.
    driver: Option<Box<dyn Driver>>,
}

/// `f`, outside the async runtime this thread may be driving: the drivers block on a
/// runtime of their own (and drop it), which tokio forbids inside another's tasks — and a
/// run opens its source, and copies it into its spool, from within its (multi-threaded)
/// runtime. Elsewhere (the reader thread, `plan`, `validate`) `f` simply runs.
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Drop for SqlSource {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            off_runtime(move || drop(driver));
        }
    }
}

impl std::fmt::Debug for SqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlSource({})", self.url.describe())
    }
}

/// The connection string and query of a sql source block.
pub fn url_and_query(spec: &SourceSpec, base_dir: &Path) -> Result<(DbUrl, String), OpenError> {
    let var = spec.url_env.as_deref().ok_or_else(|| {
        OpenError::Invalid(
            "a sql source needs `url_env`, the variable holding its connection string".into(),
        )
    })?;
    let query = spec
        .query
        .as_deref()
        .ok_or_else(|| OpenError::Invalid("a sql source needs `query`".into()))?;
    let url = DbUrl::from_env(var, base_dir).map_err(OpenError::Invalid)?;
    Ok((
        url,
        query.trim().trim_end_matches(';').trim_end().to_string(),
    ))
}

impl SqlSource {
    /// Connect to the database `spec` names (relative sqlite paths against `base_dir`) and
    /// prepare its query.
    pub fn open(spec: &SourceSpec, base_dir: &Path) -> Result<SqlSource, OpenError> {
        let (url, query) = url_and_query(spec, base_dir)?;
        let driver = off_runtime(|| -> Result<Box<dyn Driver>, SqlError> {
            Ok(match url.backend {
                Backend::Postgres => Box::new(postgres::connect(&url, &query)?),
                Backend::Mysql => Box::new(mysql::connect(&url, &query)?),
                Backend::Sqlite => Box::new(sqlite::connect(&url, &query)?),
            })
        })
        .map_err(|e| open_error(&url, e))?;
        Ok(SqlSource {
            url,
            driver: Some(driver),
        })
    }

    /// The query's columns, in its order (known without fetching a row).
    pub fn columns(&self) -> &[String] {
        self.driver.as_ref().expect("a driver").columns()
    }

    /// Which database this is, for messages (never the connection string).
    pub fn describe(&self) -> String {
        self.url.describe()
    }
}

impl SqlError {
    /// The one classification of a database's errors: what the user reads (naming the
    /// database, never its password), and whether it is bad input — refused: the same
    /// answer every time until someone changes the job, the URL or the database (exit 2)
    /// — or worth trying again later (unreachable: exit 3). `reading`: the rows were being
    /// read (the query was prepared and started).
    fn report(self, url: &DbUrl, reading: bool) -> (bool, String) {
        let db = url.describe();
        match (self, reading) {
            (SqlError::Refused(m), false) => (true, format!("the {db} refused: {}", url.scrub(&m))),
            (SqlError::Refused(m), true) => (
                true,
                format!(
                    "the {db} refused the query while running it: {}",
                    url.scrub(&m)
                ),
            ),
            (SqlError::Unreachable(m), false) => {
                (false, format!("cannot reach the {db}: {}", url.scrub(&m)))
            }
            (SqlError::Unreachable(m), true) => {
                (false, format!("reading the {db} failed: {}", url.scrub(&m)))
            }
        }
    }
}

/// A database's error while connecting or preparing, as an [`OpenError`]: unreachable is
/// the caller's "try again later", refused the job's or the environment's fault.
fn open_error(url: &DbUrl, e: SqlError) -> OpenError {
    match e.report(url, false) {
        (true, m) => OpenError::Invalid(m),
        (false, m) => OpenError::Unreachable(m),
    }
}

/// A database's error while the rows are read, as an I/O error whose kind keeps what it
/// means: refused (a permission the role lacks, a division by zero, a bad cast, a
/// subquery of several rows) is [`io::ErrorKind::InvalidData`], bad input that no retry
/// mends (see [`super::is_bad_input`]); unreachable (the connection lost) any other kind.
fn read_error(url: &DbUrl, e: SqlError) -> io::Error {
    match e.report(url, true) {
        (true, m) => io::Error::new(io::ErrorKind::InvalidData, m),
        (false, m) => io::Error::other(m),
    }
}

impl RecordSource for SqlSource {
    fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
        let mut this = *self;
        let driver = this.driver.take().expect("a driver");
        let url = this.url.clone();
        let names = driver.columns().to_vec();
        let mut row = 0u64;
        off_runtime(move || {
            driver.rows(&mut |values| {
                row += 1;
                let map = names
                    .iter()
                    .zip(values)
                    .map(|(name, v)| {
                        let v = v.map_or(serde_json::Value::Null, serde_json::Value::String);
                        (name.clone(), v)
                    })
                    .collect();
                sink(Record {
                    row,
                    line: 0,
                    data: Ok(RowData::Json(map)),
                })
            })
        })
        .map_err(|e| read_error(&url, e))
    }
}

/// `yyyy-MM-dd HH:mm:ss` of a server's timestamp text: fractional seconds and a UTC
/// offset (the session runs in UTC) cut off.
fn timestamp(text: &str) -> String {
    match text.get(..19) {
        Some(head)
            if head.as_bytes().get(10) == Some(&b' ') || head.as_bytes().get(10) == Some(&b'T') =>
        {
            head.replacen('T', " ", 1)
        }
        _ => text.to_string(),
    }
}

/// `HH:mm:ss` of a server's time text (fractional seconds cut off).
fn time_of_day(text: &str) -> String {
    match text.split_once('.') {
        Some((hms, _)) => hms.to_string(),
        None => text.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_lose_their_fraction_and_offset() {
        assert_eq!(
            timestamp("2024-03-05 07:08:09.123456+00"),
            "2024-03-05 07:08:09"
        );
        assert_eq!(timestamp("2024-03-05 07:08:09"), "2024-03-05 07:08:09");
        assert_eq!(timestamp("infinity"), "infinity");
        assert_eq!(time_of_day("07:08:09.5"), "07:08:09");
    }
}
