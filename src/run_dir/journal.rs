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
        self.append_lines(&line_of(record)?)
    }

    /// Append whole lines (each ending in a newline) with one write and one fsync.
    fn append_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.file.write_all(lines)?;
        if self.durable {
            self.file.sync_data()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn line_of<T: Serialize>(record: &T) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// A write that failed, as every later caller is told it (`io::Error` is not `Clone`).
type Failure = (io::ErrorKind, String);

/// A line waiting for the writer, and who waits for it to be durable.
struct Waiting {
    line: Vec<u8>,
    durable: Option<tokio::sync::oneshot::Sender<Result<(), Failure>>>,
}

/// A journal shared by concurrent request tasks, with group commit: a writer thread takes
/// every line waiting, writes them with one `write` and makes them durable with one fsync,
/// then answers each caller. With 8 requests in flight that is one fsync for several
/// intents and outcomes instead of one each, and no async worker ever waits on the disk.
/// After a failed write every later append fails too: the file's end is unknown then, and
/// the run must stop (resumably), never go on.
pub struct GroupJournal {
    tx: Option<std::sync::mpsc::Sender<Waiting>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl GroupJournal {
    pub fn start(mut journal: Journal) -> io::Result<GroupJournal> {
        GroupJournal::start_with(move |lines: &[u8]| journal.append_lines(lines))
    }

    /// With any way of appending lines durably (a test's failing disk, say).
    fn start_with(
        append: impl FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    ) -> io::Result<GroupJournal> {
        let (tx, rx) = std::sync::mpsc::channel::<Waiting>();
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_groups(append, rx))?;
        Ok(GroupJournal {
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Append one record; returns once it is durable (written and fsynced, with the lines
    /// before it).
    pub async fn append<T: Serialize>(&self, record: &T) -> io::Result<()> {
        self.append_line(line_of(record)?).await
    }

    /// [`GroupJournal::append`] of a line written already: one JSON document and its
    /// newline.
    pub async fn append_line(&self, line: Vec<u8>) -> io::Result<()> {
        debug_assert!(line.ends_with(b"\n"), "a journal line ends in a newline");
        let (done, durable) = tokio::sync::oneshot::channel();
        self.send(Waiting {
            line,
            durable: Some(done),
        })?;
        match durable.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((kind, message))) => Err(io::Error::new(kind, message)),
            Err(_) => Err(io::Error::other("the journal writer stopped")),
        }
    }

    /// Append one record without waiting for it (a log entry nothing depends on); it is
    /// still written in order with the others.
    pub fn append_detached<T: Serialize>(&self, record: &T) -> io::Result<()> {
        self.send(Waiting {
            line: line_of(record)?,
            durable: None,
        })
    }

    fn send(&self, waiting: Waiting) -> io::Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(waiting).ok())
            .ok_or_else(|| io::Error::other("the journal writer stopped"))
    }
}

impl Drop for GroupJournal {
    /// Every line sent is written before the journal is gone.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn write_groups(
    mut append: impl FnMut(&[u8]) -> io::Result<()>,
    rx: std::sync::mpsc::Receiver<Waiting>,
) {
    let mut broken: Option<Failure> = None;
    let mut lines = Vec::new();
    while let Ok(first) = rx.recv() {
        // The lines of a group are usually produced by a thread that just woke this one
        // on the same core (one core per process in a pod, or a pinned run). Yielding once
        // lets it go on and queue its next lines, which then share this write and fsync:
        // at 32 requests in flight a third of the fsyncs and half the context switches.
        // With a core to spare the yield returns at once.
        std::thread::yield_now();
        let mut group = vec![first];
        group.extend(rx.try_iter());
        let result = match &broken {
            Some(failure) => Err(failure.clone()),
            None => {
                lines.clear();
                for w in &group {
                    lines.extend_from_slice(&w.line);
                }
                append(&lines).map_err(|e| {
                    let failure = (e.kind(), e.to_string());
                    broken = Some(failure.clone());
                    failure
                })
            }
        };
        for w in group {
            if let Some(done) = w.durable {
                let _ = done.send(result.clone());
            }
        }
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
    fn concurrent_appends_are_all_written_whole_and_in_the_order_sent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let journal = GroupJournal::start(Journal::open(&p, true).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        rt.block_on(async {
            let journal = std::sync::Arc::new(journal);
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..8 {
                let journal = std::sync::Arc::clone(&journal);
                tasks.spawn(async move {
                    for i in 0..50 {
                        journal
                            .append(&json!({"task": task, "i": i}))
                            .await
                            .unwrap();
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
            journal.append_detached(&json!({"last": true})).unwrap();
        });
        drop(rt); // the journal is dropped with the last task: its writer has finished
        let (v, len) = read_all::<Value>(&p).unwrap();
        assert_eq!(len, std::fs::metadata(&p).unwrap().len());
        assert_eq!(v.len(), 8 * 50 + 1);
        assert_eq!(v.last().unwrap(), &json!({"last": true}));
        for task in 0..8 {
            let seen: Vec<i64> = v
                .iter()
                .filter(|r| r["task"] == task)
                .map(|r| r["i"].as_i64().unwrap())
                .collect();
            assert_eq!(seen, (0..50).collect::<Vec<_>>(), "task {task}");
        }
    }

    #[test]
    fn after_a_failed_write_every_append_fails_and_nothing_more_is_written() {
        // A disk that fails the first write and would take the later ones.
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let mut calls = 0;
        let sink = std::sync::Arc::clone(&written);
        let journal = GroupJournal::start_with(move |lines: &[u8]| {
            calls += 1;
            if calls == 1 {
                return Err(io::Error::other("disk full"));
            }
            sink.lock().unwrap().extend_from_slice(lines);
            Ok(())
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let first = journal.append(&json!({"a": 1})).await.unwrap_err();
            assert!(first.to_string().contains("disk full"), "{first}");
            let later = journal.append(&json!({"a": 2})).await.unwrap_err();
            assert!(later.to_string().contains("disk full"), "{later}");
        });
        drop(journal);
        assert!(written.lock().unwrap().is_empty());
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
