//! `cdpjob test JOB…` (SPEC §10): the cases of a job's `tests:` block, each row mapped by
//! the job's own mapping and filter — the same [`Mapper`] a run uses, so a test that passes
//! says what a run will send — and compared with what the case expects. Nothing is read
//! from the source and nothing is sent, so it runs in CI next to `validate`.

mod render;
mod row;
mod verdict;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::Pos;
use crate::job::model::{Expectation, SourceKind, TestCase, VarOverrides};
use crate::job::{self, Job, JobErrors, yaml};
use crate::mapping::{Mapper, Outcome};

pub use verdict::{FieldDiff, Got, Rejection};

/// Every job file's cases and how they went.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub jobs: Vec<JobTests>,
    pub passed: usize,
    pub failed: usize,
    /// Job files that did not load (their problems are reported apart).
    #[serde(skip)]
    pub unloaded: usize,
}

impl TestReport {
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.unloaded == 0
    }
}

#[derive(Debug, Serialize)]
pub struct JobTests {
    pub path: PathBuf,
    pub name: String,
    pub cases: Vec<CaseResult>,
    /// For the failing cases' `file:line:col` with their line.
    #[serde(skip)]
    text: String,
}

#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    /// Where the case is in its job file.
    pub line: usize,
    pub col: usize,
    pub passed: bool,
    pub expected: Expected,
    pub got: Got,
    /// With an expected customer that came out: the fields that differ.
    pub diff: Vec<FieldDiff>,
}

/// A case's expectation, for the `--json` document.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Expected {
    Customer { fields: Map<String, Value> },
    Rejected { field: String },
    Skipped,
}

/// Load each job file and run its cases; files that do not load are returned to be
/// reported as `validate` reports them, after the others have run.
pub fn run(paths: &[PathBuf]) -> (TestReport, Vec<JobErrors>) {
    let mut report = TestReport {
        jobs: Vec::new(),
        passed: 0,
        failed: 0,
        unloaded: 0,
    };
    let mut unloaded = Vec::new();
    for path in paths {
        match job::load(path, &VarOverrides::new()) {
            Ok(job) => {
                let tests = run_job(path, &job);
                let passed = tests.cases.iter().filter(|c| c.passed).count();
                report.passed += passed;
                report.failed += tests.cases.len() - passed;
                report.jobs.push(tests);
            }
            Err(e) => unloaded.push(*e),
        }
    }
    report.unloaded = unloaded.len();
    (report, unloaded)
}

fn run_job(path: &Path, job: &Job) -> JobTests {
    let spec = &job.spec;
    let mut tests = JobTests {
        path: path.to_path_buf(),
        name: spec.name.clone(),
        cases: Vec::new(),
        text: job.text.clone(),
    };
    if spec.tests.is_empty() {
        return tests;
    }
    let mapping = spec.mapping.clone().unwrap_or_default();
    let filter = spec.filter.as_deref();
    let kind = spec.source.as_ref().map_or(SourceKind::Csv, |s| s.kind);
    // The job loaded, so its templates compile; a case's vars only change their values.
    let shared = Mapper::new(&mapping, filter, &job.vars).ok();
    let read: Vec<String> = shared.as_ref().map_or_else(Vec::new, |m| {
        let mut columns: Vec<String> = m.row_columns().into_iter().map(|(_, c)| c).collect();
        columns.sort();
        columns.dedup();
        columns
    });
    let index = yaml::parse(&job.text).map(|(_, index)| index).ok();
    for (i, case) in spec.tests.iter().enumerate() {
        let pos = index
            .as_ref()
            .map_or(Pos::START, |ix| ix.value_of(&format!("/tests/{i}")));
        let outcome = if case.vars.is_empty() {
            shared.as_ref().map(|m| map(m, kind, case, &read))
        } else {
            let mut vars = job.vars.clone();
            vars.extend(case.vars.clone());
            Mapper::new(&mapping, filter, &vars)
                .ok()
                .map(|m| map(&m, kind, case, &read))
        };
        let outcome = outcome.unwrap_or_else(|| {
            Outcome::Rejected(vec![crate::customer::FieldError::new(
                "mapping",
                crate::customer::Rule::Template,
                "the mapping's templates did not compile",
            )])
        });
        let expectation = case.expectation();
        let v = verdict::judge(&expectation, &outcome);
        tests.cases.push(CaseResult {
            name: case.name.clone(),
            line: pos.line,
            col: pos.col,
            passed: v.passed,
            expected: match expectation {
                Expectation::Customer(fields) => Expected::Customer {
                    fields: fields.clone(),
                },
                Expectation::Rejected(field) => Expected::Rejected {
                    field: field.to_string(),
                },
                Expectation::Skipped => Expected::Skipped,
            },
            got: v.got,
            diff: v.diff,
        });
    }
    tests
}

fn map(mapper: &Mapper, kind: SourceKind, case: &TestCase, read: &[String]) -> Outcome {
    mapper.session().map(&row::record(kind, &case.row, read))
}
