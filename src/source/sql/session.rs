//! What the two networked drivers (PostgreSQL, MySQL/MariaDB) share, so that each says only
//! how it talks to its server: a current-thread runtime of the connection's own (a source is
//! read by blocking callers), connecting and preparing the query within one timeout, and
//! the row loop that hands each row to the sink and stops when it says so.

use std::time::Duration;

use super::SqlError;

/// How long connecting, setting the session up and preparing the query may take, unless
/// the connection string says otherwise (PostgreSQL's `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection `C` on its own runtime, the query prepared: its columns are known.
pub struct Session<C> {
    // Dropped first: the connection's tasks end with it, then the connection.
    runtime: tokio::runtime::Runtime,
    conn: C,
    columns: Vec<String>,
}

impl<C> Session<C> {
    /// Run `open` — connect, set the session up, prepare the query; it gives the connection
    /// and the query's column names — on a new runtime. No answer within `timeout` is
    /// unreachable (try again later).
    pub fn open(
        timeout: Duration,
        open: impl Future<Output = Result<(C, Vec<String>), SqlError>>,
    ) -> Result<Session<C>, SqlError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SqlError::Unreachable(e.to_string()))?;
        let (conn, columns) = runtime.block_on(async {
            tokio::time::timeout(timeout, open).await.map_err(|_| {
                SqlError::Unreachable(format!("no answer within {} s", timeout.as_secs()))
            })?
        })?;
        Ok(Session {
            runtime,
            conn,
            columns,
        })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Read the rows: `read` gets the connection and runs the query to its end (or until
    /// the sink stops it, see [`feed`]), on the connection's runtime.
    pub fn rows(self, read: impl AsyncFnOnce(C) -> Result<(), SqlError>) -> Result<(), SqlError> {
        let Session { runtime, conn, .. } = self;
        runtime.block_on(read(conn))
    }
}

/// The row loop: every row of every batch `next` gives (`None`: no more), made text by
/// `text`, to `sink`, in order. `Ok(false)` when the sink stopped it early (the query is
/// then left as it is: the connection is dropped).
pub async fn feed<B: IntoIterator>(
    mut next: impl AsyncFnMut() -> Result<Option<B>, SqlError>,
    text: impl Fn(B::Item) -> Vec<Option<String>>,
    sink: &mut dyn FnMut(Vec<Option<String>>) -> bool,
) -> Result<bool, SqlError> {
    while let Some(batch) = next().await? {
        for row in batch {
            if !sink(text(row)) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
