//! The job file as typed data. Its shape is checked by the schema first, so these types
//! only carry defaults and meaning; they never second-guess the schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// The parts of a job that belong to a lower layer are defined there, so that layer does not
// depend on jobs; they are re-exported here because a job file is where a user meets them.
pub use crate::api::sign::SignAlgorithm;
pub use crate::notify::{NotifySpec, RunEnd};
pub use crate::source::spec::{SourceKind, SourceSpec};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub kind: JobKind,
    pub api: ApiSpec,
    #[serde(default)]
    pub vars: serde_json::Map<String, Value>,
    #[serde(default)]
    pub source: Option<SourceSpec>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub mapping: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub merge: Merge,
    #[serde(default)]
    pub strict_binding: bool,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Change detection (SPEC §7): send every valid row, or only what changed.
    #[serde(default)]
    pub sync: SyncMode,
    #[serde(default)]
    pub guard: GuardSpec,
    /// Mapping tests (SPEC §10), run by `cdpjob test`; never part of a run.
    #[serde(default)]
    pub tests: Vec<TestCase>,
    #[serde(default)]
    pub query: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub output: Option<OutputSpec>,
    #[serde(default)]
    pub run: RunSpec,
    /// `notify:` — a webhook POST when a run ends (SPEC §10).
    #[serde(default)]
    pub notify: Option<NotifySpec>,
}

impl JobSpec {
    /// `query.parallel`: how many sub-windows of an export are paged at once (1 when unset).
    pub fn parallel(&self) -> usize {
        self.query
            .as_ref()
            .and_then(|q| q.get("parallel"))
            .and_then(Value::as_u64)
            .map_or(1, |k| k as usize)
    }
}

/// `sync:` — whether a run compares its customers with the last finished runs' (SPEC §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    #[default]
    All,
    Changed,
}

/// `guard:` — limits past which a run refuses to start or stops (exit 4, SPEC §7).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejected: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<Limit>,
}

/// One case of `tests:`: a source row and what the mapping must make of it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub row: serde_json::Map<String, Value>,
    /// Over the job's vars, for this case only.
    #[serde(default)]
    pub vars: serde_json::Map<String, Value>,
    // Exactly one of the three (the schema's `oneOf`); [`TestCase::expectation`] reads them.
    #[serde(default)]
    pub expect: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub reject: Option<String>,
    #[serde(default)]
    pub skip: Option<bool>,
}

/// What a test case says its row must become.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation<'a> {
    /// A customer with these fields (others are not compared).
    Customer(&'a serde_json::Map<String, Value>),
    /// A rejection, one of whose errors names this field.
    Rejected(&'a str),
    Skipped,
}

impl TestCase {
    pub fn expectation(&self) -> Expectation<'_> {
        match (&self.expect, &self.reject) {
            (Some(fields), _) => Expectation::Customer(fields),
            (None, Some(field)) => Expectation::Rejected(field),
            // The schema allows nothing else: `skip: true` is the one left.
            (None, None) => Expectation::Skipped,
        }
    }
}

/// A guard's limit: a number of rows, or a percentage of some base (`"5%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Rows(u64),
    Percent(f64),
}

impl Limit {
    /// Whether `count` rows out of `base` is past the limit.
    pub fn exceeded(self, count: u64, base: u64) -> bool {
        match self {
            Limit::Rows(n) => count > n,
            Limit::Percent(p) => base > 0 && (count as f64) * 100.0 > p * base as f64,
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Rows(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Rows(n) => s.serialize_u64(*n),
            Limit::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Rows(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Rows(n) => Ok(Limit::Rows(n)),
            Raw::Text(t) => t
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(Limit::Percent)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{t:?} is not a number or a percentage like \"5%\""
                    ))
                }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    BatchCreate,
    QueryExport,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::BatchCreate => "batch_create",
            JobKind::QueryExport => "query_export",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    pub base_url: String,
    pub tenant_id: i64,
    pub app_key: String,
    #[serde(default = "default_access_key_env")]
    pub access_key_env: String,
    #[serde(default = "default_access_secret_env")]
    pub access_secret_env: String,
    #[serde(default)]
    pub sign_algorithm: SignAlgorithm,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub requests_per_second: Option<f64>,
}

/// How the API merges a record into an existing customer (the body's `type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    Replace,
    #[default]
    Update,
    Keep,
}

impl Merge {
    /// The wire value of `type`.
    pub fn wire_type(self) -> u8 {
        match self {
            Merge::Replace => 0,
            Merge::Update => 1,
            Merge::Keep => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Merge::Replace => "replace",
            Merge::Update => "update",
            Merge::Keep => "keep",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub path: String,
    #[serde(default)]
    pub format: OutputFormat,
    /// The columns (CSV, xlsx) or keys (JSON Lines), in order; by default every scalar field
    /// (CSV, xlsx) or each customer whole (JSON Lines).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// CSV: start the file with a UTF-8 byte-order mark, which spreadsheet programs need to
    /// read it as UTF-8.
    #[serde(default)]
    pub bom: bool,
    /// CSV: a text cell that a spreadsheet would run as a formula gets a leading `'`.
    #[serde(default = "default_formula_guard")]
    pub formula_guard: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Csv,
    Jsonl,
    Xlsx,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Xlsx => "xlsx",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default = "default_run_root")]
    pub root: String,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            root: default_run_root(),
        }
    }
}

/// Template values given on the command line (`--var k=v`) win over the file's `vars`.
pub type VarOverrides = BTreeMap<String, String>;

fn default_batch_size() -> usize {
    100
}
fn default_access_key_env() -> String {
    "NXCLOUD_ACCESS_KEY".into()
}
fn default_access_secret_env() -> String {
    "NXCLOUD_ACCESS_SECRET".into()
}
fn default_timeout() -> u64 {
    30
}
fn default_max_retries() -> u32 {
    5
}
fn default_concurrency() -> usize {
    4
}
fn default_formula_guard() -> bool {
    true
}
fn default_run_root() -> String {
    "runs".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_rows_or_percentages() {
        let g: GuardSpec =
            serde_json::from_str(r#"{"max_rejected": 10, "max_failed": "2.5%"}"#).unwrap();
        assert_eq!(g.max_rejected, Some(Limit::Rows(10)));
        assert_eq!(g.max_failed, Some(Limit::Percent(2.5)));
        assert!(serde_json::from_str::<Limit>(r#""many""#).is_err());
        assert!(!Limit::Rows(10).exceeded(10, 100) && Limit::Rows(10).exceeded(11, 100));
        assert!(!Limit::Percent(2.5).exceeded(25, 1000) && Limit::Percent(2.5).exceeded(26, 1000));
        assert!(!Limit::Percent(0.0).exceeded(0, 0));
    }
}
