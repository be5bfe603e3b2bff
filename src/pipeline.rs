//! Reading and mapping on separate threads, results in source order.
//!
//! Parsing CSV and rendering a dozen templates per row are both CPU work; on a two-core
//! machine one thread reads while the others render. Records travel in chunks (to keep
//! channel traffic low) with a sequence number, and the consumer reassembles them in order,
//! so everything downstream — previews, batching — is deterministic.
//!
//! Stopping early must never wait on a full channel: the consumer stopping (or the `stop`
//! flag, checked per record by the reader and per chunk by the mappers) closes the stages
//! one after the other — the reorderer drops its receiver, the mappers fail to send and
//! drop theirs, and the reader's next send fails. Nothing here holds a receiver that its
//! own stage does not use, or the reader would block forever on a full queue.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::mapping::{Mapper, Outcome};
use crate::source::{Record, RecordSource};

const CHUNK: usize = 512;

/// How many threads render: the machine's parallelism, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1)
}

/// Map every record of `source` and pass `(row, outcome)` to `consume` in row order.
/// `consume` returns `false` to stop early; setting `stop` stops the reading and mapping
/// too (from another thread). Either way this returns promptly, whatever is still unread.
pub fn map_in_order(
    source: Box<dyn RecordSource>,
    mapper: &Mapper,
    workers: usize,
    stop: &AtomicBool,
    consume: impl FnMut(u64, Outcome) -> bool,
) -> io::Result<()> {
    map_then_in_order(
        source,
        mapper,
        workers,
        stop,
        &|_, outcome| outcome,
        consume,
    )
}

/// [`map_in_order`] with a further per-row step `then`, run on the mapping threads (so
/// it is parallel too): it gets the record and its outcome and makes what `consume` gets.
pub fn map_then_in_order<T: Send>(
    source: Box<dyn RecordSource>,
    mapper: &Mapper,
    workers: usize,
    stop: &AtomicBool,
    then: &(dyn Fn(Record, Outcome) -> T + Sync),
    mut consume: impl FnMut(u64, T) -> bool,
) -> io::Result<()> {
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<(u64, Vec<Record>)>(workers * 2);
        let (done_tx, done_rx) = sync_channel::<(u64, Vec<(u64, T)>)>(workers * 2);
        let reader = scope.spawn(move || read_chunks(source, work_tx, stop));
        let work_rx = Arc::new(Mutex::new(work_rx));
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || map_chunks(mapper, then, &work_rx, &done_tx, stop));
        }
        // Only the mappers may hold the work queue's receiver: once they are gone, the
        // reader's send fails instead of waiting forever on a full queue.
        drop(work_rx);
        drop(done_tx);
        reorder(done_rx, &mut |row, outcome| {
            !stop.load(Ordering::Relaxed) && consume(row, outcome)
        });
        reader.join().expect("the reader thread does not panic")
    })
}

fn read_chunks(
    source: Box<dyn RecordSource>,
    tx: SyncSender<(u64, Vec<Record>)>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut seq = 0u64;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut open = true;
    let read = source.for_each(&mut |record| {
        if stop.load(Ordering::Relaxed) {
            open = false;
            return false;
        }
        chunk.push(record);
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            open = tx.send((seq, full)).is_ok();
            seq += 1;
        }
        open
    });
    // Also when reading broke: the records read before it are mapped and handed on, so
    // what a stopped read accounts for is every row it read.
    if open && !chunk.is_empty() {
        let _ = tx.send((seq, chunk));
    }
    read
}

fn map_chunks<T>(
    mapper: &Mapper,
    then: &(dyn Fn(Record, Outcome) -> T + Sync),
    rx: &Mutex<Receiver<(u64, Vec<Record>)>>,
    tx: &SyncSender<(u64, Vec<(u64, T)>)>,
    stop: &AtomicBool,
) {
    let session = mapper.session();
    loop {
        let next = rx.lock().expect("no thread panics holding the lock").recv();
        let Ok((seq, records)) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mapped = records
            .into_iter()
            .map(|r| {
                let outcome = session.map(&r);
                (r.row, then(r, outcome))
            })
            .collect();
        if tx.send((seq, mapped)).is_err() {
            return;
        }
    }
}

fn reorder<T>(rx: Receiver<(u64, Vec<(u64, T)>)>, consume: &mut impl FnMut(u64, T) -> bool) {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (seq, chunk) in rx.iter() {
        pending.insert(seq, chunk);
        while let Some(chunk) = pending.remove(&next) {
            next += 1;
            for (row, outcome) in chunk {
                if !consume(row, outcome) {
                    return; // dropping `rx` unwinds the workers and the reader
                }
            }
        }
    }
}
