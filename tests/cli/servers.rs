//! Private database servers for the SQL tests (SPEC §12 R23): PostgreSQL and MariaDB, each
//! in its own temporary directory, on a free TCP port of 127.0.0.1 and a socket in that
//! directory; no system service, no fixed port. Stopped (and removed) when dropped.
//!
//! Both refuse to run as root, so as root (CI) they run as `nobody` through `setpriv`
//! (which execs: the child is the server itself, and killing it stops the server).
//! When a server's binaries are missing the test says so and is skipped — unless
//! `CDPJOB_REQUIRE_SERVICES=1` (`.ci/run` sets it), where a missing server fails it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The database user and password the tests' jobs connect with.
pub const USER: &str = "cdp";
pub const PASSWORD: &str = "pw-canary-7Qx9";
pub const DATABASE: &str = "crm";

/// `None` (with a visible notice) when `what` is not installed and services are optional.
#[track_caller]
pub fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("CDPJOB_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} is not installed, and CDPJOB_REQUIRE_SERVICES=1 requires it");
    }
    eprintln!("SKIPPED: {what} is not installed (`.ci/run` installs it)");
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the unprivileged user the servers run as.
fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A temporary directory the server's user owns.
fn server_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cdpjob-db-")
        .tempdir()
        .unwrap();
    if is_root() {
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn check(what: &str, out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let since = Instant::now();
    while !ready() {
        assert!(since.elapsed() < limit, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first of `names` found in one of `dirs`, or on PATH.
fn find(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    for name in names {
        for d in dirs {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A private PostgreSQL: database `crm`, owned by `cdp` (password [`PASSWORD`] over TCP).
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// Debian keeps the server's programs in /usr/lib/postgresql/<version>/bin.
    fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs.reverse();
        find(&["initdb"], &dirs).map(|p| p.parent().unwrap().to_path_buf())
    }

    pub fn start() -> Option<Postgres> {
        let Some(bin) = Postgres::bin_dir() else {
            return missing("PostgreSQL (initdb, pg_ctl)");
        };
        let dir = server_dir();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "postgres-admin\n").unwrap();
        if is_root() {
            std::os::unix::fs::chown(&pwfile, Some(65534), Some(65534)).unwrap();
        }
        check(
            "initdb",
            unprivileged(&bin.join("initdb"))
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                ])
                .args([
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                    "--no-instructions",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        check(
            "pg_ctl start",
            unprivileged(&bin.join("pg_ctl"))
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "60",
                ])
                .args(["-l", dir.path().join("log").to_str().unwrap(), "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .output()
                .unwrap(),
        );
        let pg = Postgres { dir, bin, port };
        pg.psql(
            "postgres",
            &format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"),
        );
        // Not in one -c with the role: CREATE DATABASE cannot run inside a transaction.
        pg.psql(
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {USER}"),
        );
        Some(pg)
    }

    /// Run `sql` in `database` as the superuser, over the socket.
    #[track_caller]
    pub fn psql(&self, database: &str, sql: &str) {
        check(
            "psql",
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.dir.path())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ])
                .args(["-c", sql])
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
    }

    /// Run `sql` in `crm` as `cdp`, over TCP (so what it creates is the user's own).
    #[track_caller]
    pub fn exec(&self, sql: &str) {
        check(
            "psql",
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args(["-p", &self.port.to_string(), "-U", USER, "-d", DATABASE])
                .args(["-c", sql])
                .env("PGPASSWORD", PASSWORD)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
    }

    pub fn url(&self, password: &str) -> String {
        format!(
            "postgres://{USER}:{password}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = unprivileged(&self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap()])
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private MariaDB: database `crm`, user `cdp` (password [`PASSWORD`], over TCP).
pub struct Mariadb {
    dir: TempDir,
    client: PathBuf,
    server: std::process::Child,
    pub port: u16,
}

impl Mariadb {
    pub fn start() -> Option<Mariadb> {
        let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
        let (Some(install), Some(daemon), Some(client)) = (
            find(&["mariadb-install-db", "mysql_install_db"], &sbin),
            find(&["mariadbd", "mysqld"], &sbin),
            find(&["mariadb", "mysql"], &sbin),
        ) else {
            return missing("MariaDB (mariadb-install-db, mariadbd)");
        };
        // The data directory. Its bootstrap failed now and then with many tests starting
        // servers at once on a loaded machine (not reproduced alone): a second try with a
        // fresh directory, and the first failure's output printed, before giving up.
        let install_in = |dir: &TempDir| {
            unprivileged(&install)
                .args(["--no-defaults", "--auth-root-authentication-method=normal"])
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .args(["--skip-test-db", "--skip-name-resolve"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let mut dir = server_dir();
        let first = install_in(&dir);
        if !first.status.success() {
            eprintln!(
                "mariadb-install-db failed once, trying again: {}{}",
                String::from_utf8_lossy(&first.stdout),
                String::from_utf8_lossy(&first.stderr)
            );
            dir = server_dir();
            check("mariadb-install-db", install_in(&dir));
        }
        let data = dir.path().join("data");
        let socket = dir.path().join("sock");
        let port = free_port();
        let server = unprivileged(&daemon)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
            ])
            .args([
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=32M",
            ])
            .arg(format!("--log-error={}", dir.path().join("log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let db = Mariadb {
            dir,
            client,
            server,
            port,
        };
        wait_until("mariadbd", Duration::from_secs(60), || {
            db.root_client()
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        db.sql(
            "",
            &format!(
                "CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4; CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';"
            ),
        );
        Some(db)
    }

    /// The server's root over its socket (no password: it is reachable only there and by
    /// the user owning the directory).
    fn root_client(&self) -> Command {
        let mut c = unprivileged(&self.client);
        c.arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-u", "root", "--default-character-set=utf8mb4"])
            .stdin(Stdio::null());
        c
    }

    /// Run `sql` in `database` (none: "") as root.
    #[track_caller]
    pub fn sql(&self, database: &str, sql: &str) {
        let mut c = self.root_client();
        if !database.is_empty() {
            c.arg(database);
        }
        check("mariadb", c.args(["-e", sql]).output().unwrap());
    }

    pub fn url(&self, password: &str) -> String {
        format!(
            "mysql://{USER}:{password}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
