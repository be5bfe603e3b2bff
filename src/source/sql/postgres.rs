//! PostgreSQL through tokio-postgres. The rows come through a server-side cursor (`DECLARE
//! … NO SCROLL CURSOR` in a read-only repeatable-read transaction, `FETCH FORWARD` a
//! thousand at a time) over the simple-query protocol, whose values are the server's own
//! text: exact numerics, JSON, UUIDs and arrays need no decoding of ours. The session is set
//! to ISO dates in UTC, hex bytea and shortest exact floats; the column types (known from
//! preparing the query) decide the rest (booleans, timestamps, bytes).

use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::session::{CONNECT_TIMEOUT, Session, feed};
use super::{Driver, FETCH_ROWS, SqlError, time_of_day, timestamp};
use crate::source::sql::DbUrl;

pub struct Postgres {
    session: Session<Client>,
    /// The query's column types, in its order.
    types: Vec<Type>,
}

/// Settings that make the server's text the record's text.
const SESSION: &str = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'";

fn classify(e: tokio_postgres::Error) -> SqlError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        // Starting up, shutting down, too many connections: it may work in a moment.
        Some(c)
            if *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::ADMIN_SHUTDOWN =>
        {
            SqlError::Unreachable(db_message(&e))
        }
        Some(_) => SqlError::Refused(db_message(&e)),
        None => match e.to_string().as_str() {
            // The socket: nothing listening, no route, no answer in time, a connection
            // lost. (The kind of error is private to tokio-postgres; its text is not.)
            "error connecting to server"
            | "timeout waiting for server"
            | "error communicating with the server"
            | "connection closed" => SqlError::Unreachable(chain(&e)),
            // Set up wrong, not down: the same answer every time until the connection
            // string changes.
            "error performing TLS handshake" => SqlError::Refused(format!(
                "{}; cdpjob connects to PostgreSQL without TLS (not supported yet): use `sslmode=disable` or `prefer`, or reach the server through a tunnel",
                chain(&e)
            )),
            // A password missing from the URL, an authentication method not supported, a
            // setting the driver refuses, an answer it cannot parse.
            _ => SqlError::Refused(chain(&e)),
        },
    }
}

/// The server's own message (tokio-postgres's Display says only "db error").
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                format!("{} (at character {p} of the query)", db.message())
            }
            _ => db.message().to_string(),
        },
        None => chain(e),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub fn connect(url: &DbUrl, query: &str) -> Result<Postgres, SqlError> {
    let mut config: tokio_postgres::Config =
        url.expose().parse().map_err(|e: tokio_postgres::Error| {
            SqlError::Refused(format!("the connection string: {e}"))
        })?;
    let timeout = *config.get_connect_timeout().unwrap_or(&CONNECT_TIMEOUT);
    config.connect_timeout(timeout);
    config.application_name("cdpjob");
    let mut types = Vec::new();
    let session = Session::open(timeout, async {
        let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
        // Driven whenever the runtime runs (every call on the session is a block_on).
        tokio::spawn(connection);
        client.batch_execute(SESSION).await.map_err(classify)?;
        let stmt = client.prepare(query).await.map_err(classify)?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        types = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        // The cursor now, not when the rows are read: declaring it starts the query's
        // executor, which is where PostgreSQL checks the role's permissions on its tables
        // — so a table without a grant is refused here, before a run directory exists
        // (and by `validate --remote`), not half-way into a run.
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; DECLARE cdpjob_rows NO SCROLL CURSOR FOR {query}"
            ))
            .await
            .map_err(classify)?;
        Ok((client, columns))
    })?;
    Ok(Postgres { session, types })
}

impl Driver for Postgres {
    fn columns(&self) -> &[String] {
        self.session.columns()
    }

    fn rows(
        self: Box<Self>,
        sink: &mut dyn FnMut(Vec<Option<String>>) -> bool,
    ) -> Result<(), SqlError> {
        let Postgres { session, types } = *self;
        session.rows(async |client| {
            let fetch = format!("FETCH FORWARD {FETCH_ROWS} FROM cdpjob_rows");
            let next = async || {
                let messages = client.simple_query(&fetch).await.map_err(classify)?;
                let rows: Vec<_> = messages
                    .into_iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::Row(row) => Some(row),
                        _ => None,
                    })
                    .collect();
                Ok((!rows.is_empty()).then_some(rows))
            };
            let text = |row: tokio_postgres::SimpleQueryRow| {
                (0..row.len())
                    .map(|i| row.get(i).map(|v| text(v, &types[i])))
                    .collect()
            };
            if feed(next, text, sink).await? {
                client.batch_execute("COMMIT").await.map_err(classify)?;
            }
            Ok(())
        })
    }
}

/// The record's text of the server's text `v` of a column of type `t`.
fn text(v: &str, t: &Type) -> String {
    match *t {
        Type::BOOL => match v {
            "t" => "true".into(),
            "f" => "false".into(),
            other => other.into(),
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => timestamp(v),
        Type::TIME | Type::TIMETZ => time_of_day(v),
        Type::BYTEA => v.strip_prefix("\\x").unwrap_or(v).to_string(),
        _ => v.to_string(),
    }
}
