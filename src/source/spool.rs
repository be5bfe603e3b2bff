//! A sql source's rows, copied once into the run directory (SPEC §12 R12): zstd-compressed
//! JSON lines of `{"row": n, "record": {…}}` (the same lines a retry's copy holds, so
//! [`CopiedRows`] reads both). A run reads its rows from here, and so does every resume:
//! a resumed run sees exactly the rows it started with, whatever the database holds now.
//!
//! The spool is written beside its final name and renamed there only once it is complete
//! and fsynced (and the directory after it): a spool under its name is always whole.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::records::{CopiedRow, CopiedRows};
use super::{Record, RecordSource, RowData, counted};

/// zstd's level 3 (its default): ~4× smaller than JSON at a few hundred MB/s.
const LEVEL: i32 = 3;

/// Where the spool grows until it is complete.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Copy every record of `source` into a spool at `path`; how many rows it holds. An
/// unreadable record cannot come from a database; one would stop the copy. `stopping` is
/// asked before every row: once it says yes (a signal), the copy ends with an error of
/// kind [`io::ErrorKind::Interrupted`], the partial spool left as it is.
pub fn write(
    source: Box<dyn RecordSource>,
    path: &Path,
    stopping: &dyn Fn() -> bool,
) -> io::Result<u64> {
    let partial = partial_path(path);
    let file = File::create(&partial)?;
    let mut out = zstd::Encoder::new(BufWriter::with_capacity(1 << 16, file), LEVEL)?;
    let mut rows = 0u64;
    let mut failed: Option<io::Error> = None;
    let mut line = Vec::with_capacity(256);
    source.for_each(&mut |record: Record| {
        if stopping() {
            failed = Some(io::Error::new(
                io::ErrorKind::Interrupted,
                "interrupted by a signal",
            ));
            return false;
        }
        let map = match record.data {
            Ok(RowData::Json(map)) => map,
            Ok(other) => match (Record {
                data: Ok(other),
                ..record
            })
            .as_json()
            {
                Some(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
            Err(bad) => {
                failed = Some(io::Error::other(format!(
                    "row {} could not be read: {}",
                    record.row, bad.reason
                )));
                return false;
            }
        };
        crate::failpoint!("spool_row");
        line.clear();
        // A database row has no line of a file (SPEC §12 R13 names CSV and JSON Lines).
        let copied = CopiedRow {
            row: record.row,
            line: None,
            record: map,
        };
        if let Err(e) = serde_json::to_writer(&mut line, &copied) {
            failed = Some(e.into());
            return false;
        }
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            failed = Some(e);
            return false;
        }
        rows += 1;
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let file = out.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(rows)
}

/// The spool at `path`, read as a source; every compressed byte read is added to
/// `bytes_read` (the spool's size is the progress bar's total).
pub fn open(path: &Path, bytes_read: Arc<AtomicU64>) -> io::Result<Box<dyn RecordSource>> {
    let file = File::open(path)?;
    let compressed = counted(BufReader::with_capacity(1 << 16, file), bytes_read);
    let decoder = zstd::Decoder::with_buffer(compressed)?;
    Ok(Box::new(CopiedRows::new(
        Box::new(BufReader::with_capacity(1 << 16, decoder)),
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows(Vec<Record>);
    impl RecordSource for Rows {
        fn for_each(self: Box<Self>, sink: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
            for r in self.0 {
                if !sink(r) {
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn a_spool_gives_back_its_rows_nulls_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.jsonl.zst");
        let records: Vec<Record> = (1..=3)
            .map(|row| {
                let record = serde_json::json!({"id": row.to_string(), "email": null});
                let serde_json::Value::Object(map) = record else {
                    unreachable!()
                };
                Record {
                    row,
                    line: 0,
                    data: Ok(RowData::Json(map)),
                }
            })
            .collect();
        assert_eq!(
            write(Box::new(Rows(records.clone())), &path, &|| false).unwrap(),
            3
        );
        assert!(!partial_path(&path).exists());
        let mut back = Vec::new();
        open(&path, Arc::default())
            .unwrap()
            .for_each(&mut |r| {
                back.push((r.row, r.as_json().unwrap()));
                true
            })
            .unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].0, 3);
        assert_eq!(back[2].1, serde_json::json!({"id": "3", "email": null}));

        // Asked to stop: no spool under its name, the partial one left for the next try.
        std::fs::remove_file(&path).unwrap();
        let asked = std::cell::Cell::new(0);
        let stopping = || {
            asked.set(asked.get() + 1);
            asked.get() > 2
        };
        let err = write(Box::new(Rows(records)), &path, &stopping).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(!path.exists() && partial_path(&path).exists());
    }
}
