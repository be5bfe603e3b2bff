//! Replacing a file atomically and durably: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory. A crash at any point leaves
//! either the old file or the new one, never a mix. Any failure is an error the caller must
//! stop on: a failed fsync is never retried and ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Whether to fsync at all. Only a benchmark measuring what the fsyncs cost switches them
/// off (`CDPJOB_UNSAFE_NO_FSYNC=1`); a run without them is not crash-safe.
pub fn durable() -> bool {
    static DURABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DURABLE.get_or_init(|| std::env::var_os("CDPJOB_UNSAFE_NO_FSYNC").is_none())
}

/// fsync a directory, so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if !durable() {
        return Ok(());
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Create a file readable by its owner only (run directories hold personal data).
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Open an append-only output (owner-only) for appending at `len`, the length a checkpoint
/// counted: whatever a crash left after it is cut off, to be written again. A file shorter
/// than that was cut or replaced behind our back, and is refused rather than padded.
pub fn open_at_length(path: &Path, len: u64) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).write(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    let have = f.metadata()?.len();
    if have < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds {have} bytes, fewer than the {len} the checkpoint counts: it was changed or removed since; start a new run",
                path.display()
            ),
        ));
    }
    f.set_len(len)?;
    io::Seek::seek(&mut f, io::SeekFrom::End(0))?;
    Ok(f)
}

/// Atomically replace `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, for a file too large to build in memory first.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = io::BufWriter::with_capacity(1 << 16, create_private(&tmp)?);
        write(&mut f)?;
        let f = f.into_inner().map_err(io::IntoInnerError::into_error)?;
        if durable() {
            f.sync_all()?;
        }
    }
    crate::failpoint!("atomic_before_rename");
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.json");
        write_atomic(&p, b"{\"a\":1}").unwrap();
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checkpoint.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
