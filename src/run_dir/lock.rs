//! One run of a job at a time: an advisory lock on `<run.root>/<name>/.lock`, holding the
//! holder's pid and, once it has one, the run directory it works on (so `status` of another
//! run of the same job does not take this one's lock for its own). The operating system releases it when the holder dies, so a lock left by a
//! killed run is simply taken over (with a warning naming the dead pid).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Debug)]
pub struct JobLock {
    file: File,
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
    #[error("cannot lock {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl JobLock {
    /// Take the lock, or say who holds it. `warn` hears about a lock taken over from a
    /// process that died.
    pub fn acquire(path: &Path, warn: impl FnOnce(&str)) -> Result<JobLock, LockError> {
        let io = |err| LockError::Io {
            path: path.display().to_string(),
            err,
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).map_err(io)?;
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = previous.lines().next().unwrap_or("").trim().to_string();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
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
        Ok(JobLock { file })
    }

    /// Record the run directory this holder works on, after its pid.
    pub fn claim(&mut self, run_dir: &Path) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        write!(self.file, "{}\n{}\n", std::process::id(), run_dir.display())?;
        self.file.sync_all()
    }
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
