//! Generated customers (`--seed-customers N --seed-window START..END`, R16): benchmarks and
//! tests of windowed exports need many customers whose `created_at` spread over days, which
//! an import (all created within seconds of each other) cannot give. Names, phones and
//! e-mails are distinct and follow from the seed; creation times are spread evenly over the
//! window, so a query for a share of the window finds that share of the customers.

use serde_json::{Map, Value};

use crate::api::wire::is_api_datetime;

/// The most customers one seeding may ask for: every one is held in memory (~1.5 KB each),
/// and the generated phones have room for this many distinct ones.
pub const MAX_SEED_CUSTOMERS: u64 = 10_000_000;

/// `START..END`, both `yyyy-MM-dd HH:mm:ss` (UTC), END after START: the half-open window
/// the generated customers' creation times fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedWindow {
    /// Seconds since the Unix epoch.
    start: i64,
    end: i64,
}

impl std::str::FromStr for SeedWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<SeedWindow, String> {
        let wrong = || {
            format!(
                "{s:?} is not a window: write START..END, both yyyy-MM-dd HH:mm:ss \
                 (\"2026-01-01 00:00:00..2026-01-08 00:00:00\")"
            )
        };
        let (start, end) = s.split_once("..").ok_or_else(wrong)?;
        let (start, end) = (
            seconds(start.trim()).ok_or_else(wrong)?,
            seconds(end.trim()).ok_or_else(wrong)?,
        );
        if end <= start {
            return Err(format!("{s:?}: the window's end must be after its start"));
        }
        Ok(SeedWindow { start, end })
    }
}

impl std::fmt::Display for SeedWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", text(self.start), text(self.end))
    }
}

