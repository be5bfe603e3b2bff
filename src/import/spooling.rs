//! The life of a sql source's spool in an import (SPEC §12 R12). `run` connects and
//! prepares the query before the run directory holds a manifest (an unreachable database
//! leaves nothing behind); the run then copies the query's rows into the spool before its
//! first request and records the spool's fingerprint in the manifest. Until that record
//! says complete, the run has not really started: a resume after a crash while spooling
//! runs the query again from scratch. After it, nothing queries the database again —
//! `--force` included — and a spool that is missing or not the one recorded stops the
//! resume (exit 2).

use crate::error::Result;
use crate::job::Job;
use crate::run_dir::{self, KindRecord, Manifest, RunDir, SourceFingerprint, SpoolRecord};
use crate::runner::{Shutdown, Stop};
use crate::source::sql::SqlSource;
use crate::source::{OpenError, SourceSpec, is_bad_input, spool};

/// What a refused query asks of the operator: nothing was sent, and a resume would run the
/// same query again and meet the same refusal.
const REFUSED: &str = "nothing was sent. Fix the query or the database (its grants, the credentials), then start a new run";

/// Before the manifest: the database answers and the query compiles. What the manifest
/// records of the source until the spool is complete.
pub fn prepare(
    job: &Job,
    src: &SourceSpec,
    dir: &RunDir,
) -> Result<(SourceFingerprint, SpoolRecord)> {
    drop(SqlSource::open(src, &job.resolve(&src.path))?);
    Ok((
        SourceFingerprint {
            path: dir.file(run_dir::SPOOL).display().to_string(),
            size: 0,
            content: run_dir::ContentHash::none(),
        },
        SpoolRecord {
            complete: false,
            rows: 0,
        },
    ))
}

/// The run's spool, complete: written now (the query run from scratch) unless the manifest
/// already says it is.
/// A signal (`shutdown`) stops the copy between two rows: resumable, the spool still
/// incomplete, so the resume runs the query again (R12).
pub fn ensure(
    job: &Job,
    dir: &RunDir,
    manifest: &Manifest,
    shutdown: &Shutdown,
) -> Result<(), Stop> {
    let KindRecord::BatchCreate {
        spool: Some(record),
        ..
    } = &manifest.kind
    else {
        return Ok(());
    };
    if record.complete {
        return Ok(());
    }
    let src = job
        .spec
        .source
        .as_ref()
        .ok_or_else(|| Stop::not_resumable("a batch_create job needs a source"))?;
    let path = dir.file(run_dir::SPOOL);
    // Whatever a crash left of an earlier attempt goes: the query runs again whole.
    let _ = std::fs::remove_file(spool::partial_path(&path));
    // The source's own classification (SqlError::report) decides; here it becomes a stop.
    let source = SqlSource::open(src, &job.resolve(&src.path)).map_err(|e| match e {
        OpenError::Unreachable(m) => Stop::resumable(m),
        // Credentials changed since the run began, the query no longer compiles: the same
        // answer every time until someone fixes it.
        refused => Stop::not_resumable(format!("{refused}; {REFUSED}")),
    })?;
    let rows = spool::write(Box::new(source), &path, &|| shutdown.is_requested()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Interrupted {
            Stop::resumable(
                "interrupted by a signal while copying the query's rows into the spool; nothing was sent, and a resume runs the query again",
            )
        } else if is_bad_input(&e) {
            // Nothing in it will ever be used: the query runs again whole, if at all.
            let _ = std::fs::remove_file(spool::partial_path(&path));
            Stop::not_resumable(format!("{e}; {REFUSED}"))
        } else {
            Stop::resumable(format!("copying the query's rows into the spool: {e}"))
        }
    })?;
    let fingerprint =
        run_dir::fingerprint(&path).map_err(|e| Stop::io("cannot read the spool", &e))?;
    let mut done = manifest.clone();
    if let KindRecord::BatchCreate { source, spool, .. } = &mut done.kind {
        *source = fingerprint;
        *spool = Some(SpoolRecord {
            complete: true,
            rows,
        });
    }
    run_dir::write_versioned(&dir.file(run_dir::MANIFEST), &done)
        .map_err(|e| Stop::io("recording the spool in the manifest", &e))
}

/// A resume's check of the spool: none to check while it is incomplete (it is written
/// again); once complete, it must be the one recorded, whatever `--force` says.
pub fn check_resume(
    dir: &RunDir,
    started: &SourceFingerprint,
    record: &SpoolRecord,
) -> Result<(), String> {
    if !record.complete {
        return Ok(());
    }
    let path = dir.file(run_dir::SPOOL);
    let same = started.is_of(&path).map_err(|e| {
        format!(
            "the spool {} of this run cannot be read ({e}): its rows cannot be read again, and the database may hold others by now. Start a new run",
            path.display()
        )
    })?;
    if !same {
        return Err(format!(
            "the spool {} is not the one this run wrote (size or content): its rows cannot be trusted. Start a new run",
            path.display()
        ));
    }
    Ok(())
}

/// A manifest's spool record, if the run reads a sql source.
pub fn record_of(kind: &KindRecord) -> Option<&SpoolRecord> {
    match kind {
        KindRecord::BatchCreate { spool, .. } => spool.as_ref(),
        KindRecord::QueryExport(_) => None,
    }
}
