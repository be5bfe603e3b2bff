//! What an export has written, as `checkpoint.json` records it after every page: the
//! cursor to continue from and the committed length of the partial output (a resume cuts
//! the output back to it, then asks for the page after the cursor again).

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
}
