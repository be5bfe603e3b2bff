//! The import's guards (SPEC §7, §12 R10): the `max_rejected` pre-pass over the whole source
//! before anything is sent (and before the run directory exists), and the `max_failed`
//! watch the scheduler keeps as answers arrive. The arithmetic and the wording are
//! [`crate::guard`]'s; the counting pass is `plan`'s, so a run refuses on exactly what
//! `plan` shows.

use serde_json::json;

use super::Counts;
use crate::error::{Error, Result};
use crate::guard::{self, RejectedVerdict};
use crate::job::Job;
use crate::job::model::Limit;
use crate::plan;
use crate::runner::Stop;

/// `max_rejected`: map every row as `plan` does and refuse the run (exit 4, nothing sent,
/// no run directory) when more are rejected than the limit allows.
pub fn pre_pass(job: &Job, quiet: bool) -> Result<()> {
    check_rejected(job, quiet, || plan::count_rows(job, 0))
}

/// [`pre_pass`] over the rows `count` reads and maps (a retry's: another run's records).
pub fn check_rejected(
    job: &Job,
    quiet: bool,
    count: impl FnOnce() -> Result<plan::Tally>,
) -> Result<()> {
    let Some(limit) = job.spec.guard.max_rejected else {
        return Ok(());
    };
    if !quiet {
        eprintln!("guard max_rejected {limit}: reading every row before the first request");
    }
    let tally = count()?;
    let c = &tally.counts;
    let verdict = RejectedVerdict::of(limit, c.rejected, c.rows, c.skipped);
    if verdict.passes {
        if !quiet {
            eprintln!("guard max_rejected: {}", verdict.describe());
        }
        return Ok(());
    }
    Err(Error::Guard {
        reason: format!(
            "guard max_rejected: {}; the run was refused and nothing was sent",
            verdict.describe()
        ),
        report: format!(
            "rejected by reason:\n{}fix the mapping or the source (`cdpjob plan {}` shows these rows), then run again; raise guard.max_rejected only if these rejections are expected\n",
            plan::render_reasons(&tally.rejected_by_reason),
            job.path.display()
        ),
        detail: json!({
            "name": "max_rejected",
            "limit": limit,
            "rejected": verdict.rejected,
            "of_rows": verdict.of_rows,
            "counts": tally.counts,
            "rejected_by_reason": tally.rejected_by_reason,
        }),
    })
}

/// `max_failed`, as answers arrive: the rows answered so far, by this invocation and by the
/// ones before it (a plain resume checks the guard again from where the run was).
#[derive(Debug)]
pub struct FailedWatch {
    limit: Option<Limit>,
    failed: u64,
    answered: u64,
}

impl FailedWatch {
    /// A watch over `limit` (none: off), the checkpoint's `done` counts already answered.
    pub fn new(limit: Option<Limit>, done: &Counts) -> FailedWatch {
        FailedWatch {
            limit,
            failed: done.failed,
            answered: done.created + done.failed,
        }
    }

    /// Count a batch's answers; the stop, when they take the run past the limit.
    pub fn add(&mut self, batch: &Counts) -> Option<Stop> {
        self.failed += batch.failed;
        self.answered += batch.created + batch.failed;
        self.check()
    }

    /// The stop, when the run is past the limit now.
    pub fn check(&self) -> Option<Stop> {
        let limit = self.limit?;
        guard::failed_exceeded(limit, self.failed, self.answered).then(|| {
            Stop::guard(
                "max_failed",
                guard::failed_reason(limit, self.failed, self.answered),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(created: u64, failed: u64) -> Counts {
        Counts {
            rows: created + failed,
            created,
            failed,
            ..Counts::default()
        }
    }

    #[test]
    fn the_watch_counts_what_was_answered_before_a_resume() {
        // Stopped at 10 failed of 100: a plain resume stops again before any request.
        let watch = FailedWatch::new(Some(Limit::Percent(5.0)), &answered(90, 10));
        let stop = watch.check().expect("still above the limit");
        assert_eq!(stop.guard, Some("max_failed"));
        assert!(stop.resumable);
        // With --no-guard there is no limit at all.
        assert!(FailedWatch::new(None, &answered(90, 10)).check().is_none());
    }

    #[test]
    fn a_percentage_waits_for_100_answers_then_counts_every_one() {
        let mut watch = FailedWatch::new(Some(Limit::Percent(5.0)), &Counts::default());
        // Rejected and skipped rows are not answers.
        let mut local = answered(0, 0);
        local.rejected = 500;
        local.skipped = 500;
        assert!(watch.add(&local).is_none());
        assert!(
            watch.add(&answered(40, 10)).is_none(),
            "50 answered: too few to judge"
        );
        assert!(watch.add(&answered(49, 0)).is_none(), "99 answered");
        assert!(
            watch.add(&answered(1, 0)).is_some(),
            "10 of 100 is above 5%"
        );
    }
}
