//! The order the simulator's query endpoint returns customers in (`--order`,
//! `CDPJOB_SIM_ORDER`). The vendor documents none (CDP-API §5), so a client must page
//! correctly whichever way the ids run: ascending, descending, or neither.
//!
//! `paging.after` is always the last id of a page, and the next page is whatever follows
//! that id's position in the order. For `shuffled` the position is a keyed hash of the id,
//! a pure function of the id and the seed: it needs no state, so it is the same on every
//! page, after a restart of a `--state` simulator, and for an id that no longer matches.

use std::collections::BTreeMap;
use std::ops::Bound;

/// The values `--order` and `CDPJOB_SIM_ORDER` accept, for messages.
pub const ORDER_VALUES: &str = "asc, desc or shuffled";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Ids ascending (what the simulator always did).
    #[default]
    Asc,
    /// Ids descending: `after` means "ids below".
    Desc,
    /// A fixed pseudo-random order, from the seed.
    Shuffled,
}

impl std::str::FromStr for Order {
    type Err = String;

    fn from_str(s: &str) -> Result<Order, String> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            "shuffled" => Ok(Order::Shuffled),
            other => Err(format!("{other:?} is not an order: use {ORDER_VALUES}")),
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
            Order::Shuffled => "shuffled",
        })
    }
}

/// SplitMix64's finalizer: a bijection on u64 that scatters neighbouring inputs (ids handed
/// out one after another differ in their low bits only). Not cryptographic: the order only
/// has to look unordered, and be the same in every process.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The customers of a `shuffled` store by their position in the order. A position is a
/// bijection of the id (the id xor a key, mixed), so two ids never share one and an id's
/// position can be found without looking it up.
#[derive(Debug)]
pub(super) struct ShuffleIndex {
    key: u64,
    by_position: BTreeMap<u64, i64>,
}

impl ShuffleIndex {
    pub(super) fn new(seed: u64) -> ShuffleIndex {
        ShuffleIndex {
            // Mixed, so that seeds 0, 1, 2… do not give orders that differ in one bit.
            key: mix(seed ^ 0x005e_ed0f_0dde_c0de),
            by_position: BTreeMap::new(),
        }
    }

    fn position(&self, id: i64) -> u64 {
        mix(id as u64 ^ self.key)
    }

    pub(super) fn insert(&mut self, id: i64) {
        self.by_position.insert(self.position(id), id);
    }

    pub(super) fn remove(&mut self, id: i64) {
        self.by_position.remove(&self.position(id));
    }

    /// The ids in order, starting just after `after`'s position (from the first without).
    pub(super) fn after(&self, after: Option<i64>) -> impl DoubleEndedIterator<Item = i64> + '_ {
        let from = after.map_or(Bound::Unbounded, |id| Bound::Excluded(self.position(id)));
        self.by_position
            .range((from, Bound::Unbounded))
            .map(|(_, id)| *id)
    }

    /// The ids before `before`'s position (all without), in order: walk it with `.rev()`.
    pub(super) fn before(&self, before: Option<i64>) -> impl DoubleEndedIterator<Item = i64> + '_ {
        let to = before.map_or(Bound::Unbounded, |id| Bound::Excluded(self.position(id)));
        self.by_position
            .range((Bound::Unbounded, to))
            .map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse_and_print_and_a_wrong_one_names_the_choices() {
        for o in [Order::Asc, Order::Desc, Order::Shuffled] {
            assert_eq!(o.to_string().parse::<Order>(), Ok(o));
        }
        let e = "random".parse::<Order>().unwrap_err();
        assert!(e.contains("\"random\"") && e.contains(ORDER_VALUES), "{e}");
        assert!("ASC".parse::<Order>().is_err());
    }

    #[test]
    fn a_shuffle_is_fixed_by_its_seed_and_visits_every_id_once() {
        let ids: Vec<i64> = (1_000..1_200).collect();
        let order = |seed: u64| {
            let mut index = ShuffleIndex::new(seed);
            for id in &ids {
                index.insert(*id);
            }
            index.after(None).collect::<Vec<i64>>()
        };
        let a = order(1);
        assert_eq!(a, order(1), "the same seed, the same order");
        assert_ne!(a, order(2), "another seed, another order");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ids, "each id once");
        assert!(a.windows(2).any(|w| w[0] > w[1]) && a.windows(2).any(|w| w[0] < w[1]));
        // Continuing after any id gives the rest of the order; before it, what came first.
        let mut index = ShuffleIndex::new(1);
        for id in &ids {
            index.insert(*id);
        }
        let rest: Vec<i64> = index.after(Some(a[57])).collect();
        assert_eq!(rest, a[58..]);
        let head: Vec<i64> = index.before(Some(a[57])).collect();
        assert_eq!(head, a[..57]);
        // An id removed keeps its position: paging after it still continues correctly.
        index.remove(a[57]);
        assert_eq!(index.after(Some(a[57])).collect::<Vec<_>>(), a[58..]);
        assert_eq!(index.after(None).count(), ids.len() - 1);
    }
}
