//! An import's result files read back (`cdpjob rows`, `cdpjob retry`): only what the run's
//! checkpoint counts. A line past that length is not committed — a crash may have torn it,
//! and a resume cuts it off to write it again — so it is never read as a result.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Checkpoint;
use crate::run_dir;

/// The three per-row result files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    Created,
    Failed,
    Rejected,
}

impl RowOutcome {
    pub fn file_name(self) -> &'static str {
        match self {
            RowOutcome::Created => run_dir::CREATED,
            RowOutcome::Failed => run_dir::FAILED,
            RowOutcome::Rejected => run_dir::REJECTED,
        }
    }

    fn committed_len(self, cp: &Checkpoint) -> u64 {
        match self {
            RowOutcome::Created => cp.created_len,
            RowOutcome::Failed => cp.failed_len,
            RowOutcome::Rejected => cp.rejected_len,
        }
    }
}

/// The committed lines of one result file, with the byte offset each starts at.
pub struct CommittedLines {
    pub path: PathBuf,
    /// None: the file is not there, and the checkpoint counts nothing in it.
    reader: Option<io::Take<BufReader<File>>>,
    offset: u64,
}

/// The committed lines of `outcome`'s file in the run directory `dir`.
pub fn committed(dir: &Path, outcome: RowOutcome) -> io::Result<CommittedLines> {
    let cp: Checkpoint = match run_dir::read_versioned(&dir.join(run_dir::CHECKPOINT)) {
        Ok(cp) => cp,
        // No batch committed yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Checkpoint::default(),
        Err(e) => return Err(e),
    };
    let path = dir.join(outcome.file_name());
    let len = outcome.committed_len(&cp);
    let reader = match File::open(&path) {
        Ok(f) => Some(BufReader::new(f).take(len)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && len == 0 => None,
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    Ok(CommittedLines {
        path,
        reader,
        offset: 0,
    })
}

impl Iterator for CommittedLines {
    /// A line without its newline, and where it starts.
    type Item = io::Result<(u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        match self.reader.as_mut()?.read_line(&mut line) {
            Ok(0) => None,
            Ok(n) => {
                let at = self.offset;
                self.offset += n as u64;
                if line.ends_with('\n') {
                    line.pop();
                }
                Some(Ok((at, line)))
            }
            Err(e) => Some(Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            ))),
        }
    }
}

/// The line of `path` that starts at `offset` (one [`CommittedLines`] gave), without its
/// newline. `file` is that path opened, reused from one line to the next.
pub fn line_at(file: &mut BufReader<File>, offset: u64) -> io::Result<String> {
    file.seek(SeekFrom::Start(offset))?;
    let mut line = String::new();
    file.read_line(&mut line)?;
    if line.ends_with('\n') {
        line.pop();
    }
    Ok(line)
}
