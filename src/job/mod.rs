//! The job file: loading (YAML with positions), checking (schema, then semantics) and the
//! typed result. `validate`, `plan` and `run` all go through [`load`], so what validates is
//! exactly what runs.

pub mod check;
pub mod model;
pub mod schema;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diagnostic::{Diagnostic, Pos};
use model::{JobSpec, VarOverrides};
use yaml::PositionIndex;

/// A job file that passed every check.
#[derive(Debug)]
pub struct Job {
    /// The path as the user gave it (for messages).
    pub path: PathBuf,
    /// The directory relative paths in the job resolve against.
    pub dir: PathBuf,
    pub text: String,
    pub spec: JobSpec,
    /// `vars` with `--var` overrides applied.
    pub vars: serde_json::Map<String, Value>,
}

/// Every problem found in one job file.
#[derive(Debug)]
pub struct JobErrors {
    pub path: PathBuf,
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl JobErrors {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.render(&self.path, &self.text));
        }
        let n = self.diagnostics.len();
        out.push_str(&format!(
            "{}: {n} problem{} found; nothing was run\n",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

/// The parsed document before checks, shared by the check passes.
pub struct Parsed<'a> {
    pub path: &'a Path,
    pub dir: &'a Path,
    pub text: &'a str,
    pub doc: &'a Value,
    pub index: &'a PositionIndex,
    pub vars: &'a serde_json::Map<String, Value>,
}

/// Read, parse and check a job file; every problem is reported, not only the first.
pub fn load(path: &Path, overrides: &VarOverrides) -> Result<Job, Box<JobErrors>> {
    let fail = |text: String, diagnostics: Vec<Diagnostic>| {
        Box::new(JobErrors {
            path: path.to_path_buf(),
            text,
            diagnostics,
        })
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Err(fail(
                String::new(),
                vec![Diagnostic::new(
                    Pos::START,
                    format!("cannot read the job file: {e}"),
                )],
            ));
        }
    };
    let (doc, index) = match yaml::parse(&text) {
        Ok(x) => x,
        Err(d) => return Err(fail(text, d)),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut vars = doc
        .get("vars")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in overrides {
        vars.insert(k.clone(), Value::String(v.clone()));
    }

    let mut diagnostics = schema::check(&doc, &index);
    let parsed = Parsed {
        path,
        dir: &dir,
        text: &text,
        doc: &doc,
        index: &index,
        vars: &vars,
    };
    for d in check::semantic(&parsed) {
        if !diagnostics.contains(&d) {
            diagnostics.push(d);
        }
    }
    diagnostics.sort_by_key(|d| d.pos);
    if !diagnostics.is_empty() {
        return Err(fail(text, diagnostics));
    }
    let spec: JobSpec = match serde_json::from_value(doc.clone()) {
        Ok(s) => s,
        Err(e) => {
            // The schema should make this unreachable; if not, still say something useful.
            return Err(fail(
                text,
                vec![Diagnostic::new(
                    Pos::START,
                    format!("the job does not fit the expected shape: {e}"),
                )],
            ));
        }
    };
    Ok(Job {
        path: path.to_path_buf(),
        dir,
        text,
        spec,
        vars,
    })
}

impl Job {
    /// A path from the job file, resolved against the job file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        crate::source::resolve_path(&self.dir, p)
    }
}
