//! The end of an export: the complete partial file moved into place — never over another
//! file — and the state the next run starts from, written only when this export may move
//! the window forward. Each step is idempotent, so a crash anywhere is mended by `resume`.

use std::fs::OpenOptions;
use std::path::Path;

use serde_json::{Map, Value};

use super::checkpoint::ExportCheckpoint;
use crate::query;
use crate::run_dir::events::now;
use crate::run_dir::{ExportRecord, atomic};
use crate::runner::Stop;

/// Move the complete partial file into place, never over another file: a hard link fails
/// when the target exists (a plain rename would replace it silently), then the partial name
/// goes. Idempotent across a crash at any point in between.
pub fn finish_output(partial: &Path, output: &Path, len: u64, durable: bool) -> Result<(), Stop> {
    let taken = |what: &str| {
        Stop::resumable(format!(
            "{} {what}; this export's file is kept as {}: move one of them, then `cdpjob resume` again",
            output.display(),
            partial.display()
        ))
    };
    let io = |e: std::io::Error| {
        Stop::resumable(format!(
            "moving the export into {}: {e}; the run can be resumed",
            output.display()
        ))
    };
    match std::fs::metadata(partial) {
        Ok(meta) => {
            if meta.len() < len {
                return Err(Stop::not_resumable(format!(
                    "{} holds {} bytes, fewer than the {len} the checkpoint counts: it was changed since; start a new run",
                    partial.display(),
                    meta.len()
                )));
            }
            let f = OpenOptions::new().write(true).open(partial).map_err(io)?;
            f.set_len(len).map_err(io)?;
            if durable {
                f.sync_all().map_err(io)?;
            }
            drop(f);
            match std::fs::hard_link(partial, output) {
                Ok(()) => {
                    crate::failpoint!("export_after_link");
                    std::fs::remove_file(partial).map_err(io)?;
                }
                // A crash after the link and before the unlink leaves both names on one file.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !same_file(partial, output).map_err(io)? {
                        return Err(taken("appeared since this export started"));
                    }
                    std::fs::remove_file(partial).map_err(io)?;
                }
                // A file system without hard links: rename, having just looked.
                Err(_) if !output.exists() => std::fs::rename(partial, output).map_err(io)?,
                Err(_) => return Err(taken("appeared since this export started")),
            }
            if let Some(d) = output.parent() {
                atomic::sync_dir(d).map_err(io)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::metadata(output) {
            // Already moved by an earlier attempt that stopped before the state.
            Ok(meta) if meta.len() == len => Ok(()),
            Ok(_) => Err(taken(
                "is not the file this export wrote (its length differs)",
            )),
            Err(e) => Err(Stop::not_resumable(format!(
                "neither {} nor {} can be read ({e}): the export's file was removed; start a new run",
                partial.display(),
                output.display()
            ))),
        },
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Whether this export may write the state: not when another run has advanced it since
/// this one read it (a late resume must not move the window backwards).
pub fn state_moved_on(rec: &ExportRecord, run_id: &str) -> Result<Option<String>, Stop> {
    let now = query::read_state(Path::new(&rec.state_file)).map_err(Stop::not_resumable)?;
    // Unchanged, or changed by this very run (a resume after a crash that followed the
    // state's write): write it (again).
    if now == rec.state_read || now.get("run_id").and_then(Value::as_str) == Some(run_id) {
        return Ok(None);
    }
    let theirs = now
        .get("last_end_time")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Some(format!(
        "{} changed since this export started (another run recorded last_end_time {theirs:?}); it is left as it is, so this late export does not move the next window backwards",
        rec.state_file
    )))
}

/// The state the next run reads: the window this one covered and where it ended.
pub fn next_state(rec: &ExportRecord, cp: &ExportCheckpoint, run_id: &str) -> Map<String, Value> {
    let mut state = Map::new();
    // Without an end_time the window had no end: keep the previous end rather than claim one.
    if let Some(end) = rec
        .window_end
        .clone()
        .map(Value::from)
        .or_else(|| rec.state_read.get("last_end_time").cloned())
    {
        state.insert("last_end_time".into(), end);
    }
    // An empty window leaves the previous last id standing.
    let last_id = cp
        .last_id
        .map(Value::from)
        .or_else(|| rec.state_read.get("last_id").cloned())
        .unwrap_or(Value::Null);
    state.insert("last_id".into(), last_id);
    state.insert("run_id".into(), Value::from(run_id));
    state.insert("rows".into(), Value::from(cp.rows));
    state.insert("output".into(), Value::from(rec.output.clone()));
    state.insert("finished_at".into(), Value::from(now().to_string()));
    state
}
