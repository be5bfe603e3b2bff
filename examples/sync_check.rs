//! The unchanged check of `sync: changed` on its own, apart from reading and mapping:
//! `cargo run --release --example sync_check JOB.yaml` (benches/sync.sh runs it).
//!
//! Maps the job's source once to build the state's snapshot from its customers (every
//! 100th with another content hash, so 1% come out changed). Then it does what a run's
//! mapping threads do, on 1 thread and then on every core at once: map a row, and right
//! after, while the customers are in the cache, `Classifier::classify` them (the match key,
//! the SHA-256 of the customer's JSON, the lookup in the snapshot), 64 customers at a time
//! (about 100 kB: they stay in the core's own cache, as one customer does in a run; a
//! timer per row costs 100–170 ns here, more than a tenth of what it would time). Only
//! `classify` is timed. With T threads, thread t takes every T-th row; the check's rate on T threads is
//! the rows over the longest thread's time in `classify` (the threads run at once, so they
//! share the caches and the memory bus as a run's do). Each rate is given twice: by wall
//! time, and by the thread's own CPU time (what the check costs, whoever else the shared
//! machine runs: wall time there counts the moments the thread waited for a core). Apart,
//! in row order on one thread as
//! a run's reader does it, `Classifier::settle` (the duplicate-key check). Prints rows/s of
//! each and what the verdicts were, as a check that they are right.

use std::time::{Duration, Instant};

use cdpjob::customer::Customer;
use cdpjob::job::{self, Job};
use cdpjob::mapping::{Mapper, Outcome};
use cdpjob::source::{self, Record};
use cdpjob::sync::{Classified, Classifier, Snapshot, Verdict, tag};

/// Customers classified at a time, right after their mapping.
const CHUNK: usize = 64;

// The allocator of the cdpjob binary (src/main.rs): mapping allocates, and glibc's malloc
// is slower at that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = std::env::args().nth(1).expect("usage: sync_check JOB.yaml");
    let job = job::load(path.as_ref(), &Default::default()).unwrap_or_else(|e| {
        eprintln!("{}", e.render());
        std::process::exit(2)
    });
    let (merge_type, strict) = (job.spec.merge.wire_type(), job.spec.strict_binding);

    let started = Instant::now();
    let mut pairs = Vec::new();
    each_customer(&job, 0, 1, |_, c| {
        if let Some(t) = tag::tag_of(&c, merge_type, strict) {
            let hash = if pairs.len() % 100 == 0 {
                !tag::short(&t.hash) // as if the state held another version
            } else {
                tag::short(&t.hash)
            };
            pairs.push((t.key_digest, hash));
        }
    });
    let snapshot = Snapshot::from_pairs(pairs);
    eprintln!(
        "snapshot of {} customers built in {:.1} s (mapping included)",
        snapshot.len(),
        started.elapsed().as_secs_f64()
    );
    let classifier = Classifier::new(snapshot, false, merge_type, strict);

    // One thread, keeping the verdicts for the duplicate check in row order.
    let mut verdicts: Vec<(u64, Classified)> = Vec::new();
    let one = check(&job, &classifier, 0, 1, |row, c| verdicts.push((row, c)));
    let (mut unchanged, mut to_send) = (0u64, 0u64);
    for (_, c) in &verdicts {
        match c.verdict {
            Verdict::Unchanged => unchanged += 1,
            Verdict::Send(_) => to_send += 1,
        }
    }
    let mut seen = classifier.seen();
    let mut duplicates = 0u64;
    let t = Instant::now();
    for (row, c) in verdicts.drain(..) {
        if Classifier::settle(&mut seen, c, row).is_err() {
            duplicates += 1;
        }
    }
    let settle_time = t.elapsed();
    let n = (unchanged + to_send) as f64;
    println!(
        "customers {}: unchanged {unchanged}, to send {to_send}, duplicate keys {duplicates}",
        unchanged + to_send
    );
    let rate = |d: Duration| n / d.as_secs_f64();
    println!(
        "verdict (key, SHA-256 of the JSON, snapshot lookup): {:.0} rows/s on one thread",
        rate(one.time)
    );
    println!(
        "by CPU time: verdict {:.0} rows/s on one thread",
        rate(one.cpu)
    );

    // Every core at once, as a run's mapping threads.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts: Vec<Checked> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (job, classifier) = (&job, &classifier);
                s.spawn(move || check(job, classifier, t, threads, |_, c| drop(c)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rows: u64 = parts.iter().map(|p| p.rows).sum();
    assert_eq!(rows, unchanged + to_send, "every thread's rows, once");
    let slowest = parts.iter().map(|p| p.time).max().unwrap_or_default();
    println!(
        "verdict on {threads} threads at once (as a run's mapping threads): {:.0} rows/s",
        rate(slowest)
    );
    let busiest = parts.iter().map(|p| p.cpu).max().unwrap_or_default();
    println!(
        "by CPU time: verdict on {threads} threads at once {:.0} rows/s",
        rate(busiest)
    );
    println!(
        "duplicate-key check (row order, one thread): {:.0} rows/s",
        rate(settle_time)
    );
    println!(
        "both on one thread: {:.0} rows/s",
        rate(one.time + settle_time)
    );
}

/// What one thread's share of the check took.
struct Checked {
    rows: u64,
    /// Wall time in `classify`.
    time: Duration,
    /// The thread's CPU time in `classify`.
    cpu: Duration,
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// Map every `threads`-th valid customer from the `part`-th, and time `classify` on each
/// chunk of them right after its mapping; `keep` gets each verdict (untimed).
fn check(
    job: &Job,
    classifier: &Classifier,
    part: usize,
    threads: usize,
    mut keep: impl FnMut(u64, Classified),
) -> Checked {
    let (mut rows, mut time, mut cpu) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut chunk: Vec<(u64, Customer)> = Vec::with_capacity(CHUNK);
    let mut verdicts = Vec::with_capacity(CHUNK);
    let mut run = |chunk: &mut Vec<(u64, Customer)>| {
        let (t, c0) = (Instant::now(), thread_cpu());
        for (_, c) in chunk.iter() {
            verdicts.push(classifier.classify(std::hint::black_box(c)));
        }
        cpu += thread_cpu() - c0;
        time += t.elapsed();
        rows += chunk.len() as u64;
        for ((row, _), v) in chunk.drain(..).zip(verdicts.drain(..)) {
            keep(row, v);
        }
    };
    each_customer(job, part, threads, |row, c| {
        chunk.push((row, c));
        if chunk.len() == CHUNK {
            run(&mut chunk);
        }
    });
    run(&mut chunk);
    Checked { rows, time, cpu }
}

/// Every valid customer of the job's source whose record index is `part` modulo
/// `threads`, in order, mapped on this thread, with its row number.
fn each_customer(job: &Job, part: usize, threads: usize, mut f: impl FnMut(u64, Customer)) {
    let spec = job.spec.source.as_ref().expect("a batch_create job");
    let mapping = job.spec.mapping.clone().unwrap_or_default();
    let mapper = Mapper::new(&mapping, job.spec.filter.as_deref(), &job.vars)
        .unwrap_or_else(|_| panic!("templates do not compile"));
    let session = mapper.session();
    let source = source::open(spec, &job.resolve(&spec.path)).expect("the source opens");
    let mut index = 0usize;
    source
        .for_each(&mut |record: Record| {
            index += 1;
            if (index - 1) % threads == part
                && let Outcome::Valid(c) = session.map(&record)
            {
                f(index as u64, c);
            }
            true
        })
        .expect("the source reads");
}
