//! Starting and reopening a run directory, the same for both kinds of job: the job's lock,
//! the run id, the manifest that pins the job (and what its kind needs), and the checks a
//! resume makes before it may continue.

use std::path::{Path, PathBuf};

use super::RunOptions;
use crate::error::{Again, Error, Result};
use crate::job::paths::absolute;
use crate::job::{self, Job};
use crate::run_dir::lock::{JobLock, LockError};
use crate::run_dir::{self, KindRecord, Manifest, RunDir};
use crate::shard::ShardRun;

/// A new run: its directory (created, empty), id, start time and the job's lock.
#[derive(Debug)]
pub struct Begun {
    pub dir: RunDir,
    pub run_id: String,
    /// Whole seconds (see [`Manifest::started_at`]).
    pub started_at: jiff::Timestamp,
    /// The same instant, precisely (see [`Manifest::began_at`]).
    pub began_at: jiff::Timestamp,
    pub lock: JobLock,
}

/// Take the job's lock (creating `<run.root>/<name>/` for it), before anything else: a
/// shard's share of it with `--shard`.
pub fn lock(job: &Job, opts: &RunOptions) -> Result<JobLock> {
    let root = &job.paths.job_root;
    run_dir::create_private_dir(root)
        .map_err(|e| Error::Environment(format!("cannot create {}: {e}", root.display())))?;
    match &opts.shard {
        Some(s) => acquire_shard_lock(job, s),
        None => acquire_lock(&job.paths.lock),
    }
}

/// The lock a run's manifest names: the shard's own lock, or the job's.
fn lock_path(job: &Job, opts: &RunOptions) -> PathBuf {
    match &opts.shard {
        Some(s) => s.lock(&job.paths.job_root),
        None => job.paths.lock.clone(),
    }
}

/// With the job's lock held, create a fresh run directory (`--run-dir`, or
/// `<run.root>/<name>/<run-id>`).
pub fn begin(job: &Job, opts: &RunOptions, mut lock: JobLock) -> Result<Begun> {
    let root = &job.paths.job_root;
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
        .map_err(|e| Error::Environment(format!("cannot create {}: {e}", dir.path.display())))?;
    lock.claim(&absolute(&dir.path))
        .map_err(|e| Error::io(format!("cannot write {}", job.paths.lock.display()), e))?;
    let began_at = jiff::Timestamp::now();
    let started_at =
        jiff::Timestamp::from_second(began_at.as_second()).expect("now is a valid timestamp");
    Ok(Begun {
        dir,
        run_id,
        started_at,
        began_at,
        lock,
    })
}

/// The names in a run directory (a `--run-dir` may hold other files before the run).
pub fn entries(dir: &RunDir) -> std::collections::BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(&dir.path)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default()
}

/// A run that could not begin: remove the files written in its directory since `before`,
/// and the directory if that leaves it empty. Nothing that was there before is touched.
pub fn discard(dir: &RunDir, before: &std::collections::BTreeSet<std::ffi::OsString>) {
    for name in entries(dir).difference(before) {
        let _ = std::fs::remove_file(dir.path.join(name));
    }
    let _ = std::fs::remove_dir(&dir.path);
}

/// The manifest of a new run.
pub fn manifest(job: &Job, begun: &Begun, opts: &RunOptions, kind: KindRecord) -> Manifest {
    Manifest {
        cdpjob_version: env!("CARGO_PKG_VERSION").into(),
        run_id: begun.run_id.clone(),
        job_path: absolute(&job.path).display().to_string(),
        job_text: job.text.clone(),
        job_sha256: job.send_hash.clone(),
        vars: job.vars.clone(),
        started_at: begun.started_at,
        began_at: begun.began_at,
        lock: absolute(&lock_path(job, opts)),
        shard: opts.shard.clone(),
        kind,
    }
}

/// Write the manifest: from here on the directory is a run that `resume` can continue.
pub fn write_manifest(dir: &RunDir, manifest: &Manifest, opts: &RunOptions) -> Result<()> {
    run_dir::write_versioned(&dir.file(run_dir::MANIFEST), manifest)
        .map_err(|e| Error::io("cannot write the manifest", e))?;
    if opts.informs() {
        eprintln!("run directory: {}", dir.path.display());
    }
    Ok(())
}

pub fn acquire_lock(path: &Path) -> Result<JobLock> {
    JobLock::acquire(path, |w| eprintln!("warning: {w}")).map_err(lock_error)
}

/// A shard's locks (see [`JobLock::acquire_shard`]).
pub fn acquire_shard_lock(job: &Job, shard: &ShardRun) -> Result<JobLock> {
    JobLock::acquire_shard(
        &job.paths.lock,
        shard.shard.count,
        &shard.lock(&job.paths.job_root),
        |w| eprintln!("warning: {w}"),
    )
    .map_err(lock_error)
}

fn lock_error(e: LockError) -> Error {
    match e {
        LockError::Held { .. } | LockError::Shards { .. } => {
            Error::stopped(e.to_string(), Again::RunAgain)
        }
        LockError::Io { .. } => Error::Environment(e.to_string()),
    }
}

/// An existing run, checked and locked, ready to continue.
#[derive(Debug)]
pub struct Reopened {
    pub job: Job,
    pub dir: RunDir,
    pub manifest: Manifest,
    pub lock: JobLock,
}

/// Read a run directory's manifest; one written by another format is refused by name.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let file = path.join(run_dir::MANIFEST);
    run_dir::read_versioned(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::stopped(
            format!("{e}: this run cannot be resumed here; start a new run (its result files stay as they are)"),
            Again::Never(path.to_path_buf()),
        ),
        _ => Error::Usage(format!("{} is not a run directory: {e}", path.display())),
    })
}

/// Open a run directory for `resume`: the job is loaded from where the run found it, with
/// the run's vars, and the job's lock is taken where the run took it.
pub fn reopen(path: &Path) -> Result<Reopened> {
    let dir = RunDir {
        path: path.to_path_buf(),
    };
    let manifest = read_manifest(path)?;
    let mut job = job_of(&manifest)?;
    let mut lock = match &manifest.shard {
        Some(s) => {
            // The shard's sync state, as its run began with (R19).
            job.paths.sync_dir = s.sync_dir(&job.paths.sync_dir);
            acquire_shard_lock(&job, s)?
        }
        None => acquire_lock(&manifest.lock)?,
    };
    lock.claim(&absolute(path))
        .map_err(|e| Error::io(format!("cannot write {}", manifest.lock.display()), e))?;
    Ok(Reopened {
        job,
        dir,
        manifest,
        lock,
    })
}

/// The job a run's manifest names, loaded from where the run found it, with the run's vars.
pub fn job_of(manifest: &Manifest) -> Result<Job> {
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
    job::load(&job_path, &overrides).map_err(|e| Error::Job(vec![*e]))
}

/// A job changed in what it sends stops a resume unless `--force` (SPEC §12 R3).
pub fn check_job_unchanged(run: &Reopened, opts: &RunOptions) -> Result<()> {
    if run.job.send_hash != run.manifest.job_sha256 && !opts.force {
        return Err(run.refusal(format!(
            "the job file {} changed since the run started in what it sends; resuming could mix two jobs' rows. Start a new run, or pass --force",
            run.manifest.job_path
        )));
    }
    Ok(())
}

impl Reopened {
    /// A resume refused (exit 2): the run directory stays as it is, for the record.
    pub fn refusal(&self, reason: String) -> Error {
        Error::stopped(reason, Again::Never(self.dir.path.clone()))
    }
}

/// The async runtime a command runs its network work on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| Error::io("cannot start the async runtime", e))
}
