//! Starting and reopening a run directory, the same for both kinds of job: the job's lock,
//! the run id, the manifest that pins the job text (and source), and the checks a resume
//! makes before it may continue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock::JobLock;
use super::run_dir::{self, Manifest, RunDir};
use crate::error::{Error, Result};
use crate::job::{self, Job};

/// How long in-flight requests may take to finish after SIGINT/SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub run_dir: Option<PathBuf>,
    pub json: bool,
    /// Resume even though the job file or the source changed.
    pub force: bool,
}

/// A new run: its directory (created, empty), id, start time and the job's lock.
pub struct Begun {
    pub dir: RunDir,
    pub run_id: String,
    /// RFC 3339, UTC, whole seconds: templates see it as `run.started_at`, and an export's
    /// window ends there, so it must not lie in the future (rounding could).
    pub started_at: String,
    pub lock: JobLock,
}

/// Take the job's lock and create a fresh run directory (`--run-dir`, or
/// `<run.root>/<name>/<run-id>`).
pub fn begin(job: &Job, opts: &RunOptions) -> Result<Begun> {
    let root = job_root(job);
    run_dir::create_private_dir(&root)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", root.display())))?;
    let lock = acquire_lock(&root)?;
    let run_id = match &opts.run_dir {
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(run_dir::new_run_id),
        None => run_dir::new_run_id(),
    };
    let dir = RunDir {
        path: opts.run_dir.clone().unwrap_or_else(|| root.join(&run_id)),
    };
    if dir.file(run_dir::MANIFEST).exists() {
        return Err(Error::Usage(format!(
            "{} already holds a run: `cdpjob resume {}` continues it",
            dir.path.display(),
            dir.path.display()
        )));
    }
    run_dir::create_private_dir(&dir.path)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.path.display())))?;
    let started_at = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .expect("now is a valid timestamp")
        .to_string();
    Ok(Begun {
        dir,
        run_id,
        started_at,
        lock,
    })
}

/// `<run.root>/<name>`: the job's run directories, lock and export state live here.
pub fn job_root(job: &Job) -> PathBuf {
    job.resolve(&job.spec.run.root).join(&job.spec.name)
}

/// The manifest's fields that do not depend on the kind of job.
pub fn manifest(job: &Job, begun: &Begun, source: run_dir::SourceFingerprint) -> Manifest {
    Manifest {
        cdpjob_version: env!("CARGO_PKG_VERSION").into(),
        run_id: begun.run_id.clone(),
        job_path: std::fs::canonicalize(&job.path)
            .unwrap_or(job.path.clone())
            .display()
            .to_string(),
        job_text: job.text.clone(),
        job_sha256: run_dir::sha256_hex(job.text.as_bytes()),
        source,
        vars: job.vars.clone(),
        started_at: begun.started_at.clone(),
        export: None,
    }
}

/// Write the manifest: from here on the directory is a run that `resume` can continue.
pub fn write_manifest(dir: &RunDir, manifest: &Manifest, opts: &RunOptions) -> Result<()> {
    run_dir::write_json_atomic(&dir.file(run_dir::MANIFEST), manifest)
        .map_err(|e| Error::Input(format!("cannot write the manifest: {e}")))?;
    if !opts.json {
        eprintln!("run directory: {}", dir.path.display());
    }
    Ok(())
}

pub fn acquire_lock(root: &Path) -> Result<JobLock> {
    JobLock::acquire(&root.join(".lock"), |w| eprintln!("warning: {w}")).map_err(|e| match e {
        super::lock::LockError::Held { .. } => Error::Stopped(e.to_string()),
        other => Error::Input(other.to_string()),
    })
}

/// An existing run, checked and locked, ready to continue.
pub struct Reopened {
    pub job: Job,
    pub dir: RunDir,
    pub manifest: Manifest,
    pub lock: JobLock,
}

/// Open a run directory for `resume`: the job is loaded from where the run found it, with
/// the run's vars; a changed job file or source stops here unless `--force`.
pub fn reopen(path: &Path, opts: &RunOptions) -> Result<Reopened> {
    let dir = RunDir {
        path: path.to_path_buf(),
    };
    let manifest: Manifest = run_dir::read_json(&dir.file(run_dir::MANIFEST))
        .map_err(|e| Error::Usage(format!("{} is not a run directory: {e}", path.display())))?;
    let job_path = PathBuf::from(&manifest.job_path);
    let overrides = manifest
        .vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let job = job::load(&job_path, &overrides).map_err(|e| Error::Job(vec![*e]))?;
    if run_dir::sha256_hex(job.text.as_bytes()) != manifest.job_sha256 && !opts.force {
        return Err(Error::Usage(format!(
            "the job file {} changed since the run started; resuming could mix two jobs' rows. Start a new run, or pass --force",
            job_path.display()
        )));
    }
    if let Some(src) = &job.spec.source {
        if src.path == "-" {
            return Err(Error::Usage(
                "this run read standard input, which cannot be read again: start a new run".into(),
            ));
        }
        let now_fp = run_dir::fingerprint(&job.resolve(&src.path))
            .map_err(|e| Error::Usage(format!("cannot read the source: {e}")))?;
        let same = now_fp.size == manifest.source.size && now_fp.sha256 == manifest.source.sha256;
        if !same && !opts.force {
            return Err(Error::Usage(format!(
                "the source {} changed since the run started (size or content); resuming would send different rows as the same batches. Start a new run, or pass --force",
                now_fp.path
            )));
        }
    }
    let lock = acquire_lock(&job_root(&job))?;
    Ok(Reopened {
        job,
        dir,
        manifest,
        lock,
    })
}

/// The summary of a run that has already finished, if it has (saying so on stderr): a
/// resume of it changes nothing and reports that summary again.
pub fn already_finished<S: serde::de::DeserializeOwned>(
    run: &Reopened,
    opts: &RunOptions,
    status: impl Fn(&S) -> &str,
) -> Option<S> {
    let summary: S = run_dir::read_json(&run.dir.file(run_dir::SUMMARY)).ok()?;
    if status(&summary) != "finished" {
        return None;
    }
    if !opts.json {
        eprintln!(
            "the run {} has already finished: nothing to do",
            run.manifest.run_id
        );
    }
    Some(summary)
}

/// A failed read or write of the run's files: the run stops, and can be resumed.
pub fn stopped(what: &str, e: std::io::Error) -> Error {
    Error::Stopped(format!("{what}: {e}; the run can be resumed"))
}

/// Reopening an append-only output failed: as [`stopped`], except for an output shorter
/// than its checkpoint (cut behind our back), which no resume can mend.
pub fn reopen_failed(what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::InvalidData {
        Error::Usage(e.to_string())
    } else {
        stopped(what, e)
    }
}

/// The async runtime a command runs its network work on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::Input(format!("cannot start the async runtime: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
