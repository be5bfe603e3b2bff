//! SQLite through rusqlite (bundled: no system library). The file is opened read-only, so
//! a job can never change it; rows come one step of the statement at a time.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Driver, SqlError, hex};
use crate::source::sql::DbUrl;

pub struct Sqlite {
    conn: Connection,
    query: String,
    columns: Vec<String>,
    /// Columns declared BOOLEAN: SQLite stores 0/1, the record says false/true.
    booleans: Vec<bool>,
}

pub fn connect(url: &DbUrl, query: &str) -> Result<Sqlite, SqlError> {
    let path = url.sqlite_path.as_deref().expect("a sqlite URL has a path");
    if !path.is_file() {
        return Err(SqlError::Refused(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SqlError::Refused(e.to_string()))?;
    let (columns, booleans) = {
        let stmt = conn
            .prepare(query)
            .map_err(|e| SqlError::Refused(e.to_string()))?;
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let booleans = stmt
            .columns()
            .map(|c| {
                c.decl_type().is_some_and(|t| {
                    t.eq_ignore_ascii_case("boolean") || t.eq_ignore_ascii_case("bool")
                })
            })
            .collect();
        (columns, booleans)
    };
    Ok(Sqlite {
        conn,
        query: query.to_string(),
        columns,
        booleans,
    })
}

impl Driver for Sqlite {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn rows(
        self: Box<Self>,
        sink: &mut dyn FnMut(Vec<Option<String>>) -> bool,
    ) -> Result<(), SqlError> {
        let failed = |e: rusqlite::Error| SqlError::Refused(e.to_string());
        let mut stmt = self.conn.prepare(&self.query).map_err(failed)?;
        let mut rows = stmt.query([]).map_err(failed)?;
        while let Some(row) = rows.next().map_err(failed)? {
            let mut values = Vec::with_capacity(self.columns.len());
            for i in 0..self.columns.len() {
                let v = row.get_ref(i).map_err(failed)?;
                values.push(text(v, self.booleans[i]));
            }
            if !sink(values) {
                break;
            }
        }
        Ok(())
    }
}

fn text(v: ValueRef<'_>, boolean: bool) -> Option<String> {
    Some(match v {
        ValueRef::Null => return None,
        ValueRef::Integer(0) if boolean => "false".into(),
        ValueRef::Integer(1) if boolean => "true".into(),
        ValueRef::Integer(i) => i.to_string(),
        // Rust prints the shortest text that reads back as the same f64 (1.0 as "1").
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => hex(b),
    })
}
