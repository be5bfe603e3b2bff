//! Every path a job uses, computed once when the job is loaded: where its run directories,
//! lock, export state and sync state live, and where the embedded simulator keeps its
//! customers. Relative paths in a job file resolve against the job file's directory (SPEC
//! §2), so a job behaves the same from any working directory.

use std::path::{Path, PathBuf};

/// The paths of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPaths {
    /// The directory the job file is in: relative paths in it resolve against this.
    pub job_dir: PathBuf,
    /// `run.root`: every job with this root shares the embedded simulator's state.
    pub run_root: PathBuf,
    /// `<run.root>/<name>`: this job's run directories and the files below.
    pub job_root: PathBuf,
    /// One run of the job at a time holds this.
    pub lock: PathBuf,
    /// What the last finished export recorded for the next one (`state.json`).
    pub export_state: PathBuf,
    /// `<run.root>/<name>/sync/`: the customers earlier runs confirmed, one state per API
    /// target, for change detection (SPEC §7).
    pub sync_dir: PathBuf,
    /// The embedded simulator's customers (`base_url: sim`).
    pub sim_state: PathBuf,
}

impl JobPaths {
    pub fn new(job_dir: &Path, run_root: &str, name: &str) -> JobPaths {
        let run_root = resolve(job_dir, run_root);
        let job_root = run_root.join(name);
        JobPaths {
            job_dir: job_dir.to_path_buf(),
            lock: job_root.join(".lock"),
            export_state: job_root.join("state.json"),
            sync_dir: job_root.join("sync"),
            sim_state: run_root.join(".sim").join("state.jsonl"),
            run_root,
            job_root,
        }
    }

    /// A path from the job file, resolved against the job file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        resolve(&self.job_dir, p)
    }
}

/// `p` made absolute against the working directory, normalized as [`resolve`] does: a
/// resume or `status` may run from another directory than the run did.
pub fn absolute(p: &Path) -> PathBuf {
    match std::env::current_dir() {
        Ok(cwd) => resolve(&cwd, &p.to_string_lossy()),
        Err(_) => p.to_path_buf(),
    }
}

/// `path` relative to the job file's directory (`-` stays `-`).
pub fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    if path == "-" {
        PathBuf::from("-")
    } else {
        normalize(&base_dir.join(path))
    }
}

/// `jobs/../runs` → `runs`: drop `.` and fold `..` into a preceding plain component, so the
/// paths we print are the ones a user would write (symlinks are not resolved).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            // `/..` is `/`.
            Component::ParentDir if matches!(out.last(), Some(Component::RootDir)) => {}
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_the_job_are_normalized() {
        assert_eq!(resolve(Path::new("jobs"), "../runs"), PathBuf::from("runs"));
        assert_eq!(
            resolve(Path::new("."), "data/x.csv"),
            PathBuf::from("data/x.csv")
        );
        assert_eq!(
            resolve(Path::new("/a/b"), "../../../c"),
            PathBuf::from("/c")
        );
        assert_eq!(resolve(Path::new(".."), "x"), PathBuf::from("../x"));
        assert_eq!(resolve(Path::new("jobs"), "-"), PathBuf::from("-"));
    }

    #[test]
    fn every_path_hangs_off_the_run_root() {
        let p = JobPaths::new(Path::new("jobs"), "../runs", "leads");
        assert_eq!(p.job_root, PathBuf::from("runs/leads"));
        assert_eq!(p.lock, PathBuf::from("runs/leads/.lock"));
        assert_eq!(p.export_state, PathBuf::from("runs/leads/state.json"));
        assert_eq!(p.sim_state, PathBuf::from("runs/.sim/state.jsonl"));
        assert_eq!(p.resolve("data/x.csv"), PathBuf::from("jobs/data/x.csv"));
    }
}
