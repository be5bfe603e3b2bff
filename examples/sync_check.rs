//! The unchanged check of `sync: changed` on its own, apart from reading and mapping:
//! `cargo run --release --example sync_check JOB.yaml` (benches/sync.sh runs it).
//!
//! Maps the job's source once on one thread to build the state's snapshot from its
//! customers (every 100th with another content hash, so 1% come out changed), then maps it
//! again in chunks of 1,024 customers and times, per chunk, only what a run adds per row
//! with change detection: `Classifier::classify` (the match key, the SHA-256 of the
//! customer's JSON, the lookup in the snapshot) and, apart, `Classifier::check_duplicate`
//! (the source's earlier keys, in row order), both on one thread (a run does the verdicts
//! on all its mapping threads at once). Mapping is not timed. Prints rows/s of each by
//! wall time and what the verdicts were, as a check that they are right.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdpjob::customer::Customer;
use cdpjob::job::{self, Job};
use cdpjob::mapping::{Mapper, Outcome};
use cdpjob::source::{self, Record};
use cdpjob::sync::{Classifier, Snapshot, Verdict, tag};

/// Customers per timed chunk: a run checks each customer as soon as it is mapped, while
/// it is in the cache; a chunk of 1,024 (about 0.7 MB) stays in it too.
const CHUNK: usize = 1024;

// The allocator of the cdpjob binary (src/main.rs): the check allocates, and glibc's
// malloc is slower at that.
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
    each_customer(&job, |c| {
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
    let classifier = Arc::new(Classifier::new(snapshot, false, merge_type, strict));

    let mut chunk = Vec::with_capacity(CHUNK);
    let (mut verdict_time, mut duplicate_time) = (Duration::ZERO, Duration::ZERO);
    let mut parallel_time = Duration::ZERO;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut rows, mut unchanged, mut to_send, mut duplicates) = (0u64, 0u64, 0u64, 0u64);
    let mut seen = classifier.seen();
    let mut classified = Vec::with_capacity(CHUNK);
    let mut run_chunk = |chunk: &mut Vec<Customer>| {
        let t = Instant::now();
        for c in chunk.iter() {
            let cl = classifier.classify(c);
            match cl.verdict {
                Verdict::Unchanged => unchanged += 1,
                Verdict::Send(_) => to_send += 1,
            }
            classified.push(cl);
        }
        verdict_time += t.elapsed();
        // The same chunk again on every core at once, as a run's mapping threads do it.
        let t = Instant::now();
        std::thread::scope(|s| {
            for part in chunk.chunks(chunk.len().div_ceil(threads).max(1)) {
                let classifier = &classifier;
                s.spawn(move || {
                    for c in part {
                        std::hint::black_box(classifier.classify(c));
                    }
                });
            }
        });
        parallel_time += t.elapsed();
        let t = Instant::now();
        for cl in classified.drain(..) {
            rows += 1;
            if Classifier::settle(&mut seen, cl, rows).is_err() {
                duplicates += 1;
            }
        }
        duplicate_time += t.elapsed();
        chunk.clear();
    };
    each_customer(&job, |c| {
        chunk.push(c);
        if chunk.len() == CHUNK {
            run_chunk(&mut chunk);
        }
    });
    run_chunk(&mut chunk);
    let n = (unchanged + to_send) as f64;
    println!(
        "customers {}: unchanged {unchanged}, to send {to_send}, duplicate keys {duplicates}",
        unchanged + to_send
    );
    let rate = |d: Duration| n / d.as_secs_f64();
    println!(
        "verdict (key, SHA-256 of the JSON, snapshot lookup): {:.0} rows/s on one thread",
        rate(verdict_time)
    );
    println!(
        "duplicate-key check (row order): {:.0} rows/s on one thread",
        rate(duplicate_time)
    );
    println!("both: {:.0} rows/s", rate(verdict_time + duplicate_time));
    println!(
        "verdict on {threads} threads at once (as a run's mapping threads): {:.0} rows/s",
        rate(parallel_time)
    );
}

/// Every valid customer of the job's source, in order, mapped on this thread.
fn each_customer(job: &Job, mut f: impl FnMut(Customer)) {
    let spec = job.spec.source.as_ref().expect("a batch_create job");
    let mapping = job.spec.mapping.clone().unwrap_or_default();
    let mapper = Mapper::new(&mapping, job.spec.filter.as_deref(), &job.vars)
        .unwrap_or_else(|_| panic!("templates do not compile"));
    let session = mapper.session();
    let source = source::open(spec, &job.resolve(&spec.path)).expect("the source opens");
    source
        .for_each(&mut |record: Record| {
            if let Outcome::Valid(c) = session.map(&record) {
                f(c);
            }
            true
        })
        .expect("the source reads");
}
