//! The import's source side: a thread that reads, maps and batches the source and hands the
//! batches, in order, to the scheduler through a small channel. Stopping it never waits on
//! the rest of the source: [`Reader::close`] raises the pipeline's stop flag and drops the
//! receiver, so every stage fails its next send and ends.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::batches::{BatchUnit, Batcher, Row};
use super::input::Input;
use crate::job::Job;
use crate::mapping::{Mapper, Outcome};
use crate::pipeline;
use crate::runner::Stop;
use crate::shard::Shard;
use crate::source::{Record, RowData};
use crate::sync::{Classified, Classifier, Seen, Verdict};

/// What the mapping threads hand on for one row: its outcome, its record, with change
/// detection what was decided about a valid customer, and whether it is in this run's
/// shard (always, unsharded).
type Sorted = (Row, Record, Option<Classified>, bool);

pub struct Reader {
    pub units: mpsc::Receiver<BatchUnit>,
    /// Bytes of the source read so far, and the source's size: the progress bar's.
    pub bytes_read: Arc<AtomicU64>,
    pub size: Option<u64>,
    /// The last source row read, in this shard or not: once the source is read to its
    /// end, how many rows it has (a shard's summary says how many of them were its own).
    pub source_rows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Option<u64>, Stop>>,
}

/// Where the last record handed on was: its row, and where a user finds it in the file.
#[derive(Clone, Copy)]
struct Place {
    row: u64,
    /// The physical line (0: none), or a sheet's row number.
    line: u64,
    sheet: bool,
}

impl Place {
    fn of(row: u64, record: &Record) -> Place {
        let sheet = matches!(&record.data, Ok(RowData::Csv(r)) if r.header.is_sheet());
        Place {
            row,
            line: record
                .line_number()
                .unwrap_or(if sheet { record.line } else { 0 }),
            sheet,
        }
    }
}

/// Why reading the source broke, once every row read before it was handed on: where it
/// broke, and whether trying again can help. A damaged file (or a query the database
/// refuses) breaks at the same place every time: a stop no plain resume mends (exit 2).
///
/// The rows read since the last whole batch (`unsent`: first and last row) are not sent: a
/// batch is `batch_size` customers of the source, and a resume (after the file is mended,
/// with `--force`) sends that batch whole — a part of it sent now would mark it done, and
/// its other rows would never be sent. The reason names them, so every row read is
/// accounted for.
fn read_failure(e: &std::io::Error, last: Option<Place>, unsent: Option<(u64, u64)>) -> Stop {
    let after = match last {
        None => "before its first row".to_string(),
        Some(Place { row, line: 0, .. }) => format!("after row {row}"),
        Some(Place {
            row,
            line,
            sheet: true,
        }) => format!("after row {row} (sheet row {line})"),
        Some(Place { row, line, .. }) => format!("after row {row} (line {line})"),
    };
    let mut reason = format!("reading the source failed {after}: {e}");
    match unsent {
        Some((first, last)) if first == last => {
            let _ = write!(
                reason,
                "; row {first}, read after the last whole batch, was not sent"
            );
        }
        Some((first, last)) => {
            let _ = write!(
                reason,
                "; rows {first}-{last}, read after the last whole batch, were not sent"
            );
        }
        None => {}
    }
    if crate::source::is_bad_input(e) {
        Stop::not_resumable(format!(
            "{reason}. Fix or replace the file, then resume this run with --force (its source changed; the batches sent are not sent again), or start a new run"
        ))
    } else {
        Stop::resumable(reason)
    }
}

