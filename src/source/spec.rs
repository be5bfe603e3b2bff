//! What a job file says about its source (`source:`): the kind of file, where it is and how
//! to read it. It lives with the readers rather than with the job so that a source can be
//! opened without knowing about jobs; the job model re-exports it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// A file's path; empty for `sql`, which has none.
    #[serde(default)]
    pub path: String,
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default = "default_quote")]
    pub quote: String,
    #[serde(default = "default_true")]
    pub header: bool,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// `utf-8` when absent; `auto` guesses (see `encoding.rs`).
    #[serde(default)]
    pub encoding: Option<String>,
    /// `sql`: the environment variable holding the connection string (it holds a password,
    /// so the job file names the variable, never the URL).
    #[serde(default)]
    pub url_env: Option<String>,
    /// `sql`: the query whose rows are the records.
    #[serde(default)]
    pub query: Option<String>,
    /// `gzip`, `zstd` or `none`; when absent, the path's extension decides.
    #[serde(default)]
    pub compression: Option<String>,
    /// xlsx: the sheet, by name or 1-based position (default the first).
    #[serde(default)]
    pub sheet: Option<SheetRef>,
    /// xlsx: the row that names the columns, as the spreadsheet numbers it (default 1).
    #[serde(default)]
    pub header_row: Option<u32>,
}

/// A sheet of a workbook, as `source.sheet` names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SheetRef {
    /// 1-based, in the workbook's order.
    Position(u32),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Csv,
    Jsonl,
    Json,
    Xlsx,
    Sql,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Csv => "csv",
            SourceKind::Jsonl => "jsonl",
            SourceKind::Json => "json",
            SourceKind::Xlsx => "xlsx",
            SourceKind::Sql => "sql",
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn default_true() -> bool {
    true
}
