//! The text `cdpjob test` prints: per job file a line per case (ok / FAILED), then each
//! failing case at its `file:line:col` — as `validate` shows a problem, with the line and a
//! caret — with what differs, `-` expected and `+` rendered, and one summary line.

use std::fmt::{self, Write as _};

use serde_json::Value;

use super::{CaseResult, Expected, FieldDiff, Got, JobTests, TestReport};
use crate::diagnostic::{Diagnostic, Pos};

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut without = 0;
        for job in &self.jobs {
            if job.cases.is_empty() {
                without += 1;
                writeln!(f, "{}: no tests", job.path.display())?;
                continue;
            }
            let n = job.cases.len();
            writeln!(f, "{}: {n} test{}", job.path.display(), plural(n))?;
            for case in &job.cases {
                let mark = if case.passed { "ok    " } else { "FAILED" };
                writeln!(f, "  {mark}  {}", case.name)?;
            }
            for case in job.cases.iter().filter(|c| !c.passed) {
                writeln!(f)?;
                f.write_str(&failure(job, case))?;
            }
        }
        let files = self.jobs.len() + self.unloaded;
        let mut about = format!("{files} job file{}", plural(files));
        if without > 0 {
            let _ = write!(about, ", {without} without tests");
        }
        if self.unloaded > 0 {
            let _ = write!(about, ", {} did not load", self.unloaded);
        }
        writeln!(
            f,
            "\ntest result: {}. {} passed, {} failed ({about})",
            if self.all_passed() { "ok" } else { "FAILED" },
            self.passed,
            self.failed,
        )
    }
}

/// A failing case: where it is, why in one sentence, then the differences.
fn failure(job: &JobTests, case: &CaseResult) -> String {
    let pos = Pos {
        line: case.line,
        col: case.col,
    };
    let headline = format!("test `{}` failed: {}", case.name, why(case));
    let mut out = Diagnostic::new(pos, headline).render(&job.path, &job.text);
    for line in diff_lines(case) {
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn why(case: &CaseResult) -> String {
    let expected = match &case.expected {
        Expected::Customer { fields } => {
            if let Got::Customer { .. } = case.got {
                let (n, of) = (case.diff.len(), fields.len());
                return format!(
                    "{n} of {of} expected field{} differ{}",
                    plural(of),
                    if n == 1 { "s" } else { "" }
                );
            }
            "expected a customer".to_string()
        }
        Expected::Rejected { field } => format!("expected a rejection naming `{field}`"),
        Expected::Skipped => "expected the filter to skip the row".to_string(),
    };
    let got = match &case.got {
        Got::Customer { .. } => "the row became a customer".to_string(),
        Got::Rejected { errors } => {
            let names: Vec<String> = errors.iter().map(|e| format!("`{}`", e.field)).collect();
            format!("the rejection names {}", names.join(", "))
        }
        Got::Skipped => "the filter skipped the row".to_string(),
    };
    format!("{expected}; {got}")
}

/// `- …` for what the case expects, `+ …` for what the mapping made; field by field when
/// both are customers.
fn diff_lines(case: &CaseResult) -> Vec<String> {
    if let (Expected::Customer { .. }, Got::Customer { .. }) = (&case.expected, &case.got) {
        return case
            .diff
            .iter()
            .flat_map(
                |FieldDiff {
                     field,
                     expected,
                     rendered,
                 }| {
                    [
                        format!("- {field}: {}", shown(expected.as_ref())),
                        format!("+ {field}: {}", shown(rendered.as_ref())),
                    ]
                },
            )
            .collect();
    }
    let mut out: Vec<String> = match &case.expected {
        Expected::Customer { fields } => fields
            .iter()
            .map(|(k, v)| format!("- {k}: {}", shown((!v.is_null()).then_some(v))))
            .collect(),
        Expected::Rejected { field } => vec![format!("- rejected: {field}")],
        Expected::Skipped => vec!["- skipped by the filter".to_string()],
    };
    match &case.got {
        Got::Customer { customer } => {
            out.push(format!("+ customer: {}", Value::Object(customer.clone())));
        }
        Got::Rejected { errors } => out.extend(
            errors
                .iter()
                .map(|e| format!("+ rejected: {} ({}): {}", e.field, e.rule, e.message)),
        ),
        Got::Skipped => out.push("+ skipped by the filter".to_string()),
    }
    out
}

fn shown(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
