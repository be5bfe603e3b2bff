//! A scratch workspace with job files and data, and the `cdpjob` command to run in it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        SimProcess::start_at("127.0.0.1:0", args)
    }

    /// A simulator listening on `listen` (`127.0.0.1:0` picks a free port): a second one
    /// started on the address of one stopped takes its place for the jobs that name it.
    pub fn start_at(listen: &str, args: &[&str]) -> SimProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"))
            .args(["sim", "--listen", listen])
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

    /// The requests it has received so far (`/__sim/stats`).
    pub fn requests(&self) -> u64 {
        self.get("/__sim/stats")["requests"].as_u64().unwrap()
    }

    /// `host:port`, for [`SimProcess::start_at`].
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
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

/// Write `rows` leads as CSV to `path`: every 10th has no contact channel (rejected), every
/// 15th is inactive (skipped by a `row.status != 'inactive'` filter); the others are valid,
/// with the phone `86139<row, 8 digits>`. Streamed, so a source of any size stays cheap.
#[track_caller]
pub fn write_leads(path: &Path, rows: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "name,phone,email,status,agent").unwrap();
    for i in 1..=rows {
        let phone = if i % 10 == 0 {
            String::new()
        } else {
            format!("86139{i:08}")
        };
        let status = if i % 15 == 0 { "inactive" } else { "active" };
        writeln!(out, "Lead {i},{phone},,{status},agent-1").unwrap();
    }
    out.flush().unwrap();
}

/// The rows of [`write_leads`] that are neither rejected nor skipped.
pub fn valid_leads(rows: u64) -> std::collections::BTreeSet<u64> {
    (1..=rows).filter(|i| i % 15 != 0 && i % 10 != 0).collect()
}

/// A `cdpjob` process running in the background, which a test waits for with a deadline
/// (never forever: a stop that hangs must fail the test, not the suite). Its output is
/// drained by threads, so a chatty child never blocks on a full pipe.
pub struct Running {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a [`Running`] process ended.
#[derive(Debug)]
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Workspace {
    /// `cdpjob ARGS…` started inside the workspace with `env` added, not waited for.
    pub fn spawn<K, V>(&self, args: &[&str], env: impl IntoIterator<Item = (K, V)>) -> Running
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_cdpjob"))
            .current_dir(self.dir.path())
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cdpjob starts");
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        Running {
            stdout: Some(drain(Box::new(child.stdout.take().unwrap()))),
            stderr: Some(drain(Box::new(child.stderr.take().unwrap()))),
            child,
        }
    }
}

/// The simulator's built-in credentials, for `Workspace::spawn`; `secret` replaces the
/// secret (a wrong one, to be refused).
pub fn sim_env(secret: Option<&str>) -> [(&'static str, String); 2] {
    [
        ("NXCLOUD_ACCESS_KEY", "cdpjob-sim".to_string()),
        (
            "NXCLOUD_ACCESS_SECRET",
            secret.unwrap_or("cdpjob-sim-secret").to_string(),
        ),
    ]
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True once the process has exited (it is not reaped twice: `wait_within` still works).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Send `signal` (`TERM`, `INT`) with kill(1): no libc in the tests.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Poll until `cond` holds, while the process runs; fail (killing it) if it exits first
    /// or `limit` passes.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let since = Instant::now();
        while !cond() {
            if self.has_exited() {
                let out = self.finish();
                panic!(
                    "the process exited ({:?}) before {what}\n{}{}",
                    out.code, out.stdout, out.stderr
                );
            }
            if since.elapsed() > limit {
                let _ = self.child.kill();
                let out = self.finish();
                panic!(
                    "no {what} within {limit:?}; killed\n{}{}",
                    out.stdout, out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the process to exit, at most `limit` from now: past it, kill it and fail.
    #[track_caller]
    pub fn wait_within(mut self, limit: Duration) -> Exited {
        let since = Instant::now();
        while !self.has_exited() {
            if since.elapsed() > limit {
                let _ = self.child.kill();
                let out = self.finish();
                panic!(
                    "still running {limit:?} later (a hang?); killed it\nstdout:\n{}\nstderr:\n{}",
                    out.stdout, out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.finish()
    }

    fn finish(&mut self) -> Exited {
        let status = self.child.wait().expect("wait");
        let text = |h: &mut Option<std::thread::JoinHandle<String>>| {
            h.take().map(|h| h.join().unwrap()).unwrap_or_default()
        };
        Exited {
            code: status.code(),
            stdout: text(&mut self.stdout),
            stderr: text(&mut self.stderr),
        }
    }
}

impl Drop for Running {
    /// A test that fails half-way leaves no process behind.
    fn drop(&mut self) {
        if self.stdout.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The job's lock (`<run root>/<name>/.lock`) is free: no process holds it.
#[track_caller]
pub fn assert_lock_free(lock: &Path) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock)
        .unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    match file.try_lock() {
        Ok(()) => file.unlock().unwrap(),
        Err(e) => panic!("{} is still locked: {e}", lock.display()),
    }
}

/// The run directories under a job's root (`runs/<name>`): those holding a manifest, sorted
/// by name (a run id sorts by its start, to the second). None when there is no root yet.
pub fn run_dirs(job_root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dirs_in(job_root);
    dirs.retain(|d| d.join("manifest.json").exists());
    dirs
}

/// Every directory under `root`, sorted: where a command must leave no run directory
/// behind, not even an empty one.
pub fn dirs_in(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}
