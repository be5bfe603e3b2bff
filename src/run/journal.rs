//! An append-only log of JSON lines, made durable line by line.
//!
//! Every append is written whole and fsynced before the caller goes on (the "intent before
//! the request" rule needs exactly that). A crash may leave the last line torn — no final
//! newline, or not JSON; reading drops such a last line (and truncates it away when the log
//! is reopened for appending). A bad line anywhere else is corruption, reported as such.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Journal {
    path: PathBuf,
    file: File,
    /// fsync after every append (off only in the benchmark that measures what it costs).
    durable: bool,
}

/// Read every complete line of a log; a torn last line is dropped. Returns the records and
/// the byte length of the complete part.
pub fn read_all<T: DeserializeOwned>(path: &Path) -> io::Result<(Vec<T>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut good = 0u64;
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok((out, good));
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        match serde_json::from_slice::<T>(&line) {
            Ok(v) if complete => {
                out.push(v);
                good += n as u64;
            }
            _ => {
                // Only the last line may be torn; anything after it means corruption.
                let mut rest = Vec::new();
                io::Read::read_to_end(&mut reader, &mut rest)?;
                if rest.is_empty() {
                    return Ok((out, good));
                }
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is corrupt at line {number}", path.display()),
                ));
            }
        }
    }
}

impl Journal {
    /// Open for appending, cutting off a torn last line first.
    pub fn open(path: &Path, durable: bool) -> io::Result<Journal> {
        let (_, good) = read_all::<serde_json::Value>(path)?;
        let mut opts = OpenOptions::new();
        opts.create(true).read(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path)?;
        if file.metadata()?.len() != good {
            file.set_len(good)?;
            file.sync_all()?;
        }
        let mut j = Journal {
            path: path.to_path_buf(),
            file,
            durable,
        };
        io::Seek::seek(&mut j.file, io::SeekFrom::End(0))?;
        Ok(j)
    }

    /// Append one record as a line and make it durable.
    pub fn append<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        if self.durable {
            self.file.sync_data()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut j = Journal::open(&p, true).unwrap();
        j.append(&json!({"a": 1})).unwrap();
        j.append(&json!({"a": 2})).unwrap();
        let (v, len) = read_all::<Value>(&p).unwrap();
        assert_eq!(v, vec![json!({"a": 1}), json!({"a": 2})]);
        assert_eq!(len, std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_off_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        for torn in ["{\"a\":2", "{\"a\":2}", "{\"a\"", "garbage"] {
            std::fs::write(&p, format!("{{\"a\":1}}\n{torn}")).unwrap();
            let (v, len) = read_all::<Value>(&p).unwrap();
            assert_eq!(v, vec![json!({"a": 1})], "{torn}");
            assert_eq!(len, 8);
            let mut j = Journal::open(&p, true).unwrap();
            j.append(&json!({"a": 3})).unwrap();
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                "{\"a\":1}\n{\"a\":3}\n"
            );
        }
    }

    #[test]
    fn a_bad_line_in_the_middle_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(&p, "{\"a\":1}\nbroken\n{\"a\":3}\n").unwrap();
        let err = read_all::<Value>(&p).unwrap_err();
        assert!(err.to_string().contains("corrupt at line 2"), "{err}");
    }
}
