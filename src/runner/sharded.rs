//! `run --shard K/N`: the same command is the pod's whole life (SPEC §12 R19). A shard's run
//! directory has a fixed name (`<G>-K-of-N`), so running it again finds it: a shard that
//! was interrupted (a restarted pod) is resumed, one that finished exits 0 saying so, and
//! only a shard never started begins a new run.

use super::{Outcome, Reopened, RunKind, RunOptions, begin, finished_summary, report};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::run_dir::{self, RunDir};
use crate::shard::ShardRun;

/// Start, resume or leave alone the shard `shard` of `job`.
pub fn run<K: RunKind>(mut job: Job, opts: &RunOptions, shard: &ShardRun) -> Result<Outcome> {
    if opts.run_dir.is_some() {
        return Err(Error::Usage(
            "--shard names its run directory itself (<run.root>/<name>/<group>-K-of-N): drop --run-dir".into(),
        ));
    }
    let dir = RunDir {
        path: shard.run_dir(&job.paths.job_root),
    };
    let opts = RunOptions {
        run_dir: Some(dir.path.clone()),
        shard: Some(shard.clone()),
        ..opts.clone()
    };
    if !dir.file(run_dir::MANIFEST).exists() {
        // Each shard its own sync state (R19); a resume finds it in the manifest.
        job.paths.sync_dir = shard.sync_dir(&job.paths.sync_dir);
        return super::start::<K>(&job, &opts);
    }
    if let Some(summary) = finished_summary::<K::Detail>(&dir)? {
        eprintln!(
            "shard {} of {} (group {}) already finished: nothing to do ({}). Pass another --group to run it again",
            shard.shard.index,
            shard.shard.count,
            shard.group,
            dir.path.display()
        );
        report(&summary, &opts);
        return Ok(Outcome::Done);
    }
    let run: Reopened = begin::reopen(&dir.path)?;
    if run.manifest.shard.as_ref() != Some(shard) {
        return Err(Error::Usage(format!(
            "{} holds a run that is not shard {}",
            dir.path.display(),
            shard.dir_name()
        )));
    }
    if opts.informs() {
        eprintln!(
            "shard {} of {} (group {}) was interrupted: resuming {}",
            shard.shard.index,
            shard.shard.count,
            shard.group,
            dir.path.display()
        );
    }
    super::resume::<K>(run, &opts)
}
