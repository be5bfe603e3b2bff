//! What an export's window has written, as its checkpoint records it after every page: the
//! cursor to continue from and the committed lengths of the partial output and its sidecar
//! (a resume cuts both back to them, then asks for the page after the cursor again). With
//! sub-windows, `checkpoint.json` is written once they are all joined: the whole export's.

use serde::{Deserialize, Serialize};

/// What an export has written: the cursor to continue from and the output's committed
/// length (a resume cuts the output back to it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    /// The `after` cursor of the next page; none before the first page.
    pub after: Option<i64>,
    pub pages: u64,
    pub rows: u64,
    pub output_len: u64,
    /// The id of the last customer written.
    pub last_id: Option<i64>,
    /// Every page is written: what is left is renaming the output and recording the state.
    pub complete: bool,
    /// `max_records` ended the export while the API had more.
    pub capped: bool,
    /// The committed length of the window's sidecar of ids and cursors (`seen.rs`).
    #[serde(default)]
    pub seen_len: u64,
}
