//! Crash and failure injection for the crash-safety tests, compiled only with the
//! `failpoints` feature.
//!
//! `CDPJOB_FAILPOINT=name` (or `name:N` for the N-th time it is reached) makes the process
//! abort at `failpoint!("name")` — no destructors, no flushing, like a SIGKILL at exactly that
//! point. `name:N:error` instead makes `failpoint_io!("name")` fail with an I/O error there,
//! as a full disk or a failed fsync would: the run must stop, resumably, and exit. Without
//! the feature both macros expand to nothing.

/// What a failpoint does when it is reached.
#[cfg(feature = "failpoints")]
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Continue,
    Abort,
    Fail,
}

#[cfg(feature = "failpoints")]
fn reached(name: &str) -> Action {
    use std::sync::Mutex;
    static COUNTS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let Ok(spec) = std::env::var("CDPJOB_FAILPOINT") else {
        return Action::Continue;
    };
    let mut parts = spec.split(':');
    if parts.next() != Some(name) {
        return Action::Continue;
    }
    let nth: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let fail = parts.next() == Some("error");
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
    match (count == nth, fail) {
        (false, _) => Action::Continue,
        (true, false) => Action::Abort,
        (true, true) => Action::Fail,
    }
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if reached(name) != Action::Continue {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}

/// An I/O error at `name` when it is armed with `:error`; an abort when armed without.
#[cfg(feature = "failpoints")]
pub fn io(name: &str) -> std::io::Result<()> {
    match reached(name) {
        Action::Continue => Ok(()),
        Action::Abort => {
            eprintln!("failpoint {name} reached: aborting");
            std::process::abort();
        }
        Action::Fail => Err(std::io::Error::other(format!(
            "failpoint {name}: injected I/O error"
        ))),
    }
}

/// Whether the failpoint `name` is reached armed (counted like the others), for a test that
/// makes a path misbehave on purpose rather than abort. Always false without the feature.
pub fn armed(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        reached(name) != Action::Continue
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}

/// `failpoint_io!("name")` in a function returning `io::Result`: fails there when armed.
#[macro_export]
macro_rules! failpoint_io {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::io($name)?;
    };
}
