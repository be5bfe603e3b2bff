//! `cdpjob status JOB_ROOT`: the shards of a job (SPEC §10, R19) at a glance — one line per
//! shard run directory (`<G>-K-of-N`) under the job's run root, with its state and counts,
//! read as `status RUN_DIR` reads each.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::Counts;
use crate::error::{Error, Result};
use crate::runner::{self, RunStatus};

#[derive(Debug, Clone, Serialize)]
pub struct ShardsStatus {
    pub job_root: String,
    pub shards: Vec<ShardStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub group: String,
    pub index: u32,
    pub count: u32,
    pub status: RunStatus,
    pub resumable: bool,
    pub run_dir: String,
    pub counts: Counts,
}

/// The shards under `job_root`, by group, then count and index; `None` when it holds no
/// shard's run (it is not a job root, or its runs are not shards).
pub fn read(job_root: &Path) -> Result<Option<ShardsStatus>> {
    let mut shards = Vec::new();
    for (dir, manifest) in runner::runs_of(job_root, Path::new("")) {
        let Some(shard) = &manifest.shard else {
            continue;
        };
        let s = super::status::read(&dir, &manifest)?;
        shards.push(ShardStatus {
            group: shard.group.clone(),
            index: shard.shard.index,
            count: shard.shard.count,
            status: s.head.status,
            resumable: s.head.resumable,
            run_dir: dir.display().to_string(),
            counts: s.counts,
        });
    }
    if shards.is_empty() {
        return Ok(None);
    }
    shards.sort_by(|a, b| (&a.group, a.count, a.index).cmp(&(&b.group, b.count, b.index)));
    Ok(Some(ShardsStatus {
        job_root: job_root.display().to_string(),
        shards,
    }))
}

/// `status JOB_ROOT` of a directory that holds no shard.
pub fn not_a_job_root(path: &Path) -> Error {
    Error::Usage(format!(
        "{} is neither a run directory nor a job root holding shards (<run.root>/<name>, with <group>-K-of-N runs)",
        path.display()
    ))
}

impl fmt::Display for ShardsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "shards of {}:", self.job_root)?;
        for s in &self.shards {
            let c = &s.counts;
            writeln!(
                f,
                "  {} shard {} of {}: {}{} — rows {}: created {}, failed {}, rejected {}, skipped {}, unchanged {}",
                s.group,
                s.index,
                s.count,
                s.status,
                if s.resumable { " (resumable)" } else { "" },
                c.rows,
                c.created,
                c.failed,
                c.rejected,
                c.skipped,
                c.unchanged
            )?;
        }
        Ok(())
    }
}

/// For a shard's sync directory (`<job root>/sync/K-of-N`) that holds no state yet: a note
/// when the job has states of another number of shards (or of unsharded runs), which this
/// shard does not read — a run with another N starts from empty states (R19). `None` for a
/// directory that is not a shard's, or when there is nothing else.
pub fn other_states(sync_dir: &Path) -> Option<String> {
    let name = sync_dir.file_name()?.to_str()?;
    let (_, n) = name.split_once("-of-")?;
    let parent = sync_dir.parent()?;
    let others: Vec<String> = std::fs::read_dir(parent)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|d| d.split_once("-of-").is_some_and(|(_, m)| m != n))
        .collect();
    let unsharded = std::fs::read_dir(parent)
        .ok()?
        .filter_map(|e| e.ok())
        .any(|e| e.path().is_file());
    if others.is_empty() && !unsharded {
        return None;
    }
    Some(format!(
        "this shard's state starts empty: the states kept under {} are of {} and are not read by a run with {n} shards",
        parent.display(),
        match (others.is_empty(), unsharded) {
            (false, true) => "other shard counts and of runs without --shard",
            (false, false) => "another number of shards",
            _ => "runs without --shard",
        }
    ))
}