/// An API time (UTC) as seconds since the epoch.
fn seconds(t: &str) -> Option<i64> {
    if !is_api_datetime(t) {
        return None;
    }
    let dt = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t).ok()?;
    Some(
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// Seconds since the epoch as the store keeps times: `yyyy-MM-dd HH:mm:ss`, UTC.
fn text(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .expect("a time inside a parsed window")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// What to generate: `count` customers over `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeding {
    pub count: u64,
    pub window: SeedWindow,
}

impl Seeding {
    pub fn new(count: u64, window: SeedWindow) -> Result<Seeding, String> {
        if !(1..=MAX_SEED_CUSTOMERS).contains(&count) {
            return Err(format!(
                "{count} customers to seed: give between 1 and {MAX_SEED_CUSTOMERS}"
            ));
        }
        Ok(Seeding { count, window })
    }

    /// The customers in creation order: each one's fields (batch_create names) and
    /// `created_at`. Customer i is created at START + ⌊i × (END − START) / N⌋, so the times
    /// never decrease and stay inside the window.
    pub(super) fn customers(
        &self,
        seed: u64,
    ) -> impl Iterator<Item = (Map<String, Value>, String)> {
        let names = Syllables::new(seed);
        // Phones 86150xxxxxxxx: apart from the 86139… of the test leads, so an import
        // after a seeding adds customers instead of merging into generated ones.
        let offset = fastrand::Rng::with_seed(seed).u64(..PHONE_SPACE);
        let SeedWindow { start, end } = self.window;
        let (count, span) = (self.count, (end - start) as u64);
        (0..count).map(move |i| {
            let (first, last) = names.name(i);
            let phone = format!("86150{:08}", (offset + i) % PHONE_SPACE);
            let email = format!(
                "{}.{}.{i}@seed.example",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            );
            let mut fields = Map::new();
            fields.insert("full_name".into(), format!("{first} {last}").into());
            fields.insert("first_name".into(), first.into());
            fields.insert("last_name".into(), last.into());
            fields.insert("whats_app_phone".into(), phone.into());
            fields.insert("email".into(), email.into());
            let at = start + (u128::from(i) * u128::from(span) / u128::from(count)) as i64;
            (fields, text(at))
        })
    }
}

/// How many distinct generated phones there are (8 digits after the prefix).
const PHONE_SPACE: u64 = 100_000_000;

/// Pronounceable names spelled from syllables: customer i's first name is two syllables
/// and its last name three, read off the base-16 digits of a scrambling of i within its
/// block of 16^5 (1,048,576), so the names of a block are distinct; past the first block a
/// number is added to the last name. No syllable is the start of another, so different
/// syllables never spell the same name. The seed shuffles the syllables.
struct Syllables {
    table: [&'static str; 16],
}

/// 16^5: the names one block of [`Syllables`] spells.
const NAME_BLOCK: u64 = 1 << 20;

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ren", "sa", "tu", "vel", "na", "ri", "do", "an", "be", "zo", "li", "mar",
    "ek",
];

impl Syllables {
    fn new(seed: u64) -> Syllables {
        let mut table = SYLLABLES;
        fastrand::Rng::with_seed(seed).shuffle(&mut table);
        Syllables { table }
    }

    fn name(&self, i: u64) -> (String, String) {
        // An odd multiplier is a bijection modulo 2^20: neighbours get unrelated names.
        let j = i.wrapping_mul(0x9_e3b5) % NAME_BLOCK;
        let digit = |n: u32| self.table[((j >> (4 * n)) & 15) as usize];
        let first = capitalized(&[digit(0), digit(1)]);
        let mut last = capitalized(&[digit(2), digit(3), digit(4)]);
        if i >= NAME_BLOCK {
            last.push_str(&(i / NAME_BLOCK).to_string());
        }
        (first, last)
    }
}

fn capitalized(parts: &[&str]) -> String {
    let word: String = parts.concat();
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn window(s: &str) -> SeedWindow {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_is_two_api_times_and_its_end_comes_after_its_start() {
        let w = window("2026-01-01 00:00:00..2026-01-08 12:00:00");
        assert_eq!(w.end - w.start, 7 * 86_400 + 12 * 3_600);
        assert_eq!(w.to_string(), "2026-01-01 00:00:00..2026-01-08 12:00:00");
        for bad in [
            "2026-01-01 00:00:00",
            "2026-01-01..2026-01-08",
            "2026-01-01 00:00:00..2026-02-30 00:00:00",
            "2026-01-01T00:00:00..2026-01-08 00:00:00",
        ] {
            let e = bad.parse::<SeedWindow>().unwrap_err();
            assert!(e.contains("yyyy-MM-dd HH:mm:ss"), "{bad}: {e}");
        }
        let e = "2026-01-08 00:00:00..2026-01-01 00:00:00"
            .parse::<SeedWindow>()
            .unwrap_err();
        assert!(e.contains("end must be after"), "{e}");
        assert!(Seeding::new(0, w).is_err());
        assert!(Seeding::new(MAX_SEED_CUSTOMERS + 1, w).is_err());
    }

    #[test]
    fn generated_customers_are_distinct_spread_over_the_window_and_follow_the_seed() {
        let seeding =
            Seeding::new(5_000, window("2026-01-01 00:00:00..2026-01-11 00:00:00")).unwrap();
        let all: Vec<_> = seeding.customers(7).collect();
        assert_eq!(all.len(), 5_000);
        for key in ["full_name", "whats_app_phone", "email"] {
            let distinct: HashSet<&Value> = all.iter().map(|(f, _)| &f[key]).collect();
            assert_eq!(distinct.len(), all.len(), "{key}");
        }
        let times: Vec<&String> = all.iter().map(|(_, t)| t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "creation order");
        assert_eq!(times[0], "2026-01-01 00:00:00");
        assert!(times[4_999].as_str() < "2026-01-11 00:00:00");
        // Evenly spread: half of them in the first half of the window.
        let first_half = times.iter().filter(|t| t.as_str() < "2026-01-06 00:00:00");
        assert_eq!(first_half.count(), 2_500);
        // The same seed gives the same customers, another seed others.
        let again: Vec<_> = seeding.customers(7).collect();
        assert_eq!(all, again);
        let other: Vec<_> = seeding.customers(8).collect();
        assert_ne!(all[0].0["full_name"], other[0].0["full_name"]);
        assert_ne!(all[0].0["whats_app_phone"], other[0].0["whats_app_phone"]);
        // Every phone passes the API's rule (digits only, at most 30).
        assert!(all.iter().all(|(f, _)| {
            let p = f["whats_app_phone"].as_str().unwrap();
            p.len() == 13 && p.bytes().all(|b| b.is_ascii_digit())
        }));
    }

    #[test]
    fn names_stay_distinct_past_a_million() {
        let names = Syllables::new(1);
        let a = names.name(5);
        let b = names.name(5 + NAME_BLOCK);
        assert_eq!(a.0, b.0);
        assert_ne!(format!("{} {}", a.0, a.1), format!("{} {}", b.0, b.1));
        // Within a block every full name is distinct (the whole first block, checked).
        let all: HashSet<(String, String)> = (0..NAME_BLOCK).map(|i| names.name(i)).collect();
        assert_eq!(all.len() as u64, NAME_BLOCK);
    }
}
