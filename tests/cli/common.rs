//! A scratch workspace with job files and data, and the `cdpjob` command to run in it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// The repository root (for `jobs/`, `schemas/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cdpjob() -> Command {
    Command::cargo_bin("cdpjob").expect("the cdpjob binary is built")
}

/// A temporary directory holding the files of one test.
pub struct Workspace {
    pub dir: TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` to `name` (creating directories) and return its path.
    #[track_caller]
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `cdpjob ARGS…` run inside the workspace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = cdpjob();
        c.current_dir(self.dir.path()).args(args);
        c
    }
}

/// The output of a finished command as text.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[track_caller]
pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("cdpjob runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A valid batch_create job header (api block) for tests to append a source and mapping to.
pub const API: &str = "version: 1
name: t
kind: batch_create
api:
  base_url: sim
  tenant_id: 123
  app_key: k
";

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}