impl Reader {
    /// Start reading `input`, mapped by `job`; at most `queued` batches wait for the
    /// scheduler. With a `classifier` (change detection), unchanged rows are counted and not
    /// sent, and a match key seen before in the source rejects its row. With a `shard`, only
    /// its rows go on: the others are no outcome of this run (another shard has them).
    pub fn start(
        job: &Job,
        input: Input,
        queued: usize,
        classifier: Option<Arc<Classifier>>,
        shard: Option<Shard>,
    ) -> Result<Reader, Stop> {
        let mapping = job.spec.mapping.clone().unwrap_or_default();
        let mapper = Mapper::new(&mapping, job.spec.filter.as_deref(), &job.vars).map_err(|p| {
            Stop::not_resumable(format!("templates did not compile: {}", p[0].message))
        })?;
        let size = std::fs::metadata(input.path()).map(|m| m.len()).ok();
        let batch_size = job.spec.batch_size;
        let (tx, units) = mpsc::channel::<BatchUnit>(queued.max(1));
        let bytes_read = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let source_rows = Arc::new(AtomicU64::new(0));
        let (counter, stop_reading) = (Arc::clone(&bytes_read), Arc::clone(&stop));
        let rows_seen = Arc::clone(&source_rows);
        let thread = std::thread::spawn(move || -> Result<Option<u64>, Stop> {
            let source = input.open(counter).map_err(Stop::resumable)?;
            let mut batcher = Batcher::new(batch_size);
            let mut seen = classifier.as_ref().map_or_else(Seen::default, |c| c.seen());
            let mut open = true;
            // The row and line of the last record handed on, for a read that breaks.
            let mut last: Option<Place> = None;
            // Decided where the mapped customer is known, on the mapping threads: the
            // shard first, so another shard's rows are not classified at all.
            let classify = |record: Record, outcome: Outcome| -> Sorted {
                let customer = match &outcome {
                    Outcome::Valid(c) => Some(c),
                    _ => None,
                };
                if let Some(s) = &shard
                    && !s.holds(
                        record.row,
                        customer
                            .and_then(crate::sync::tag::match_key)
                            .map(|(f, v)| (f.name(), v)),
                    )
                {
                    // Another shard's row: never batched.
                    return (Row::Skipped, record, None, false);
                }
                let Some(customer) = customer else {
                    return (Row::of(outcome), record, None, true);
                };
                // Written once, here: for the request, and for the sync state's hash.
                let json = Row::json(customer);
                let verdict = classifier
                    .as_ref()
                    .map(|c| c.classify_written(customer, &json));
                (Row::Valid(json), record, verdict, true)
            };
            let read = pipeline::map_then_in_order(
                source,
                &mapper,
                pipeline::default_workers(),
                &stop_reading,
                &classify,
                |row, (outcome, record, verdict, in_shard)| {
                    last = Some(Place::of(row, &record));
                    rows_seen.store(row, Ordering::Relaxed);
                    if !in_shard {
                        return open;
                    }
                    let unit = match verdict {
                        None => batcher.push(row, outcome, record),
                        Some(verdict) => match Classifier::settle(&mut seen, verdict, row) {
                            Err(dup) => batcher.push(row, Row::Rejected(vec![dup]), record),
                            Ok(Verdict::Unchanged) => {
                                batcher.push_unchanged(row);
                                None
                            }
                            Ok(Verdict::Send(tag)) => {
                                batcher.push_tagged(row, outcome, record, tag)
                            }
                        },
                    };
                    if let Some(unit) = unit {
                        open = tx.blocking_send(unit).is_ok();
                    }
                    open
                },
            );
            if let Err(e) = read {
                // The rows of the unfinished batch stay unsent (see `read_failure`).
                let unsent = batcher.finish().map(|u| (u.first_row, u.last_row));
                return Err(read_failure(&e, last, unsent));
            }
            if open && let Some(unit) = batcher.finish() {
                open = tx.blocking_send(unit).is_ok();
            }
            // Only a source read to its end says which of the state's customers it lacks.
            let read_all = open && !stop_reading.load(Ordering::Relaxed);
            Ok(classifier.filter(|_| read_all).map(|c| c.missing(&seen)))
        });
        Ok(Reader {
            units,
            bytes_read,
            size,
            source_rows,
            stop,
            thread,
        })
    }

    /// Stop reading (whatever is left unread) and let the thread end: it does at its next
    /// record. A read error is a stop: resumable, unless the input itself is bad (see
    /// [`read_failure`]). When the run is `stopping`, a thread stuck
    /// in a read that never returns (a pipe nobody writes to) is not waited for past a
    /// short grace: nothing reads its output any more, and the process's exit ends it.
    /// On success, how many customers of the sync state the source lacked (with change
    /// detection, once the whole source was read).
    pub async fn close(self, stopping: bool) -> Result<Option<u64>, Stop> {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.units);
        let thread = self.thread;
        if stopping {
            let deadline = tokio::time::Instant::now() + READER_GRACE;
            while !thread.is_finished() {
                if tokio::time::Instant::now() > deadline {
                    return Ok(None); // left behind, detached
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(Ok(missing))) => Ok(missing),
            Ok(Ok(Err(stop))) => Err(stop),
            Ok(Err(_)) | Err(_) => Err(Stop::resumable("the source reader failed")),
        }
    }
}

/// How long a stopping run waits for the reader thread to notice.
const READER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
