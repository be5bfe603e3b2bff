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

/// A `cdpjob sim` process on an ephemeral loopback port, killed when dropped.
pub struct SimProcess {
    child: std::process::Child,
    pub url: String,
}

impl SimProcess {
    pub fn start(args: &[&str]) -> SimProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"))
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("NXCLOUD_ACCESS_SECRET")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cdpjob sim starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        SimProcess { child, url }
    }

    /// GET a `/__sim/…` view as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.url);
        cdpjob::api::client::install_crypto_provider();
        let text = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
        })
        .join()
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn customers(&self) -> Vec<serde_json::Value> {
        self.get("/__sim/customers").as_array().unwrap().clone()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials of a simulator started without a secret in the environment.
pub fn with_sim_credentials(cmd: &mut Command) {
    cmd.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret");
}

/// Read a JSON Lines file.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// Run `cmd` with the failpoint `point` armed at its `nth` hit, and check it crashed there.
#[cfg(feature = "failpoints")]
#[track_caller]
pub fn crash_at(mut cmd: Command, point: &str, nth: &str) {
    cmd.env("CDPJOB_FAILPOINT", format!("{point}:{nth}"));
    let out = run(cmd);
    assert_ne!(out.code, 0, "{point}:{nth} did not crash: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("failpoint {point} reached")),
        "{point}:{nth}: {}",
        out.stderr
    );
}
