//! An import's side of change detection (SPEC §7, §12 R5–R8): before the run, that the
//! state can be read (or, with `--full`, moving a broken one aside); when the run's work
//! begins, the state as it was then, kept in the run directory; when the run finishes, its
//! confirmed customers — the `created.jsonl` lines, durable already — into the state in one
//! commit. A resume goes through the same three steps, so it compares with the same
//! snapshot and its commit is the same commit (a run recorded once is not recorded again).

use std::sync::Arc;

use super::results::{self, RowOutcome};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::job::model::SyncMode;
use crate::run_dir::{RunDir, SyncRecord};
use crate::runner::{RunOptions, Stop};
use crate::sync::{Classifier, Confirmed, Snapshot, StateError, Target, store};

/// The run directory's copy of the state as the run found it.
pub const SNAPSHOT: &str = "sync-snapshot.bin";

/// For a new run of a job with `sync: changed`: the record of how it detects changes,
/// once the state is known to be readable. Nothing is written, except that `--full` moves
/// an unreadable state aside (R8).
pub fn prepare(job: &Job, opts: &RunOptions) -> Result<Option<SyncRecord>> {
    if job.spec.sync != SyncMode::Changed {
        return Ok(None);
    }
    let target = Target::of(&job.spec.api);
    let state = store::state_path(&job.paths.sync_dir, &target);
    match store::check(&state) {
        Ok(()) => {}
        Err(e) if e.is_broken() && opts.full => {
            let aside = store::move_aside(&state)
                .map_err(|io| Error::io(format!("cannot move {} aside", state.display()), io))?;
            if opts.informs() {
                eprintln!(
                    "sync: {e}; moved it aside to {} and starting a fresh state (--full)",
                    aside.display()
                );
            }
        }
        Err(e) => return Err(state_error(e)),
    }
    Ok(Some(SyncRecord {
        full: opts.full,
        // Absolute: a resume from another directory records in this same state.
        state: crate::job::paths::absolute(&state),
        target: target.to_string(),
    }))
}

/// What a run is told about its state before it starts.
pub fn announce(job: &Job, record: &SyncRecord) {
    let target = Target::of(&job.spec.api);
    let others = match store::other_targets(&job.paths.sync_dir, &target) {
        0 => String::new(),
        1 => " (the state of another API target is kept beside it, unused)".to_string(),
        n => format!(" (the states of {n} other API targets are kept beside it, unused)"),
    };
    let what = if record.full {
        "--full: every valid row is sent and the state refreshed"
    } else if record.state.exists() {
        "only customers new or changed since the last finished run are sent"
    } else if let Some(note) = crate::import::shards::other_states(&job.paths.sync_dir) {
        // A shard's own state (`sync/K-of-N/`): another N's are not this one's (R19).
        eprintln!("sync: {note}");
        "no state for this shard yet: every customer counts as new"
    } else {
        "no state yet: every customer counts as new"
    };
    eprintln!("sync: {what} ({target}){others}");
}

/// An unusable state as the error a user reads: the path, and the way out.
pub fn state_error(e: StateError) -> Error {
    match e {
        StateError::Held { .. } => Error::stopped(
            format!("{e}; nothing was sent: run the command again once it has let go"),
            crate::error::Again::RunAgain,
        ),
        e => Error::Environment(format!(
            "{e}. Nothing was sent. `cdpjob run --full` sends every row and starts a fresh state (this one is moved aside)"
        )),
    }
}

/// The classifier of a run's rows: from the run directory's snapshot, taken from the state
/// the first time the run's work begins.
pub fn classifier(job: &Job, dir: &RunDir, record: &SyncRecord) -> Result<Arc<Classifier>, Stop> {
    let path = dir.file(SNAPSHOT);
    let snapshot = match Snapshot::read(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = store::snapshot(&record.state).map_err(|e| {
                if e.is_broken() {
                    Stop::not_resumable(state_error(e).to_string())
                } else {
                    Stop::resumable(e.to_string())
                }
            })?;
            s.write(&path)
                .map_err(|e| Stop::io("cannot write the sync snapshot", &e))?;
            s
        }
        Err(e) => return Err(Stop::io("cannot read the run's sync snapshot", &e)),
    };
    Ok(Arc::new(Classifier::new(
        snapshot,
        record.full,
        job.spec.merge.wire_type(),
        job.spec.strict_binding,
    )))
}

/// Record the run's confirmed customers in the state (R5), from its created lines as far
/// as the checkpoint counts them (a line past that is not confirmed).
pub fn commit(
    job: &Job,
    dir: &RunDir,
    record: &SyncRecord,
    run_id: &str,
    began_at: jiff::Timestamp,
) -> Result<u64, Stop> {
    let stop = |e: StateError| {
        Stop::resumable(format!(
            "{e}; the run's customers are not in the sync state yet: `cdpjob resume {}` records them",
            dir.path.display()
        ))
    };
    let lines = results::committed(&dir.path, RowOutcome::Created)
        .map_err(|e| Stop::io("cannot read created.jsonl", &e))?;
    let path = lines.path.clone();
    let confirmed = lines.filter_map(|line| {
        let confirmed = line
            .map_err(|e| e.to_string())
            .and_then(|(_, text)| confirmed_of(&text));
        match confirmed {
            Ok(c) => c.map(Ok),
            Err(e) => Some(Err(format!("reading {}: {e}", path.display()))),
        }
    });
    store::commit(
        &record.state,
        &Target::of(&job.spec.api),
        run_id,
        began_at,
        confirmed,
    )
    .map_err(stop)
}

/// The customer a created line confirms, as the state records it; none for a line without
/// a match key (a customer that has none is not recorded).
fn confirmed_of(line: &str) -> Result<Option<Confirmed>, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let (Some(key), Some(hash), Some(id)) = (
        v["sync_key"].as_str(),
        v["sync_hash"].as_str(),
        v["customer_id"].as_i64(),
    ) else {
        return Ok(None);
    };
    let hash: [u8; 32] = hex::decode(hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or("a sync_hash that is not 32 bytes of hex")?;
    Ok(Some(Confirmed {
        key: key.to_string(),
        hash,
        customer_id: id,
    }))
}
