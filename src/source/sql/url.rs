//! The connection string of a sql source, read from the environment variable the job names
//! (it holds a password, so the job file never does). Only [`DbUrl::expose`] gives the
//! text, to the driver; everything printed says which server and database, never the URL.

use std::fmt;
use std::path::{Path, PathBuf};

/// The database servers a sql source can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    /// MySQL and MariaDB (one protocol).
    Mysql,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A parsed connection string.
#[derive(Clone)]
pub struct DbUrl {
    pub backend: Backend,
    text: String,
    /// `sqlite://PATH`, resolved against the job file's directory.
    pub sqlite_path: Option<PathBuf>,
    /// `host:port` (or the socket directory) and the database, for messages.
    pub host: String,
    pub database: String,
    /// The password as written in the URL (percent-decoded too), to scrub from any
    /// message a driver hands back.
    password: Vec<String>,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.describe())
    }
}

impl DbUrl {
    /// Read and parse the connection string in the environment variable `var`; relative
    /// sqlite paths are resolved against `base_dir` (the job file's directory).
    pub fn from_env(var: &str, base_dir: &Path) -> Result<DbUrl, String> {
        match std::env::var(var) {
            Ok(text) if !text.trim().is_empty() => DbUrl::parse(text.trim(), base_dir)
                .map_err(|e| format!("the connection string in {var}: {e}")),
            Ok(_) => Err(format!("the environment variable {var} is empty")),
            Err(_) => Err(format!(
                "the environment variable {var} is not set: export the database's connection string there (postgres://…, mysql://… or sqlite://PATH)"
            )),
        }
    }

    pub fn parse(text: &str, base_dir: &Path) -> Result<DbUrl, String> {
        if let Some(rest) = text.strip_prefix("sqlite://") {
            let file = rest.split('?').next().unwrap_or_default();
            if file.is_empty() {
                return Err("sqlite:// needs a path, as in sqlite://customers.db".into());
            }
            let path = base_dir.join(file);
            return Ok(DbUrl {
                backend: Backend::Sqlite,
                text: text.to_string(),
                host: "localhost".into(),
                database: path.display().to_string(),
                sqlite_path: Some(path),
                password: Vec::new(),
            });
        }
        // Never echo the text: it may hold a password.
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        let backend = match url.scheme() {
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::Mysql,
            other => {
                return Err(format!(
                    "the scheme {other}:// is not one cdpjob reads: use postgres://, mysql:// or sqlite://"
                ));
            }
        };
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) if !h.is_empty() => h.to_string(),
            _ => url
                .query_pairs()
                .find(|(k, _)| k == "host" || k == "socket")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| "localhost".into()),
        };
        let database = url.path().trim_start_matches('/').to_string();
        let mut password = Vec::new();
        if let Some(p) = url.password().filter(|p| !p.is_empty()) {
            password.push(p.to_string());
            if let Ok(decoded) = percent_decode(p)
                && decoded != p
            {
                password.push(decoded);
            }
        }
        Ok(DbUrl {
            backend,
            text: text.to_string(),
            sqlite_path: None,
            host,
            database,
            password,
        })
    }

    /// The connection string itself, for the driver and nothing else.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Which database, for messages: `postgres database crm on db.example:5432`.
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite database {}", self.database),
            b => format!(
                "{} database {} on {}",
                b.as_str(),
                if self.database.is_empty() {
                    "(default)"
                } else {
                    &self.database
                },
                self.host
            ),
        }
    }

    /// `message` with the password taken out, in case a driver repeats what it was given.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.replace(&self.text, "[connection string]");
        for p in &self.password {
            out = out.replace(p.as_str(), "[redacted]");
        }
        out
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_server_never_the_password() {
        let u = DbUrl::parse(
            "postgres://app:s%3Dcret@db.example:5433/crm",
            Path::new("/j"),
        )
        .unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(u.describe(), "postgres database crm on db.example:5433");
        assert_eq!(
            u.scrub("auth failed for s=cret and s%3Dcret"),
            "auth failed for [redacted] and [redacted]"
        );
        assert!(!format!("{u:?}").contains("cret"));
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_job() {
        let u = DbUrl::parse("sqlite://data/c.db", Path::new("/jobs")).unwrap();
        assert_eq!(u.sqlite_path.as_deref(), Some(Path::new("/jobs/data/c.db")));
        let u = DbUrl::parse("sqlite:///abs/c.db", Path::new("/jobs")).unwrap();
        assert_eq!(u.sqlite_path.as_deref(), Some(Path::new("/abs/c.db")));
        assert!(DbUrl::parse("oracle://x/y", Path::new("/")).is_err());
        assert_eq!(
            DbUrl::parse("mysql://u@h/db", Path::new("/"))
                .unwrap()
                .backend,
            Backend::Mysql
        );
    }
}
