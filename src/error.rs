//! One error type for the whole tool: what went wrong, how it is shown, and which exit code
//! it means (SPEC §3 and §12 R1: 2 for a bad job, arguments or environment, or a stop no
//! retry can mend; 3 when trying again — `cdpjob resume`, or the same command — can succeed;
//! 4 when a guard refused the run: a person must look before anything tries again).
//!
//! A run that stops is not an error: it ends with a summary and an [`crate::runner::Outcome`].
//! This type is for what keeps a command from producing its normal output at all.

use std::path::PathBuf;

use crate::api::client::ApiError;
use crate::job::JobErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more job files have problems; each is rendered with positions.
    #[error("{}", .0.iter().map(|e| e.render()).collect::<String>())]
    Job(Vec<JobErrors>),
    /// The command line asks for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// The machine is not set up for it: a missing credential, an unusable directory.
    #[error("{0}")]
    Environment(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The API refused, or could not be reached after every retry.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The command stopped before its end: how it may be tried again, if at all.
    #[error("{reason}")]
    Stopped { reason: String, again: Again },
    /// A guard (SPEC §7) refused the run before its first request: nothing was sent and no
    /// run directory was made. Trying again gives the same answer: someone must fix the
    /// mapping or the source first, so it is exit 4, never 3.
    #[error("{reason}")]
    Guard {
        reason: String,
        /// What the reader needs to fix it (the counts by reason), and what to do.
        report: String,
        /// The same for `--json`, as the document's `guard`.
        detail: serde_json::Value,
    },
}

/// What can be done about a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Again {
    /// `cdpjob resume DIR` continues it.
    Resume(PathBuf),
    /// Running the same command again can succeed (another run holds the lock, say).
    RunAgain,
    /// No resume can mend it (a file changed behind the run's back, a source that cannot be
    /// read again): the run directory is kept for the record; a new run is the remedy.
    Never(PathBuf),
}

impl From<crate::source::OpenError> for Error {
    /// A source that cannot be opened: a database that cannot be reached now is "try again
    /// later" (exit 3, SPEC §12 R1); anything else is the job's or the environment's fault.
    fn from(e: crate::source::OpenError) -> Error {
        match e {
            crate::source::OpenError::Unreachable(m) => Error::stopped(m, Again::RunAgain),
            other => Error::Usage(other.to_string()),
        }
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn stopped(reason: impl Into<String>, again: Again) -> Error {
        Error::Stopped {
            reason: reason.into(),
            again,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Job(_) | Error::Usage(_) | Error::Environment(_) => 2,
            // A file that is not there, not ours to read, or not what it should be will not
            // be mended by trying again; a full disk or a failed fsync may be.
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory => 2,
                _ => 3,
            },
            Error::Api(ApiError::Config(_)) => 2,
            Error::Api(_) => 3,
            Error::Stopped { again, .. } => match again {
                Again::Resume(_) | Again::RunAgain => 3,
                Again::Never(_) => 2,
            },
            Error::Guard { .. } => 4,
        }
    }

    /// The run directory this error leaves behind, if any.
    pub fn run_dir(&self) -> Option<&PathBuf> {
        match self {
            Error::Stopped {
                again: Again::Resume(dir) | Again::Never(dir),
                ..
            } => Some(dir),
            _ => None,
        }
    }

    pub fn resumable(&self) -> bool {
        matches!(
            self,
            Error::Stopped {
                again: Again::Resume(_),
                ..
            }
        )
    }

    /// The text for stderr: job diagnostics carry their own `file:line:col:` prefixes,
    /// everything else reads `error: …`, with the causes of an I/O failure.
    pub fn render(&self) -> String {
        match self {
            Error::Job(_) => self.to_string(),
            Error::Stopped {
                again: Again::Resume(dir),
                reason,
            } => format!(
                "error: {reason}\nresume with: cdpjob resume {}\n",
                dir.display()
            ),
            Error::Guard { reason, report, .. } => format!("error: {reason}\n{report}"),
            _ => format!("error: {self}\n"),
        }
    }

    /// The document `--json` prints instead of its usual one (SPEC §12 R1, R2).
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "format_version": crate::run_dir::FORMAT_VERSION,
            "error": match self {
                Error::Job(files) => files
                    .iter()
                    .map(|f| f.render())
                    .collect::<String>(),
                _ => self.to_string(),
            },
            "exit_code": self.exit_code(),
            "run_dir": self.run_dir().map(|d| d.display().to_string()),
            "resumable": self.resumable(),
        });
        if let Error::Guard { detail, .. } = self {
            doc["guard"] = detail.clone();
        }
        doc
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_r1() {
        let dir = PathBuf::from("runs/t/x");
        let cases = [
            (Error::Usage("u".into()), 2, false),
            (Error::Environment("e".into()), 2, false),
            (
                Error::io("writing the manifest", std::io::Error::other("full")),
                3,
                false,
            ),
            (
                Error::io(
                    "cannot read the body",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ),
                2,
                false,
            ),
            (Error::stopped("s", Again::Resume(dir.clone())), 3, true),
            (Error::stopped("s", Again::RunAgain), 3, false),
            (Error::stopped("s", Again::Never(dir)), 2, false),
            (Error::Api(ApiError::Config("bad url".into())), 2, false),
            (
                Error::Guard {
                    reason: "g".into(),
                    report: String::new(),
                    detail: serde_json::json!({"name": "max_rejected"}),
                },
                4,
                false,
            ),
        ];
        for (e, code, resumable) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
            assert_eq!(e.resumable(), resumable, "{e:?}");
            assert_eq!(e.to_json()["exit_code"], code);
            assert_eq!(e.to_json()["format_version"], 1);
            assert!(e.to_json()["run_dir"].is_null() || e.run_dir().is_some());
        }
    }
}
