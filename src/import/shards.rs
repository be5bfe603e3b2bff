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
