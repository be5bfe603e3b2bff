//! The stretches of time an export pages through on their own. With `query.parallel: 1`
//! (the default) there is one: the whole query, its partial output beside the output file
//! and its checkpoint the run's `checkpoint.json`. With `parallel: K` the query's window
//! [start_time, end_time] is split into at least 4×K sub-windows (SPEC §12 R16), taken
//! from a queue by K workers, each with its own partial file and checkpoint inside the run
//! directory; when all are complete they are joined in time order into the output.

use std::path::PathBuf;

use jiff::civil::DateTime;
use serde_json::Value;

use crate::run_dir::{ExportRecord, RunDir, SubWindow};

/// The API's time format.
const API_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// Split [start, end] into `4 × parallel` sub-windows of equal length (fewer when the
/// window has fewer seconds). Each ends where the next starts: a customer created on a
/// boundary may come back from both, and is written once.
pub fn split(start: &str, end: &str, parallel: usize) -> Result<Vec<SubWindow>, String> {
    let parse = |t: &str| {
        DateTime::strptime(API_TIME, t)
            .map_err(|e| format!("`{t}` is not a time like 2024-01-31 23:59:59: {e}"))
    };
    let (from, to) = (parse(start)?, parse(end)?);
    let seconds = from
        .until((jiff::Unit::Second, to))
        .map_err(|e| e.to_string())?
        .get_seconds();
    if seconds <= 0 {
        return Err(format!(
            "the window from {start} to {end} is empty: start_time must come before end_time"
        ));
    }
    let n = (4 * parallel.max(1) as i64).min(seconds);
    let at = |i: i64| -> Result<String, String> {
        let offset = jiff::Span::new().seconds(seconds * i / n);
        from.checked_add(offset)
            .map(|t| t.strftime(API_TIME).to_string())
            .map_err(|e| e.to_string())
    };
    (0..n)
        .map(|i| {
            Ok(SubWindow {
                start_time: at(i)?,
                end_time: if i + 1 == n {
                    end.to_string()
                } else {
                    at(i + 1)?
                },
            })
        })
        .collect()
}

/// Where one window's pages go.
#[derive(Debug, Clone)]
pub struct Window {
    pub index: usize,
    /// The first page's body.
    pub request: Value,
    pub partial: PathBuf,
    pub checkpoint: PathBuf,
    /// The header goes into this window's partial (the only window of the export); with
    /// sub-windows it goes in once, when they are joined.
    pub with_header: bool,
}

/// The windows of an export, in time order.
pub fn windows(rec: &ExportRecord, dir: &RunDir) -> Vec<Window> {
    if rec.windows.is_empty() {
        return vec![Window {
            index: 0,
            request: rec.request.clone(),
            partial: PathBuf::from(&rec.partial),
            checkpoint: dir.file(crate::run_dir::CHECKPOINT),
            with_header: true,
        }];
    }
    rec.windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut request = rec.request.clone();
            request["start_time"] = Value::from(w.start_time.clone());
            request["end_time"] = Value::from(w.end_time.clone());
            Window {
                index: i,
                request,
                partial: dir.path.join("windows").join(format!("w{i:03}.partial")),
                checkpoint: dir
                    .path
                    .join("windows")
                    .join(format!("w{i:03}.checkpoint.json")),
                with_header: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_splits_into_four_per_worker_end_to_end() {
        let w = split("2024-01-01 00:00:00", "2024-01-02 00:00:00", 2).unwrap();
        assert_eq!(w.len(), 8);
        assert_eq!(w[0].start_time, "2024-01-01 00:00:00");
        assert_eq!(w[0].end_time, "2024-01-01 03:00:00");
        assert!(w.windows(2).all(|p| p[0].end_time == p[1].start_time));
        assert_eq!(w[7].end_time, "2024-01-02 00:00:00");
    }

    #[test]
    fn a_short_window_gets_no_more_sub_windows_than_seconds() {
        let w = split("2024-01-01 00:00:00", "2024-01-01 00:00:03", 4).unwrap();
        assert_eq!(w.len(), 3);
        assert!(split("2024-01-01 00:00:03", "2024-01-01 00:00:03", 4).is_err());
        assert!(split("2024-01-01", "2024-01-02 00:00:00", 4).is_err());
    }
}
