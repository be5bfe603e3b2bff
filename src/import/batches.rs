//! Deterministic batching: the ordered stream of mapped rows becomes units of `batch_size`
//! valid customers, each also owning the rejected and skipped rows that came before it, so a
//! unit covers a range of source rows (every row in it for a source; a retry's rows are a
//! selection, with gaps). The same source and job always give the same units, which is what
//! lets a resume resend "batch k" with exactly the same rows.

use crate::api::wire::SerializedCustomers;
use crate::customer::{Customer, FieldError};
use crate::mapping::Outcome;
use crate::source::Record;
use crate::sync::SyncTag;

#[derive(Debug, Clone, Default)]
pub struct BatchUnit {
    pub seq: u64,
    pub first_row: u64,
    pub last_row: u64,
    /// Rows in the unit, counted: a retry's row numbers have gaps.
    pub row_count: u64,
    /// The valid customers, in order, serialized once as they are sent, and the source row
    /// of each (kept apart so that a part of the batch is a slice of the request body as
    /// it is, never a copy).
    pub customers: SerializedCustomers,
    pub customer_rows: Vec<u64>,
    /// The source record of each customer, for the line of one that fails (SPEC §7).
    pub records: Vec<Record>,
    /// Each customer's match key and hash, recorded in the sync state once it is confirmed
    /// (`sync: changed` only; `None` for a customer without a match key).
    pub tags: Vec<Option<SyncTag>>,
    pub rejected: Vec<Rejection>,
    pub skipped: u64,
    /// Rows the sync state already holds exactly so: not sent.
    pub unchanged: u64,
}

/// A mapped row as a batch takes it: a valid customer already written as the JSON a
/// request carries. Written on the mapping thread that made the customer, its strings are
/// freed where they were allocated (freeing them on the batching thread, a dozen a row,
/// cost more than writing the JSON), and a batch copies one run of bytes.
#[derive(Debug, Clone)]
pub enum Row {
    Valid(Vec<u8>),
    Rejected(Vec<FieldError>),
    Skipped,
}

impl Row {
    pub fn of(outcome: Outcome) -> Row {
        match outcome {
            Outcome::Valid(c) => Row::Valid(Row::json(&c)),
            Outcome::Rejected(errors) => Row::Rejected(errors),
            Outcome::Skipped => Row::Skipped,
        }
    }

    /// `customer`'s JSON, allocated at its size.
    pub fn json(customer: &Customer) -> Vec<u8> {
        crate::customer_json::with_written(customer, <[u8]>::to_vec)
    }
}

/// A row refused locally: why, and the record as read (SPEC §7 `"record"`).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub row: u64,
    pub errors: Vec<FieldError>,
    pub record: Record,
}

impl BatchUnit {
    pub fn rows(&self) -> u64 {
        self.row_count
    }
}

pub struct Batcher {
    size: usize,
    next_seq: u64,
    current: BatchUnit,
}

impl Batcher {
    pub fn new(size: usize) -> Batcher {
        Batcher {
            size: size.max(1),
            next_seq: 0,
            current: BatchUnit::default(),
        }
    }

    /// Add one row; returns a unit when it is full.
    pub fn push(&mut self, row: u64, mapped: Row, record: Record) -> Option<BatchUnit> {
        self.push_tagged(row, mapped, record, None)
    }

    /// Add one row, a valid customer's with its sync tag.
    pub fn push_tagged(
        &mut self,
        row: u64,
        mapped: Row,
        record: Record,
        tag: Option<SyncTag>,
    ) -> Option<BatchUnit> {
        self.start(row);
        match mapped {
            Row::Valid(json) => {
                self.current.customers.push_json(&json);
                self.current.customer_rows.push(row);
                self.current.records.push(record);
                self.current.tags.push(tag);
            }
            Row::Rejected(errors) => self.current.rejected.push(Rejection {
                row,
                errors,
                record,
            }),
            Row::Skipped => self.current.skipped += 1,
        }
        (self.current.customers.len() == self.size).then(|| self.take())
    }

