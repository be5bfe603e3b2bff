//! Progress on stderr (never with --json): on a terminal a bar (or, when the total is
//! unknown, a spinner) with a message; otherwise a plain line every few seconds, for logs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the plain (non-terminal) line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(3);

pub struct Progress {
    quiet: bool,
    started: Instant,
    last: Instant,
    bar: Option<indicatif::ProgressBar>,
    /// Work done so far in the bar's unit (e.g. bytes of the source read), when known.
    position: Option<Arc<AtomicU64>>,
}

impl Progress {
    /// `total` and `position` drive the bar and its ETA; without a total, a spinner.
    pub fn new(quiet: bool, total: Option<u64>, position: Option<Arc<AtomicU64>>) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| match total {
            Some(total) => {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {percent:>3}% eta {eta} | {msg}",
                    )
                    .expect("a valid template"),
                );
                bar
            }
            None => {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        });
        Progress {
            quiet,
            started: Instant::now(),
            last: Instant::now(),
            bar,
            position,
        }
    }

    /// Units per second since this progress started.
    pub fn rate(&self, done: u64) -> f64 {
        done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// Show `message()`: always on the bar, at most every few seconds as a plain line.
    pub fn tick(&mut self, message: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            if let Some(p) = &self.position {
                bar.set_position(p.load(Ordering::Relaxed));
            }
            bar.set_message(message());
            return;
        }
        if self.quiet || self.last.elapsed() < PLAIN_EVERY {
            return;
        }
        self.last = Instant::now();
        eprintln!("progress: {}", message());
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// A run that stops part way leaves no bar drawn (nor a spinner ticking) behind it.
    fn drop(&mut self) {
        self.finish();
    }
}
