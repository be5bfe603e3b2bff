//! What an import has done, as `checkpoint.json` records it: the batches whose results are
//! in the result files, those files' lengths at that moment (a resume cuts them back to
//! these lengths), and where every row counted so far ended up.

use serde::{Deserialize, Serialize};

/// What is done: the batches whose results are in the result files, and those files'
/// lengths at that moment (a resume cuts them back to these lengths).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every batch below this one is done…
    pub done_below: u64,
    /// …and these above it.
    pub done_above: Vec<u64>,
    pub created_len: u64,
    pub failed_len: u64,
    pub rejected_len: u64,
    pub counts: Counts,
}

impl Checkpoint {
    pub fn is_done(&self, seq: u64) -> bool {
        seq < self.done_below || self.done_above.contains(&seq)
    }

    pub fn mark_done(&mut self, seq: u64) {
        self.done_above.push(seq);
        self.done_above.sort_unstable();
        while self.done_above.first() == Some(&self.done_below) {
            self.done_above.remove(0);
            self.done_below += 1;
        }
    }
}

/// Where every source row ended up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows: u64,
    pub created: u64,
    pub failed: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// Rows whose customer the last sync already confirmed (SPEC §7); always present, 0
    /// while change detection is off (§12 R2).
    #[serde(default)]
    pub unchanged: u64,
}

impl Counts {
    /// The counts as the metrics file labels them (every outcome, zeros included).
    pub fn by_outcome(&self) -> crate::runner::metrics::Rows {
        vec![
            ("created", self.created),
            ("failed", self.failed),
            ("rejected", self.rejected),
            ("skipped", self.skipped),
            ("unchanged", self.unchanged),
        ]
    }

    pub fn add(&mut self, d: &Counts) {
        self.rows += d.rows;
        self.created += d.created;
        self.failed += d.failed;
        self.rejected += d.rejected;
        self.skipped += d.skipped;
        self.unchanged += d.unchanged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_batches_compress_into_a_prefix() {
        let mut c = Checkpoint::default();
        c.mark_done(1);
        c.mark_done(3);
        assert!(!c.is_done(0) && c.is_done(1) && !c.is_done(2) && c.is_done(3));
        c.mark_done(0);
        assert_eq!((c.done_below, c.done_above.clone()), (2, vec![3]));
        c.mark_done(2);
        assert_eq!((c.done_below, c.done_above.clone()), (4, vec![]));
    }
}
