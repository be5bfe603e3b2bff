//! The job file: loading (YAML with positions), checking (schema, then semantics) and the
//! typed result. `validate`, `plan` and `run` all go through [`load`], so what validates is
//! exactly what runs.

pub mod cases;
pub mod check;
pub mod model;
pub mod paths;
pub mod schema;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diagnostic::{Diagnostic, Pos};
use model::{JobSpec, VarOverrides};
use paths::JobPaths;
use yaml::PositionIndex;

/// A job file that passed every check.
#[derive(Debug)]
pub struct Job {
    /// The path as the user gave it (for messages).
    pub path: PathBuf,
    /// Every path the job uses, resolved once.
    pub paths: JobPaths,
    pub text: String,
    /// SHA-256 of what decides what a run sends (SPEC §12 R3): `resume` compares it.
    pub send_hash: String,
    pub spec: JobSpec,
    /// `vars` with `--var` overrides applied.
    pub vars: serde_json::Map<String, Value>,
    /// What `validate` points out without failing (a sql query without ORDER BY).
    pub warnings: Vec<Diagnostic>,
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
    let warnings = check::warnings(&parsed);
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
        paths: JobPaths::new(&dir, &spec.run.root, &spec.name),
        send_hash: send_hash(&doc),
        text,
        spec,
        vars,
        warnings,
    })
}

/// Re-read a loaded job's document with positions, to check it against what only a
/// connection tells (`validate --remote`): `check` gets it as the load's checks do.
pub fn with_parsed<T>(job: &Job, check: impl FnOnce(&Parsed<'_>) -> T) -> Option<T> {
    let (doc, index) = yaml::parse(&job.text).ok()?;
    let dir = job.paths.job_dir.clone();
    Some(check(&Parsed {
        path: &job.path,
        dir: &dir,
        text: &job.text,
        doc: &doc,
        index: &index,
        vars: &job.vars,
    }))
}

/// Keys that do not decide what a run sends: changing them alone does not stop a resume
/// (SPEC §12 R3). Comments and formatting never count: the hash is of the parsed document.
/// `tests`, `notify` and `guard` are kept here for the job blocks of SPEC §7 and §10.
const NOT_SENT: &[&str] = &[
    "/description",
    "/tests",
    "/notify",
    "/guard",
    "/api/timeout_secs",
    "/api/max_retries",
    "/api/concurrency",
    "/api/requests_per_second",
];

/// SHA-256 of the job document without the [`NOT_SENT`] keys, as compact JSON (object keys
/// in the file's order).
fn send_hash(doc: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut doc = doc.clone();
    for pointer in NOT_SENT {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        let parent = if parent.is_empty() {
            Some(&mut doc)
        } else {
            doc.pointer_mut(parent)
        };
        if let Some(Value::Object(map)) = parent {
            map.shift_remove(key);
        }
    }
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

impl Job {
    /// A path from the job file, resolved against the job file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        self.paths.resolve(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_hash_ignores_what_is_not_sent() {
        let base = serde_json::json!({"name": "t", "api": {"tenant_id": 1, "concurrency": 4}, "mapping": {"email": "{{ row.e }}"}});
        let mut tuned = base.clone();
        tuned["api"]["concurrency"] = 8.into();
        tuned["description"] = "nightly".into();
        tuned["guard"] = serde_json::json!({"max_rejected": 5});
        tuned["tests"] = serde_json::json!([{"name": "a", "row": {"e": "x"}, "skip": true}]);
        assert_eq!(send_hash(&base), send_hash(&tuned));
        let mut remapped = base.clone();
        remapped["mapping"]["email"] = "{{ row.e | lower }}".into();
        assert_ne!(send_hash(&base), send_hash(&remapped));
    }
}