    /// Add a row the sync state holds unchanged (counted, never sent).
    pub fn push_unchanged(&mut self, row: u64) {
        self.start(row);
        self.current.unchanged += 1;
    }

    fn start(&mut self, row: u64) {
        if self.current.first_row == 0 {
            self.current.first_row = row;
        }
        self.current.last_row = row;
        self.current.row_count += 1;
    }

    /// The last, partial unit (possibly with no customers, only rejected or skipped rows).
    pub fn finish(mut self) -> Option<BatchUnit> {
        (self.current.first_row != 0).then(|| self.take())
    }

    fn take(&mut self) -> BatchUnit {
        // The next batch has room for a whole batch (and a little more JSON than this
        // one had): its vectors never grow by copying what they hold.
        let next = BatchUnit {
            customers: SerializedCustomers::with_capacity(
                self.size,
                self.current.customers.bytes() + self.current.customers.bytes() / 8,
            ),
            customer_rows: Vec::with_capacity(self.size),
            records: Vec::with_capacity(self.size),
            tags: Vec::with_capacity(self.size),
            ..BatchUnit::default()
        };
        let mut unit = std::mem::replace(&mut self.current, next);
        unit.seq = self.next_seq;
        self.next_seq += 1;
        unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::{Customer, Field};

    fn valid() -> Outcome {
        Outcome::Valid(
            Customer::from_rendered([(Field::FullName, "A".into()), (Field::Email, "e".into())])
                .unwrap(),
        )
    }

    #[test]
    fn a_valid_row_is_batched_as_the_json_serde_writes_of_its_customer() {
        let c = Customer::from_rendered([
            (Field::FullName, "牛 \"A\"\n".into()),
            (Field::Email, "e@x.io".into()),
            (Field::Gender, "1".into()),
        ])
        .unwrap();
        let mut b = Batcher::new(2);
        for row in 1..=2 {
            let record = Record {
                row,
                line: row + 1,
                data: Err(crate::source::Unreadable::new("not read", b"")),
            };
            if let Some(unit) = b.push(row, Row::of(Outcome::Valid(c.clone())), record) {
                let one = serde_json::to_vec(&c).unwrap();
                assert_eq!(unit.customers.get(0), Some(&one[..]));
                assert_eq!(unit.customers.get(1), Some(&one[..]));
                return;
            }
        }
        panic!("two valid rows fill a batch of two");
    }

    #[test]
    fn units_cover_contiguous_rows() {
        let mut b = Batcher::new(2);
        let mut units = Vec::new();
        let outcomes = [
            valid(),
            Outcome::Skipped,
            valid(),
            Outcome::Rejected(vec![]),
            valid(),
            Outcome::Skipped,
        ];
        for (i, o) in outcomes.into_iter().enumerate() {
            let row = i as u64 + 1;
            let record = Record {
                row,
                line: row + 1,
                data: Err(crate::source::Unreadable::new("not read", b"")),
            };
            units.extend(b.push(row, Row::of(o), record));
        }
        units.extend(b.finish());
        let shape: Vec<(u64, u64, u64, usize, usize, u64)> = units
            .iter()
            .map(|u| {
                (
                    u.seq,
                    u.first_row,
                    u.last_row,
                    u.customers.len(),
                    u.rejected.len(),
                    u.skipped,
                )
            })
            .collect();
        assert_eq!(shape, vec![(0, 1, 3, 2, 0, 1), (1, 4, 6, 1, 1, 1)]);
        assert_eq!(units.iter().map(BatchUnit::rows).sum::<u64>(), 6);
    }

    #[test]
    fn rows_are_counted_when_their_numbers_have_gaps() {
        let mut b = Batcher::new(10);
        for row in [3, 9, 40] {
            let record = Record {
                row,
                line: 0,
                data: Err(crate::source::Unreadable::new("not read", b"")),
            };
            assert!(b.push(row, Row::of(valid()), record).is_none());
        }
        let unit = b.finish().unwrap();
        assert_eq!((unit.first_row, unit.last_row, unit.rows()), (3, 40, 3));
    }
}
