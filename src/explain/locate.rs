//! Finding row N the way a run meets it: the source read in order, every row before it
//! mapped, checked against the sync state and batched by the run's own [`Batcher`], so the
//! batch it falls in and its place there are the run's, not a guess. Rejected, skipped and
//! unchanged rows take no place in a request: the batcher counts only sent customers.
//! Reading stops once the batch holding the row is complete (or the source ends).

use std::sync::atomic::AtomicBool;

use crate::customer::FieldError;
use crate::import::batches::{BatchUnit, Batcher, Row};
use crate::mapping::{Mapper, Outcome};
use crate::pipeline;
use crate::source::{Record, RecordSource};
use crate::sync::{Classified, Classifier, Seen, Verdict};

/// Where a row ends up before anything is sent.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Mapped and checked: valid, rejected or skipped.
    Mapped(Outcome),
    /// Valid, and the sync state holds it exactly so: not sent.
    Unchanged,
}

impl Settled {
    pub fn name(&self) -> &'static str {
        match self {
            Settled::Mapped(Outcome::Valid(_)) => "valid",
            Settled::Mapped(Outcome::Rejected(_)) => "rejected",
            Settled::Mapped(Outcome::Skipped) => "skipped",
            Settled::Unchanged => "unchanged",
        }
    }

    /// The reasons of a rejected row.
    pub fn errors(&self) -> &[FieldError] {
        match self {
            Settled::Mapped(Outcome::Rejected(errors)) => errors,
            _ => &[],
        }
    }
}

/// The batch a row belongs to, as a run forms it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchPlace {
    /// The batch's number as the journal and `status` give it (from 0).
    pub seq: u64,
    pub first_row: u64,
    pub last_row: u64,
    /// Source rows the batch owns (sent or not).
    pub rows: u64,
    /// Customers it sends: the size of its request.
    pub customers: usize,
    /// The row's place among them, from 1; none for a row that is not sent.
    pub position: Option<usize>,
    /// The source row of each customer, in request order (to name the rows of a part).
    #[serde(skip)]
    pub customer_rows: Vec<u64>,
}

impl BatchPlace {
    fn of(unit: &BatchUnit, row: u64) -> BatchPlace {
        BatchPlace {
            seq: unit.seq,
            first_row: unit.first_row,
            last_row: unit.last_row,
            rows: unit.rows(),
            customers: unit.customers.len(),
            position: unit
                .customer_rows
                .iter()
                .position(|r| *r == row)
                .map(|i| i + 1),
            customer_rows: unit.customer_rows.clone(),
        }
    }
}

/// What reading the source for row N found.
pub enum Found {
    Row(Box<Located>),
    /// Row N is past the end: the source's last row (none when it has no rows at all).
    PastEnd {
        last_row: Option<u64>,
    },
    /// Row N falls between two rows the input has (a retry's rows are a selection).
    Gap {
        next_row: u64,
    },
}

/// Row N, found.
pub struct Located {
    pub record: Record,
    pub settled: Settled,
    /// With change detection: the verdict before the duplicate check (the match key).
    pub classified: Option<Classified>,
    pub batch: BatchPlace,
}

/// What the mapping threads hand on for one row, as the run's reader does.
type Sorted = (Outcome, Record, Option<Classified>);

/// Read `source` up to row `target` and on to the end of its batch; `classifier` is the
/// change detection a run of this job would use (none without `sync: changed`).
pub fn locate(
    source: Box<dyn RecordSource>,
    mapper: &Mapper,
    batch_size: usize,
    classifier: Option<&Classifier>,
    target: u64,
) -> std::io::Result<Found> {
    let mut batcher = Batcher::new(batch_size);
    let mut seen = classifier.map_or_else(Seen::default, Classifier::seen);
    let mut found: Option<(Record, Settled, Option<Classified>)> = None;
    let mut place: Option<BatchPlace> = None;
    let mut last_row = None;
    let mut gap = false;
    let classify = |record: Record, outcome: Outcome| -> Sorted {
        let verdict = match (classifier, &outcome) {
            (Some(c), Outcome::Valid(customer)) => Some(c.classify(customer)),
            _ => None,
        };
        (outcome, record, verdict)
    };
    pipeline::map_then_in_order(
        source,
        mapper,
        pipeline::default_workers(),
        &AtomicBool::new(false),
        &classify,
        |row, (outcome, record, classified)| {
            last_row = Some(row);
            if row > target && found.is_none() {
                gap = true;
                return false;
            }
            let settled = match classified.clone() {
                None => Settled::Mapped(outcome),
                Some(c) => match Classifier::settle(&mut seen, c, row) {
                    Err(duplicate) => Settled::Mapped(Outcome::Rejected(vec![duplicate])),
                    Ok(Verdict::Unchanged) => Settled::Unchanged,
                    Ok(Verdict::Send(_)) => Settled::Mapped(outcome),
                },
            };
            if row == target {
                found = Some((record.clone(), settled.clone(), classified));
            }
            let unit = match settled {
                Settled::Unchanged => {
                    batcher.push_unchanged(row);
                    None
                }
                Settled::Mapped(outcome) => batcher.push(row, Row::of(outcome), record),
            };
            // The first batch completed once the row is in is the row's.
            match unit {
                Some(unit) if found.is_some() => {
                    place = Some(BatchPlace::of(&unit, target));
                    false
                }
                _ => true,
            }
        },
    )?;
    let Some((record, settled, classified)) = found else {
        return Ok(match (gap, last_row) {
            (true, Some(next_row)) => Found::Gap { next_row },
            _ => Found::PastEnd { last_row },
        });
    };
    let batch = match place {
        Some(p) => p,
        None => {
            let unit = batcher
                .finish()
                .expect("the row read is in the batch not yet complete");
            BatchPlace::of(&unit, target)
        }
    };
    Ok(Found::Row(Box::new(Located {
        record,
        settled,
        classified,
        batch,
    })))
}
