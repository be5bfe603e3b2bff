//! `cdpjob status RUN_DIR`: what a run did or is doing, from its files alone.

use std::collections::HashSet;
use std::path::Path;

use serde_json::json;

use super::events::{Event, Part};
use super::exec::Summary;
use super::journal;
use super::run_dir::{self, Checkpoint, Manifest};
use crate::error::{Error, Result};

pub fn status(path: &Path, as_json: bool) -> Result<i32> {
    let manifest: Manifest = run_dir::read_json(&path.join(run_dir::MANIFEST))
        .map_err(|e| Error::Usage(format!("{} is not a run directory: {e}", path.display())))?;
    if manifest.export.is_some() {
        return export_status(path, &manifest, as_json);
    }
    let checkpoint: Checkpoint =
        run_dir::read_json(&path.join(run_dir::CHECKPOINT)).unwrap_or_default();
    let summary: Option<Summary> = run_dir::read_json(&path.join(run_dir::SUMMARY)).ok();
    let (events, _) = journal::read_all::<Event>(&path.join(run_dir::EVENTS))
        .map_err(|e| Error::Input(format!("cannot read the journal: {e}")))?;
    // Parts sent and not answered, in journal order (a part may be sent again on resume).
    let mut open: HashSet<Part> = HashSet::new();
    let (mut retries, mut requests, mut last_error, mut last_event) = (0u64, 0u64, None, None);
    for e in &events {
        match e {
            Event::Intent { part, at, .. } => {
                open.insert(*part);
                requests += 1;
                last_event = Some(at.clone());
            }
            Event::Outcome { part, at, .. } => {
                open.remove(part);
                last_event = Some(at.clone());
            }
            Event::Withdrawn { part, at } => {
                open.remove(part);
                requests = requests.saturating_sub(1);
                last_event = Some(at.clone());
            }
            Event::Retry { reason, at, .. } => {
                retries += 1;
                last_error = Some(reason.clone());
                last_event = Some(at.clone());
            }
            Event::Stopped { reason, at } => {
                last_error = Some(reason.clone());
                last_event = Some(at.clone());
            }
            Event::RunStarted { at, .. }
            | Event::Resumed { at }
            | Event::Bisect { at, .. }
            | Event::RunFinished { at, .. }
            | Event::Page { at, .. }
            | Event::ExportFinished { at, .. } => {
                last_event = Some(at.clone());
            }
        }
    }
    let mut in_doubt: Vec<u64> = open
        .iter()
        .filter(|p| !checkpoint.is_done(p.seq))
        .map(|p| p.seq)
        .collect();
    in_doubt.sort_unstable();
    in_doubt.dedup();
    let running = is_running(path);
    let state = match (&summary, running) {
        (_, true) => "running",
        (Some(s), _) if s.status == "finished" => "finished",
        _ => "interrupted",
    };
    let batches_done = checkpoint.done_below + checkpoint.done_above.len() as u64;
    let c = checkpoint.counts;
    let report = json!({
        "run_id": manifest.run_id,
        "status": state,
        "job": manifest.job_path,
        "counts": c,
        "batches_done": batches_done,
        "batches_in_doubt": in_doubt,
        "requests": requests,
        "retries": retries,
        "last_error": last_error,
        "started_at": manifest.started_at,
        "last_event_at": last_event,
        "finished_at": summary.as_ref().filter(|s| s.status == "finished").map(|s| s.finished_at.clone()),
    });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializes")
        );
    } else {
        println!("run {} ({}): {state}", manifest.run_id, manifest.job_path);
        println!(
            "rows {}: created {}, failed {}, rejected {}, skipped {}",
            c.rows, c.created, c.failed, c.rejected, c.skipped
        );
        println!(
            "batches done {batches_done}, in doubt {:?}, requests {requests}, retries {retries}",
            in_doubt
        );
        if let Some(e) = &last_error {
            println!("last error: {e}");
        }
        println!(
            "started {}, last activity {}",
            manifest.started_at,
            last_event.unwrap_or_default()
        );
    }
    Ok(0)
}

fn export_status(path: &Path, manifest: &Manifest, as_json: bool) -> Result<i32> {
    let mut report = crate::export::status_report(path, manifest)
        .map_err(|e| Error::Input(format!("cannot read the journal: {e}")))?;
    let state = if is_running(path) {
        "running"
    } else if report["finished"] == true {
        "finished"
    } else {
        "interrupted"
    };
    report["status"] = state.into();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializes")
        );
        return Ok(0);
    }
    let text = |k: &str| report[k].as_str().unwrap_or_default().to_string();
    println!("run {} ({}): {state}", manifest.run_id, manifest.job_path);
    println!(
        "exported {} customer{} in {} page{} ({} bytes written), retries {}",
        report["rows"],
        crate::export::plural(report["rows"].as_u64().unwrap_or(0)),
        report["pages"],
        crate::export::plural(report["pages"].as_u64().unwrap_or(0)),
        report["output_bytes"],
        report["retries"]
    );
    if state == "finished" {
        println!("output: {}", text("output"));
    } else {
        println!(
            "partial output: {} (continues after cursor {})",
            text("partial"),
            report["cursor"]
        );
    }
    if let Some(e) = report["last_error"].as_str() {
        println!("last error: {e}");
    }
    println!(
        "started {}, last activity {}",
        manifest.started_at,
        text("last_event_at")
    );
    Ok(0)
}

/// Whether a live process holds the job's lock (its pid is in `.lock` next to the run).
fn is_running(run_dir: &Path) -> bool {
    let Some(lock) = run_dir.parent().map(|p| p.join(".lock")) else {
        return false;
    };
    let Ok(file) = std::fs::File::open(&lock) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}
