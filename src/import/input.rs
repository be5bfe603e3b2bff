//! Where an import's rows come from: the job's source, or, for a retry, the copy of the rows
//! it retries that it keeps in its own run directory (SPEC §7) — read on a resume too, so
//! a retry continues whatever has become of the run it retries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::job::Job;
use crate::run_dir::{self, KindRecord, RunDir};
use crate::source::records::CopiedRows;
use crate::source::{self, RecordSource, SourceSpec};

pub enum Input {
    /// The job's `source:`, at its resolved path.
    Source {
        spec: Box<SourceSpec>,
        path: PathBuf,
    },
    /// A sql source's rows, as the run copied them into its directory (SPEC §12 R12).
    Spool { path: PathBuf },
    /// A retry's copy; the columns of the CSV source the rows came from, if they did.
    Copied {
        path: PathBuf,
        csv_columns: Option<Vec<String>>,
    },
}

impl Input {
    /// The input of the run `kind` describes, in `dir`.
    pub fn of(job: &Job, dir: &RunDir, kind: &KindRecord) -> Result<Input, String> {
        match kind {
            KindRecord::BatchCreate {
                retry_of: Some(_),
                columns,
                ..
            } => Ok(Input::Copied {
                path: dir.file(run_dir::RETRY_INPUT),
                csv_columns: columns.clone(),
            }),
            KindRecord::BatchCreate { spool: Some(_), .. } => Ok(Input::Spool {
                path: dir.file(run_dir::SPOOL),
            }),
            _ => {
                let mut spec = super::source_of(job)?.clone();
                let path = job.resolve(&spec.path);
                // What `auto` picked at the start, not a new guess (SPEC §12 R13).
                if let KindRecord::BatchCreate {
                    encoding: Some(picked),
                    ..
                } = kind
                {
                    spec.encoding = Some(picked.clone());
                }
                Ok(Input::Source {
                    spec: Box::new(spec),
                    path,
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Input::Source { path, .. } | Input::Copied { path, .. } | Input::Spool { path } => path,
        }
    }

    /// Whether the rows come from standard input, which cannot be read twice.
    pub fn is_stdin(&self) -> bool {
        self.path() == Path::new("-")
    }

    /// Open it, adding every byte read to `bytes_read`.
    pub fn open(&self, bytes_read: Arc<AtomicU64>) -> Result<Box<dyn RecordSource>, String> {
        match self {
            Input::Source { spec, path } => {
                source::open_counted(spec, path, bytes_read).map_err(|e| e.to_string())
            }
            Input::Spool { path } => source::spool::open(path, bytes_read)
                .map_err(|e| format!("cannot read the spool {}: {e}", path.display())),
            Input::Copied { path, csv_columns } => {
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("cannot read the copied rows {}: {e}", path.display()))?;
                let reader = source::counted(std::io::BufReader::new(file), bytes_read);
                Ok(Box::new(CopiedRows::new(reader, csv_columns.clone())))
            }
        }
    }
}
