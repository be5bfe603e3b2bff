//! One error type for the whole tool: how each failure is shown and which exit code it
//! means (SPEC §3: 2 for a bad job, arguments or environment; 3 for a run stopped early).

use crate::job::JobErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more job files have problems; each is rendered with positions.
    #[error("{}", .0.iter().map(|e| e.render()).collect::<String>())]
    Job(Vec<JobErrors>),
    /// Bad arguments or environment.
    #[error("{0}")]
    Usage(String),
    /// Reading the source failed part way (I/O), so the preview is incomplete.
    #[error("{0}")]
    Input(String),
    /// A run stopped early and can be resumed (or another run holds the lock).
    #[error("{0}")]
    Stopped(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Job(_) | Error::Usage(_) => 2,
            Error::Input(_) | Error::Stopped(_) => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
