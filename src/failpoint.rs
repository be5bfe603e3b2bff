//! Crash injection for the crash-safety tests, compiled only with the `failpoints` feature.
//!
//! `CDPJOB_FAILPOINT=name` (or `name:N` for the N-th time it is reached) makes the process
//! abort at `failpoint!("name")` — no destructors, no flushing, like a SIGKILL at exactly that
//! point. Without the feature the macro expands to nothing.

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    static ANY: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("CDPJOB_FAILPOINT") else {
        return;
    };
    let (target, nth) = match spec.split_once(':') {
        Some((t, n)) => (t.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if target != name {
        return;
    }
    ANY.fetch_add(1, Ordering::Relaxed);
    let mut counts = COUNTS.lock().expect("failpoint lock");
    let count = match counts.iter_mut().find(|(n, _)| n == name) {
        Some((_, c)) => {
            *c += 1;
            *c
        }
        None => {
            counts.push((name.to_string(), 1));
            1
        }
    };
    if count == nth {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}

#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}
