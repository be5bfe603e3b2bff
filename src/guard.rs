//! Guards (SPEC §7, §12 R10): limits past which an import refuses to start, or stops, with
//! exit 4, so that a broken mapping or a broken target never reaches the API wholesale.
//! This is the arithmetic and the wording, in one place; the import runs the checks (the
//! `max_rejected` pre-pass before any run directory exists, `max_failed` as answers
//! arrive) and `plan` shows the verdict.

use serde::Serialize;

use crate::job::model::Limit;

/// A `max_failed` percentage is checked only once this many rows have been answered: on
/// the first few, one failure would be a large share of a healthy run (R10).
pub const MIN_ANSWERED: u64 = 100;

/// The `max_rejected` guard over a whole source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedVerdict {
    pub limit: Limit,
    pub rejected: u64,
    /// What a percentage is of: the rows the filter did not skip.
    pub of_rows: u64,
    /// Whether the run may go on.
    pub passes: bool,
}

impl RejectedVerdict {
    /// The verdict on `rejected` rows out of `rows`, `skipped` of them by the filter.
    pub fn of(limit: Limit, rejected: u64, rows: u64, skipped: u64) -> RejectedVerdict {
        let of_rows = rows.saturating_sub(skipped);
        RejectedVerdict {
            limit,
            rejected,
            of_rows,
            passes: !limit.exceeded(rejected, of_rows),
        }
    }

    /// `120 of 1000 rows rejected (12.0%), above the limit of 5%`.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} row{} rejected ({}), {} the limit of {}",
            self.rejected,
            self.of_rows,
            plural(self.of_rows),
            share(self.rejected, self.of_rows),
            if self.passes { "within" } else { "above" },
            self.limit
        )
    }
}

/// Whether `failed` rows out of `answered` (created + failed) are past `max_failed`: a
/// number of rows at any time, a percentage once [`MIN_ANSWERED`] rows are answered.
pub fn failed_exceeded(limit: Limit, failed: u64, answered: u64) -> bool {
    match limit {
        Limit::Rows(_) => limit.exceeded(failed, answered),
        Limit::Percent(_) => answered >= MIN_ANSWERED && limit.exceeded(failed, answered),
    }
}

/// The reason of a `max_failed` stop, as the journal and the summary give it.
pub fn failed_reason(limit: Limit, failed: u64, answered: u64) -> String {
    format!(
        "guard max_failed: {failed} of {answered} row{} answered failed ({}), above the limit of {limit}: no further request was sent",
        plural(answered),
        share(failed, answered)
    )
}

/// `12.3%` of `base`, one decimal.
fn share(count: u64, base: u64) -> String {
    if base == 0 {
        return "0%".into();
    }
    format!("{:.1}%", count as f64 * 100.0 / base as f64)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_percentage_is_of_the_rows_the_filter_keeps() {
        // 1000 rows, 800 skipped: 11 rejected of the 200 kept is 5.5%, above 5%…
        let v = RejectedVerdict::of(Limit::Percent(5.0), 11, 1000, 800);
        assert!(!v.passes);
        assert_eq!(v.of_rows, 200);
        assert_eq!(
            v.describe(),
            "11 of 200 rows rejected (5.5%), above the limit of 5%"
        );
        // …and 10 is 5%, the limit itself, which passes (of all 1000 rows it would be 1.1%).
        assert!(RejectedVerdict::of(Limit::Percent(5.0), 10, 1000, 800).passes);
        assert!(RejectedVerdict::of(Limit::Rows(10), 10, 1000, 0).passes);
        assert!(!RejectedVerdict::of(Limit::Rows(10), 11, 1000, 0).passes);
        // A source the filter skips entirely rejects nothing of nothing.
        assert!(RejectedVerdict::of(Limit::Percent(0.0), 0, 50, 50).passes);
    }

    #[test]
    fn a_failed_percentage_waits_for_100_answered_rows() {
        let five = Limit::Percent(5.0);
        // 50 of 99 failed: far above 5%, but too few answers to judge yet.
        assert!(!failed_exceeded(five, 50, 99));
        assert!(failed_exceeded(five, 50, 100));
        assert!(!failed_exceeded(five, 5, 100) && failed_exceeded(five, 6, 100));
        // A number of rows is absolute, from the first answer on.
        assert!(failed_exceeded(Limit::Rows(3), 4, 4));
        assert!(!failed_exceeded(Limit::Rows(3), 3, 1_000_000));
        assert_eq!(
            failed_reason(five, 6, 100),
            "guard max_failed: 6 of 100 rows answered failed (6.0%), above the limit of 5%: no further request was sent"
        );
    }
}
