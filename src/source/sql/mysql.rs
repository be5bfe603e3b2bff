//! MySQL and MariaDB through mysql_async. The query runs over the text protocol and its
//! result is read row by row off the connection (unbuffered: the server's rows wait in the
//! socket, not in our memory); every value is the server's own text. The session runs in
//! UTC; the column types decide the rest (TINYINT(1) booleans, binary columns as hex,
//! timestamps without fractions).

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Value};

use super::session::{CONNECT_TIMEOUT, Session, feed};
use super::{Driver, SqlError, hex, time_of_day, timestamp};
use crate::source::sql::DbUrl;

pub struct Mysql {
    session: Session<Conn>,
    query: String,
}

/// MySQL's "binary" character set: the column holds bytes, not text.
const BINARY: u16 = 63;

fn classify(e: mysql_async::Error) -> SqlError {
    match e {
        mysql_async::Error::Server(s) => match s.code {
            // 1040 too many connections, 1053 shutting down: it may work in a moment.
            1040 | 1053 => SqlError::Unreachable(s.message),
            _ => SqlError::Refused(s.message),
        },
        mysql_async::Error::Url(e) => SqlError::Refused(format!("the connection string: {e}")),
        // The socket: nothing listening, the connection lost. Trying again can help.
        mysql_async::Error::Io(mysql_async::IoError::Io(e)) => SqlError::Unreachable(e.to_string()),
        mysql_async::Error::Driver(
            d @ (mysql_async::DriverError::ConnectionClosed
            | mysql_async::DriverError::PoolDisconnected),
        ) => SqlError::Unreachable(d.to_string()),
        // Set up wrong, not down (TLS asked for — cdpjob has none —, an authentication
        // plugin the driver refuses, a protocol it cannot follow): the same every time.
        other => SqlError::Refused(other.to_string()),
    }
}

pub fn connect(url: &DbUrl, query: &str) -> Result<Mysql, SqlError> {
    let opts = Opts::from_url(url.expose())
        .map_err(|e| SqlError::Refused(format!("the connection string: {e}")))?;
    let session = Session::open(CONNECT_TIMEOUT, async {
        let mut conn = Conn::new(opts).await.map_err(classify)?;
        conn.query_drop("SET time_zone = '+00:00'")
            .await
            .map_err(classify)?;
        // Preparing describes the result's columns without running the query.
        let stmt = conn.prep(query).await.map_err(classify)?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        conn.close(stmt).await.map_err(classify)?;
        Ok((conn, columns))
    })?;
    Ok(Mysql {
        session,
        query: query.to_string(),
    })
}

impl Driver for Mysql {
    fn columns(&self) -> &[String] {
        self.session.columns()
    }

    fn rows(
        self: Box<Self>,
        sink: &mut dyn FnMut(Vec<Option<String>>) -> bool,
    ) -> Result<(), SqlError> {
        let Mysql { session, query } = *self;
        session.rows(async |mut conn| {
            let mut result = conn.query_iter(query).await.map_err(classify)?;
            let columns = result.columns().unwrap_or_else(|| Vec::new().into());
            // One row at a time, off the socket.
            let next = async || Ok(result.next().await.map_err(classify)?.map(std::iter::once));
            let text = |row: mysql_async::Row| {
                row.unwrap()
                    .into_iter()
                    .zip(columns.iter())
                    .map(|(v, c)| text(v, c))
                    .collect()
            };
            if feed(next, text, sink).await? {
                drop(result);
                conn.disconnect().await.map_err(classify)?;
            }
            Ok(())
        })
    }
}

/// The record's text of a value of column `c` (the text protocol sends every value as
/// the server's text; a value of another kind is printed as MySQL would).
fn text(v: Value, c: &Column) -> Option<String> {
    let bytes = match v {
        Value::NULL => return None,
        Value::Bytes(b) => b,
        other => return Some(other.as_sql(true).trim_matches('\'').to_string()),
    };
    let binary = c.character_set() == BINARY
        && !c.flags().contains(ColumnFlags::NUM_FLAG)
        && matches!(
            c.column_type(),
            ColumnType::MYSQL_TYPE_STRING
                | ColumnType::MYSQL_TYPE_VAR_STRING
                | ColumnType::MYSQL_TYPE_VARCHAR
                | ColumnType::MYSQL_TYPE_BLOB
                | ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
                | ColumnType::MYSQL_TYPE_BIT
        );
    if binary {
        return Some(hex(&bytes));
    }
    let s = String::from_utf8_lossy(&bytes);
    Some(match c.column_type() {
        ColumnType::MYSQL_TYPE_TINY if c.column_length() == 1 => match &*s {
            "0" => "false".into(),
            "1" => "true".into(),
            other => other.into(),
        },
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_TIMESTAMP => timestamp(&s),
        ColumnType::MYSQL_TYPE_TIME => time_of_day(&s),
        _ => s.into_owned(),
    })
}
