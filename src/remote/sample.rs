//! A seeded sample of a run's created customers for `verify --sample N`: reservoir
//! sampling (Algorithm R) over the created lines as they are read, so the sample costs N
//! entries of memory whatever the run's size, and the same seed over the same lines draws
//! the same sample (the seed is printed, so a sample can be drawn again).

/// Keeps a uniform sample of `size` of the items pushed.
#[derive(Debug)]
pub struct Reservoir<T> {
    rng: fastrand::Rng,
    size: usize,
    seen: u64,
    kept: Vec<T>,
}

impl<T> Reservoir<T> {
    pub fn new(size: usize, seed: u64) -> Reservoir<T> {
        Reservoir {
            rng: fastrand::Rng::with_seed(seed),
            size,
            seen: 0,
            kept: Vec::with_capacity(size.min(1 << 16)),
        }
    }

    pub fn push(&mut self, item: T) {
        self.seen += 1;
        if self.kept.len() < self.size {
            self.kept.push(item);
        } else {
            // Item number `seen` replaces a kept one with probability size / seen.
            let at = self.rng.u64(..self.seen);
            if at < self.size as u64 {
                self.kept[at as usize] = item;
            }
        }
    }

    /// The items kept (in no particular order).
    pub fn into_items(self) -> Vec<T> {
        self.kept
    }
}

/// A seed for a sample asked for without one: printed, so it can be given again.
pub fn fresh_seed() -> u64 {
    // Small enough to type back.
    fastrand::u64(1..1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_sample_of_the_size_asked() {
        let draw = |seed| {
            let mut r = Reservoir::new(20, seed);
            (1..=1000u64).for_each(|i| r.push(i));
            let mut v = r.into_items();
            v.sort_unstable();
            v
        };
        let a = draw(7);
        assert_eq!(a.len(), 20);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        // Not just the first 20: the sample reaches over the whole input.
        assert!(a.iter().any(|i| *i > 500), "{a:?}");
        let mut small = Reservoir::new(20, 1);
        (1..=5u64).for_each(|i| small.push(i));
        assert_eq!(small.into_items(), [1, 2, 3, 4, 5]);
    }
}
