//! One run of a job at a time: an advisory lock on `<run.root>/<name>/.lock`, holding the
//! holder's pid and, once it has one, the run directory it works on (so `status` of another
//! run of the same job does not take this one's lock for its own). The operating system releases it when the holder dies, so a lock left by a
//! killed run is simply taken over (with a warning naming the dead pid).
//!
//! Shards (SPEC §12 R19) share the job: each takes `.lock` shared and `.shards-of-N.lock`
//! shared, and holds its own shard's lock exclusively (the file that names its pid and run
//! directory). A run without `--shard` wants `.lock` exclusively, so it waits for every
//! shard; a shard of another N finds `.shards-of-N.lock` held (an exclusive try), so the
//! shards of one N keep the job until the last of them ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Debug)]
pub struct JobLock {
    file: File,
    /// A shard's shared locks on the job's `.lock` and its N's file, released with it.
    _shared: Vec<File>,
}

impl Drop for JobLock {
    fn drop(&mut self) {
        // A clean exit leaves no pid behind (a killed holder's pid stays, for the warning).
        let _ = self.file.set_len(0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run of this job is in progress (pid {pid}); wait for it, or stop it first")]
    Held { pid: String },
    #[error(
        "shards of this job ({count} of them) are running; a run without --shard, or with another number of shards, waits until they end"
    )]
    Shards { count: u32 },
    #[error("cannot lock {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl JobLock {
    /// Take the lock, or say who holds it. `warn` hears about a lock taken over from a
    /// process that died.
    pub fn acquire(path: &Path, warn: impl FnOnce(&str)) -> Result<JobLock, LockError> {
        Self::acquire_with(path, warn, Vec::new())
    }

    /// A shard's lock: the job's `.lock` and `.shards-of-<count>.lock` (both in `job_root`)
    /// shared, refused while a run without shards, or shards of another count, hold the
    /// job; then `own`, the shard's own lock, exclusively, as [`JobLock::acquire`] takes it.
    pub fn acquire_shard(
        job_lock: &Path,
        count: u32,
        own: &Path,
        warn: impl FnOnce(&str),
    ) -> Result<JobLock, LockError> {
        let job_root = job_lock.parent().unwrap_or(Path::new("."));
        let job = open(job_lock)?;
        match job.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    pid: first_line(job_lock).unwrap_or_else(|| "unknown".into()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(job_lock, e)),
        }
        // Blocking: only another count's probe (below) holds it exclusively, for an instant.
        let mine_path = shards_lock(job_root, count);
        let mine = open(&mine_path)?;
        mine.lock_shared().map_err(|e| io_error(&mine_path, e))?;
        // Taken before the others are probed: of two counts starting at once, at least one
        // sees the other (and both may refuse, which is safe).
        if let Some(other) = running_shards(job_root, Some(count)) {
            return Err(LockError::Shards { count: other });
        }
        Self::acquire_with(own, warn, vec![job, mine])
    }

    fn acquire_with(
        path: &Path,
        warn: impl FnOnce(&str),
        shared: Vec<File>,
    ) -> Result<JobLock, LockError> {
        let io = |err| io_error(path, err);
        let mut file = open(path)?;
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = previous.lines().next().unwrap_or("").trim().to_string();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The job's lock is held shared by shards (which write no pid in it).
                if shared.is_empty()
                    && let Some(parent) = path.parent()
                    && let Some(count) = running_shards(parent, None)
                {
                    return Err(LockError::Shards { count });
                }
                return Err(LockError::Held {
                    pid: if previous.is_empty() {
                        "unknown".into()
                    } else {
                        previous
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        if !previous.is_empty() && previous != std::process::id().to_string() {
            warn(&format!(
                "taking over the lock left by pid {previous}, which is no longer running"
            ));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(JobLock {
            file,
            _shared: shared,
        })
    }

    /// Record the run directory this holder works on, after its pid.
    pub fn claim(&mut self, run_dir: &Path) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        write!(self.file, "{}\n{}\n", std::process::id(), run_dir.display())?;
        self.file.sync_all()
    }
}

fn io_error(path: &Path, err: std::io::Error) -> LockError {
    LockError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// A lock file, opened (and created, readable by its owner only) for locking.
fn open(path: &Path) -> Result<File, LockError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map_err(|e| io_error(path, e))
}

fn first_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// `<job root>/.shards-of-<count>.lock`: held shared by every running shard of that count.
pub fn shards_lock(job_root: &Path, count: u32) -> std::path::PathBuf {
    job_root.join(format!(".shards-of-{count}.lock"))
}

/// The count of shards holding the job under `job_root`, other than `except`'s, if any: an
/// exclusive try on each count's file, let go at once.
fn running_shards(job_root: &Path, except: Option<u32>) -> Option<u32> {
    let entries = std::fs::read_dir(job_root).ok()?;
    entries.filter_map(|e| e.ok()).find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let count: u32 = name
            .strip_prefix(".shards-of-")?
            .strip_suffix(".lock")?
            .parse()
            .ok()?;
        if Some(count) == except {
            return None;
        }
        let file = File::open(e.path()).ok()?;
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => Some(count),
            _ => None, // free: dropping the file lets go of the try
        }
    })
}

/// Whether a live process holds the lock at `path` for the run directory `run_dir` (the
/// operating system releases the lock when its holder dies, so a killed run is not running).
pub fn held_for(path: &Path, run_dir: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if !matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)) {
        return false;
    }
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text.lines().nth(1).map(Path::new) == Some(run_dir)
}
