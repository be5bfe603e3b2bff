//! Fault injection for tests and demos, reproducible from a seed: latency, HTTP 5xx, HTTP 429
//! with `Retry-After`, connections dropped after the request was applied (so the client is
//! left in doubt), and one expired timestamp.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    pub latency: Duration,
    /// Probabilities in [0, 1].
    pub fail_5xx: f64,
    pub fail_429: f64,
    pub drop: f64,
    /// Answer the first authenticated request with 1004 (timestamp expired).
    pub expire_ts_once: bool,
    pub seed: u64,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError,
    TooManyRequests,
    /// Apply the request, then break the connection instead of answering.
    DropAfterApply,
}

#[derive(Debug)]
pub struct Faults {
    cfg: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    expired: AtomicBool,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Faults {
        Faults {
            rng: Mutex::new(fastrand::Rng::with_seed(cfg.seed)),
            expired: AtomicBool::new(false),
            cfg,
        }
    }

    pub fn latency(&self) -> Duration {
        self.cfg.latency
    }

    /// One roll per request, in arrival order: the same seed and order give the same faults.
    pub fn roll(&self) -> Fault {
        let mut rng = self.rng.lock().expect("rng lock");
        let (a, b, c) = (rng.f64(), rng.f64(), rng.f64());
        if a < self.cfg.fail_5xx {
            Fault::ServerError
        } else if b < self.cfg.fail_429 {
            Fault::TooManyRequests
        } else if c < self.cfg.drop {
            Fault::DropAfterApply
        } else {
            Fault::None
        }
    }

    /// True exactly once when `expire_ts_once` is set.
    pub fn expire_now(&self) -> bool {
        self.cfg.expire_ts_once && !self.expired.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let cfg = FaultConfig {
            fail_5xx: 0.3,
            fail_429: 0.3,
            drop: 0.3,
            seed: 42,
            ..Default::default()
        };
        let a: Vec<Fault> = {
            let f = Faults::new(cfg.clone());
            (0..50).map(|_| f.roll()).collect()
        };
        let b: Vec<Fault> = {
            let f = Faults::new(cfg);
            (0..50).map(|_| f.roll()).collect()
        };
        assert_eq!(a, b);
        assert!(
            a.contains(&Fault::ServerError)
                && a.contains(&Fault::TooManyRequests)
                && a.contains(&Fault::DropAfterApply)
        );
    }

    #[test]
    fn no_faults_by_default() {
        let f = Faults::new(FaultConfig::default());
        assert!((0..100).all(|_| f.roll() == Fault::None));
        assert!(!f.expire_now());
    }
}
