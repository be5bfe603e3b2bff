//! Shards (SPEC §10, §12 R19): N processes — a Kubernetes Indexed Job — split one
//! batch_create job, each taking the rows whose match key hashes to its index. This module
//! says which shard a row is in, reads `--shard K/N --group G` or the environment, and names
//! a shard's run directory, lock and sync state; the reader, the lock and the runner use it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The environment Kubernetes sets in each pod of an Indexed Job: the pod's index.
pub const ENV_INDEX: &str = "JOB_COMPLETION_INDEX";
/// How many shards; sharding comes from the environment only when this is set.
pub const ENV_SHARDS: &str = "CDPJOB_SHARDS";
/// The run group (a Kubernetes Job's name makes a good one).
pub const ENV_GROUP: &str = "CDPJOB_RUN_GROUP";

/// Shard `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A shard of one run group: what a sharded run's manifest records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRun {
    #[serde(flatten)]
    pub shard: Shard,
    pub group: String,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

/// The shard of a match key `<field>:<value>` (the string `sync::tag` stores, e.g.
/// `whats_app_phone:+8613800000001`) among `count`: the first 8 bytes of its SHA-256,
/// big-endian, mod `count` (R19). The same customer is in the same shard whatever the
/// source's order.
pub fn of_key(key: &str, count: u32) -> u32 {
    of_digest(Sha256::digest(key.as_bytes()).into(), count)
}

fn of_digest(digest: [u8; 32], count: u32) -> u32 {
    let first: [u8; 8] = digest[..8].try_into().expect("a SHA-256 has 32 bytes");
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

impl Shard {
    /// Whether the row `row` (1-based) is in this shard: by its match key (field name and
    /// value, as `sync::tag::match_key` finds it on the mapped customer) or — a row without
    /// one (rejected, filtered out, or a customer with no match key) — by its row number,
    /// `row mod count`.
    pub fn holds(&self, row: u64, key: Option<(&str, &str)>) -> bool {
        let shard = match key {
            // The `<field>:<value>` string, hashed without being put together.
            Some((field, value)) => {
                let mut h = Sha256::new();
                h.update(field.as_bytes());
                h.update(b":");
                h.update(value.as_bytes());
                of_digest(h.finalize().into(), self.count)
            }
            None => (row % u64::from(self.count)) as u32,
        };
        shard == self.index
    }

    /// `K/N`, 0 ≤ K < N.
    pub fn parse(text: &str) -> std::result::Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard {text}: expected K/N, e.g. 0/4"))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("--shard {text}: K must be a whole number"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {text}: N must be a whole number"))?;
        Shard::new(k, n).map_err(|e| format!("--shard {text}: {e}"))
    }

    fn new(index: u32, count: u32) -> std::result::Result<Shard, String> {
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index >= count {
            return Err(format!("K must be below N (0 ≤ K < {count}), not {index}"));
        }
        Ok(Shard { index, count })
    }
}

impl ShardRun {
    /// The run directory's name: `<G>-K-of-N`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.group, self.shard)
    }

    /// `<job root>/<G>-K-of-N`.
    pub fn run_dir(&self, job_root: &Path) -> PathBuf {
        job_root.join(self.dir_name())
    }

    /// The shard's own lock, beside the job's (`.lock-<G>-K-of-N`).
    pub fn lock(&self, job_root: &Path) -> PathBuf {
        job_root.join(format!(".lock-{}", self.dir_name()))
    }

    /// The shard's sync state directory: `sync/K-of-N/` under the job's.
    pub fn sync_dir(&self, sync_dir: &Path) -> PathBuf {
        sync_dir.join(self.shard.to_string())
    }
}

/// The shard a `run` is, from `--shard`/`--group` or, when `CDPJOB_SHARDS` is set, the
/// environment (`env` looks a variable up). `None`: not sharded. A bad value is refused
/// with why (a usage error, exit 2).
pub fn resolve(
    flag: Option<&str>,
    group: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ShardRun>, String> {
    let shard = match flag {
        Some(text) => Shard::parse(text)?,
        None => match env(ENV_SHARDS) {
            None => {
                if group.is_some() {
                    return Err("--group names a run group of shards: pass --shard K/N too".into());
                }
                return Ok(None);
            }
            Some(n) => {
                let n: u32 = n
                    .trim()
                    .parse()
                    .map_err(|_| format!("{ENV_SHARDS}={n}: expected a whole number"))?;
                let k = env(ENV_INDEX).ok_or_else(|| {
                    format!("{ENV_SHARDS} is set but {ENV_INDEX} is not: which shard is this?")
                })?;
                let k: u32 = k
                    .trim()
                    .parse()
                    .map_err(|_| format!("{ENV_INDEX}={k}: expected a whole number"))?;
                Shard::new(k, n).map_err(|e| format!("{ENV_INDEX}/{ENV_SHARDS}: {e}"))?
            }
        },
    };
    let group = match group.map(str::to_string).or_else(|| env(ENV_GROUP)) {
        Some(g) => g,
        None => jiff::Timestamp::now().strftime("%Y%m%d").to_string(),
    };
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if group.is_empty() || group.starts_with('.') || !group.chars().all(fits) {
        return Err(format!(
            "run group {group:?}: use letters, digits, '-', '_' and '.' (not first), it names a directory"
        ));
    }
    Ok(Some(ShardRun { shard, group }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins R19's hash: any change here moves customers between shards of running jobs.
    #[test]
    fn the_hash_test_vector() {
        // SHA-256("whats_app_phone:+8613800000001") begins 22fb5b02657e3260.
        assert_eq!(0x22fb_5b02_657e_3260_u64 % 4, 0);
        assert_eq!(of_key("whats_app_phone:+8613800000001", 4), 0);
        assert_eq!(of_key("whats_app_phone:+8613800000001", 7), 1);
        // SHA-256("email:ada@example.com") begins 9b62a3a2bce7c868.
        assert_eq!(of_key("email:ada@example.com", 7), 5);
        // As the reader hands it over: the field's name and the value, hashed as
        // `email:ada@example.com`.
        let key = Some(("email", "ada@example.com"));
        let seven = |index| Shard { index, count: 7 };
        assert!(seven(5).holds(1, key));
        assert!(!seven(1).holds(1, key));
        // No customer: by row number.
        assert!(seven(3).holds(10, None));
    }

    #[test]
    fn shards_come_from_the_flag_or_the_environment() {
        let none = |_: &str| None;
        assert_eq!(resolve(None, None, none).unwrap(), None);
        let r = resolve(Some("1/4"), Some("g1"), none).unwrap().unwrap();
        assert_eq!(
            (r.shard, r.dir_name().as_str()),
            (Shard { index: 1, count: 4 }, "g1-1-of-4")
        );
        let env = |k: &str| match k {
            ENV_SHARDS => Some("3".to_string()),
            ENV_INDEX => Some("2".to_string()),
            ENV_GROUP => Some("nightly-abc".to_string()),
            _ => None,
        };
        assert_eq!(
            resolve(None, None, env).unwrap().unwrap().dir_name(),
            "nightly-abc-2-of-3"
        );
        for bad in ["4/4", "5/4", "1/0", "x/4", "1"] {
            let e = resolve(Some(bad), None, none).unwrap_err();
            assert!(e.starts_with(&format!("--shard {bad}: ")), "{e}");
        }
        assert!(resolve(Some("0/2"), Some("../x"), none).is_err());
        let date = resolve(Some("0/2"), None, none).unwrap().unwrap().group;
        assert_eq!(date.len(), 8, "{date}");
    }
}
