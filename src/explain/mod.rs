//! `cdpjob explain JOB --row N [--run RUN_DIR]` (SPEC §9): one source row end to end, for
//! the person asking why row N came out as it did. The record as the source read it; each
//! mapped field's template and its value, rendered by the native fast path and by minijinja
//! (they must agree: a difference is a bug, reported loudly, exit 1); each rule's verdict;
//! the filter's; the batch the row falls in and its place there, formed as a run forms it.
//! With `--run`, what that run made of the row and its batch's journal.
//!
//! Offline, like `plan`: the API is never asked. A sql source is the database (as `plan`
//! reads it), or with `--run` the run's spool; change detection compares with the sync
//! state as `plan` does, or with `--run` with the run's own snapshot, so the batches are
//! the run's.

mod history;
mod locate;
mod render;
mod rules;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::customer::{Customer, FieldError};
use crate::error::{Error, Result};
use crate::import::input::Input;
use crate::job::model::{JobKind, SyncMode, VarOverrides};
use crate::job::{self, Job};
use crate::mapping::{FilterTrace, Mapper, MappingTrace, Native, Outcome, SlotTrace};
use crate::run_dir::{self, KindRecord, Manifest, RunDir};
use crate::runner::{self, RunStatus};
use crate::source::{Record, RecordSource};
use crate::sync::{Classified, Classifier, Snapshot, Target, store, tag};
use crate::{import, plan};

pub use history::{BatchEvent, RunTrace};
pub use locate::BatchPlace;
pub use rules::RuleVerdict;

/// What `cdpjob explain` was asked.
#[derive(Debug)]
pub struct ExplainRequest {
    pub job: PathBuf,
    pub row: u64,
    pub run: Option<PathBuf>,
    pub json: bool,
    pub vars: VarOverrides,
}

/// One row, end to end: what `--json` prints (and the text is made from).
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub job: String,
    pub job_file: String,
    /// Where the rows were read: the source, or the run's copy of them.
    pub source: String,
    pub row: u64,
    /// The physical line the record starts on (CSV, JSON Lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The row number a spreadsheet shows (xlsx).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet_row: Option<u64>,
    /// The record as read (column → value); null for a row the source could not read.
    pub record: Value,
    /// A row that could not be read: its text, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    pub filter: Option<FilterView>,
    pub mapping: Vec<SlotView>,
    /// The customer as the API would receive it (a valid row).
    pub customer: Option<Customer>,
    pub rules: Vec<RuleVerdict>,
    /// `valid`, `rejected`, `skipped` or `unchanged`.
    pub outcome: &'static str,
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncView>,
    pub batch: BatchPlace,
    /// Whether the native fast path and minijinja agree on everything of this row.
    pub paths_agree: bool,
    pub disagreements: Vec<String>,
    pub run: Option<RunView>,
    pub warnings: Vec<String>,
}

/// The filter, both ways.
#[derive(Debug, Serialize)]
pub struct FilterView {
    pub template: String,
    /// `rendered`, `stepped_aside` (this row needs minijinja) or `no_native_form`.
    pub native_path: &'static str,
    pub native: Option<bool>,
    pub minijinja: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minijinja_error: Option<String>,
    pub agree: bool,
}

/// One template of the mapping, both ways.
#[derive(Debug, Serialize)]
pub struct SlotView {
    /// `email`, `tagStr[1]`, `customize_field.customize_1_14`.
    pub field: String,
    pub template: String,
    pub native_path: &'static str,
    pub native: Option<String>,
    pub minijinja: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minijinja_error: Option<String>,
    pub agree: bool,
}

/// Change detection's part (`sync: changed`).
#[derive(Debug, Serialize)]
pub struct SyncView {
    /// What the row was compared with: the run's snapshot, or the state file.
    pub compared_with: String,
    /// The customer's match key (`whats_app_phone:8613…`), when it has one.
    pub match_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The run given with `--run`, and the row in it.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub run_dir: String,
    pub status: RunStatus,
    pub resumable: bool,
    /// The job now differs from the run's in what it sends (its hash is not the manifest's).
    pub job_changed: bool,
    #[serde(flatten)]
    pub row: RunTrace,
}

/// Explain the row, print it, and say how it went: exit 1 when the two render paths
/// disagree (a bug in cdpjob to report, not a problem of the row).
pub fn explain(req: &ExplainRequest) -> Result<runner::Outcome> {
    let run = req
        .run
        .as_ref()
        .map(|dir| runner::begin::read_manifest(dir).map(|m| (dir.clone(), m)))
        .transpose()?;
    if let Some((dir, m)) = &run
        && m.kind.job_kind() != JobKind::BatchCreate
    {
        return Err(Error::Usage(format!(
            "{} is an export's run directory: only an import has rows to explain",
            dir.display()
        )));
    }
    let job = load_job(req, run.as_ref().map(|(_, m)| m))?;
    if job.spec.kind != JobKind::BatchCreate {
        return Err(Error::Usage(format!(
            "{}: explain traces a row of a batch_create job; this one is a {}",
            job.path.display(),
            job.spec.kind.as_str()
        )));
    }
    if req.row == 0 {
        return Err(Error::Usage(
            "rows are numbered from 1, as result lines and `cdpjob rows` number them".into(),
        ));
    }
    let mut warnings = Vec::new();
    let (source, label) = match &run {
        Some((dir, manifest)) => run_input(&job, dir, manifest, &mut warnings)?,
        None => {
            let (source, label, _) = plan::job_source(&job)?;
            (source, label)
        }
    };
    let (classifier, mut sync) = classifier(&job, run.as_ref())?;
    let mapping = job.spec.mapping.clone().unwrap_or_default();
    let mapper = Mapper::new(&mapping, job.spec.filter.as_deref(), &job.vars)
        .map_err(|p| Error::Usage(format!("templates did not compile: {}", p[0].message)))?;
    let found = locate::locate(
        source,
        &mapper,
        job.spec.batch_size,
        classifier.as_ref(),
        req.row,
    )
    .map_err(|e| Error::io(format!("reading {label} failed"), e))?;
    let (record, settled, classified, batch) = match found {
        locate::Found::Row(found) => {
            let locate::Located {
                record,
                settled,
                classified,
                batch,
            } = *found;
            (record, settled, classified, batch)
        }
        locate::Found::PastEnd { last_row: None } => {
            return Err(Error::Usage(format!(
                "{label} has no rows: there is no row {}",
                req.row
            )));
        }
        locate::Found::PastEnd {
            last_row: Some(last),
        } => {
            return Err(Error::Usage(format!(
                "row {} is past the end of {label}: its last row is {last}",
                req.row
            )));
        }
        locate::Found::Gap { next_row } => {
            return Err(Error::Usage(format!(
                "row {} is not among the rows of {label} (a retry's rows are a selection); the next row it has is {next_row}",
                req.row
            )));
        }
    };
    let trace = mapper.session().trace(&record);
    let run_view = match &run {
        Some((dir, manifest)) => Some(run_view(&job, dir, manifest, req.row, &batch, &settled)?),
        None => None,
    };
    if let (Some(s), Some(trace)) = (&mut sync, &trace) {
        s.match_key = match_key(&job, trace, classified.as_ref());
    }
    let explanation = assemble(
        &job,
        label,
        &record,
        trace.as_ref(),
        &settled,
        classified.as_ref(),
        sync,
        batch,
        run_view,
        warnings,
    );
    if req.json {
        let mut doc = run_dir::versioned(&explanation);
        doc["run_dir"] = explanation
            .run
            .as_ref()
            .map_or(Value::Null, |r| r.run_dir.clone().into());
        doc["resumable"] = explanation.run.as_ref().is_some_and(|r| r.resumable).into();
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n";
        print(&text);
    } else {
        for w in &explanation.warnings {
            eprintln!("warning: {w}");
        }
        print(&render::text(&explanation, &job));
    }
    if explanation.paths_agree {
        Ok(runner::Outcome::Done)
    } else {
        eprintln!(
            "error: the native fast path and minijinja disagree on row {} ({}): this is a bug in cdpjob, please report it with this output",
            req.row,
            explanation.disagreements.join("; ")
        );
        // Exit 1: the command did its work, and what it found is wrong.
        Ok(runner::Outcome::RowsNotCreated)
    }
}

/// A closed pipe (`| head`) is not an error worth a message.
fn print(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The job, with the run's vars when there is a run (as `resume` loads it), then `--var`.
fn load_job(req: &ExplainRequest, manifest: Option<&Manifest>) -> Result<Job> {
    let mut vars: VarOverrides = manifest
        .map(|m| {
            m.vars
                .iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    vars.extend(req.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    job::load(&req.job, &vars).map_err(|e| Error::Job(vec![*e]))
}

/// The rows the run read: its spool, its retry's copy, or the job's source (warning when
/// that changed since).
fn run_input(
    job: &Job,
    dir: &Path,
    manifest: &Manifest,
    warnings: &mut Vec<String>,
) -> Result<(Box<dyn RecordSource>, String)> {
    let run_dir = RunDir {
        path: dir.to_path_buf(),
    };
    if job.send_hash != manifest.job_sha256 {
        warnings.push(format!(
            "{} differs from the job the run started with ({}) in what it sends: the mapping, rules and batch shown are the job's as it is now, the outcome and journal the run's",
            job.path.display(),
            manifest.job_path
        ));
    }
    let input = Input::of(job, &run_dir, &manifest.kind).map_err(Error::Usage)?;
    let label = match &input {
        Input::Spool { path } => format!("the run's spool {} (sql)", path.display()),
        Input::Copied { path, .. } => format!("the run's retry input {}", path.display()),
        Input::Source { spec, path } => {
            if let KindRecord::BatchCreate { source, .. } = &manifest.kind
                && !input.is_stdin()
                && source.is_of(path).is_ok_and(|same| !same)
            {
                warnings.push(format!(
                    "{} changed since the run started: its rows may not be the run's",
                    path.display()
                ));
            }
            format!("{} ({})", path.display(), spec.kind.as_str())
        }
    };
    let source = input.open(Arc::default()).map_err(Error::Usage)?;
    Ok((source, label))
}

/// Change detection as a run of this job would do it (none without `sync: changed`): with
/// a run, the snapshot it compared with; without, the state as `plan` reads it — a state
/// that cannot be read now is said and done without (SPEC §12 R8).
fn classifier(
    job: &Job,
    run: Option<&(PathBuf, Manifest)>,
) -> Result<(Option<Classifier>, Option<SyncView>)> {
    if job.spec.sync != SyncMode::Changed {
        return Ok((None, None));
    }
    let run_sync = run.and_then(|(dir, m)| match &m.kind {
        KindRecord::BatchCreate { sync: Some(s), .. } => Some((dir, s)),
        _ => None,
    });
    let state = store::state_path(&job.paths.sync_dir, &Target::of(&job.spec.api));
    let from_state = |path: &Path| -> (Snapshot, Option<String>) {
        match store::snapshot(path) {
            Ok(s) => (s, None),
            Err(e) => (
                Snapshot::default(),
                Some(format!("{e}: compared as if every customer were new")),
            ),
        }
    };
    let (snapshot, compared_with, note, full) = match run_sync {
        Some((dir, record)) => {
            let path = dir.join(import::changes::SNAPSHOT);
            match Snapshot::read(&path) {
                Ok(s) => (s, path.display().to_string(), None, record.full),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let (s, note) = from_state(&record.state);
                    let note = note.unwrap_or_else(|| {
                        "the run took no snapshot (it never began its work): compared with the state as it is now".into()
                    });
                    (
                        s,
                        record.state.display().to_string(),
                        Some(note),
                        record.full,
                    )
                }
                Err(e) => return Err(Error::io("cannot read the run's sync snapshot", e)),
            }
        }
        None => {
            let (s, note) = from_state(&state);
            (s, state.display().to_string(), note, false)
        }
    };
    let classifier = Classifier::new(
        snapshot,
        full,
        job.spec.merge.wire_type(),
        job.spec.strict_binding,
    );
    let view = SyncView {
        compared_with,
        match_key: None,
        note,
    };
    Ok((Some(classifier), Some(view)))
}

/// The run's side, with its status.
fn run_view(
    job: &Job,
    dir: &Path,
    manifest: &Manifest,
    row: u64,
    batch: &BatchPlace,
    settled: &locate::Settled,
) -> Result<RunView> {
    let status = import::status::read(dir, manifest)?;
    Ok(RunView {
        run_id: manifest.run_id.clone(),
        run_dir: dir.display().to_string(),
        status: status.head.status,
        resumable: status.head.resumable,
        job_changed: job.send_hash != manifest.job_sha256,
        row: history::trace(dir, row, batch, settled)?,
    })
}

/// A valid customer's match key as the sync state would store it.
fn match_key(job: &Job, trace: &MappingTrace, classified: Option<&Classified>) -> Option<String> {
    classified?;
    let Outcome::Valid(customer) = &trace.run else {
        return None;
    };
    tag::probe(
        customer,
        job.spec.merge.wire_type(),
        job.spec.strict_binding,
    )
    .map(|p| p.into_tag().key)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    job: &Job,
    source: String,
    record: &Record,
    trace: Option<&MappingTrace>,
    settled: &locate::Settled,
    classified: Option<&Classified>,
    sync: Option<SyncView>,
    batch: BatchPlace,
    run: Option<RunView>,
    warnings: Vec<String>,
) -> Explanation {
    // What a result line says of its source row: the record or its raw text, the sheet row.
    let mut said = serde_json::json!({});
    record.attach_to(&mut said);
    let mut disagreements = Vec::new();
    let mut rules = Vec::new();
    let (mut filter, mut mapping, mut customer) = (None, Vec::new(), None);
    if let Some(t) = trace {
        filter = t.filter.as_ref().map(|f| FilterView {
            // As the job wrote it (the mapper keeps a bare expression's inside).
            template: job.spec.filter.clone().unwrap_or_default(),
            ..filter_view(f)
        });
        mapping = t.slots.iter().map(slot_view).collect();
        disagreements = disagreements_of(t);
        if let Outcome::Valid(c) = &t.run {
            customer = Some(c.clone());
        }
        let key = classified.map(|c| c.key.map(|k| k.field));
        rules = rules::verdicts(&t.fields, &t.minijinja, settled.errors(), key);
    }
    let unreadable = record.data.as_ref().err().map(|bad| bad.reason.clone());
    Explanation {
        job: job.spec.name.clone(),
        job_file: job.path.display().to_string(),
        source,
        row: record.row,
        line: record.line_number(),
        sheet_row: said["sheet_row"].as_u64(),
        record: said["record"].take(),
        raw: said["raw"].as_str().map(str::to_string),
        unreadable,
        filter,
        mapping,
        customer,
        rules,
        outcome: settled.name(),
        errors: settled.errors().to_vec(),
        sync,
        batch,
        paths_agree: disagreements.is_empty(),
        disagreements,
        run,
        warnings,
    }
}

fn native_path<T>(n: &Native<T>) -> &'static str {
    match n {
        Native::NoForm => "no_native_form",
        Native::SteppedAside => "stepped_aside",
        Native::Rendered(_) => "rendered",
    }
}

fn filter_view(f: &FilterTrace) -> FilterView {
    FilterView {
        template: f.template.clone(),
        native_path: native_path(&f.native),
        native: match f.native {
            Native::Rendered(keep) => Some(keep),
            _ => None,
        },
        minijinja: f.minijinja.as_ref().ok().copied(),
        minijinja_error: f.minijinja.as_ref().err().cloned(),
        agree: f.agrees(),
    }
}

fn slot_view(s: &SlotTrace) -> SlotView {
    SlotView {
        field: s.label.clone(),
        template: s.template.clone(),
        native_path: native_path(&s.native),
        native: match &s.native {
            Native::Rendered(text) => Some(text.clone()),
            _ => None,
        },
        minijinja: s.minijinja.as_ref().ok().cloned(),
        minijinja_error: s.minijinja.as_ref().err().cloned(),
        agree: s.agrees(),
    }
}

/// Every place the two paths differ, in a sentence each.
fn disagreements_of(t: &MappingTrace) -> Vec<String> {
    let mut out = Vec::new();
    let shown = |r: &std::result::Result<String, String>| match r {
        Ok(text) => format!("{text:?}"),
        Err(e) => format!("an error ({e})"),
    };
    if let Some(f) = t.filter.as_ref().filter(|f| !f.agrees()) {
        out.push(format!(
            "the filter: native {:?}, minijinja {}",
            f.native,
            match &f.minijinja {
                Ok(keep) => keep.to_string(),
                Err(e) => format!("an error ({e})"),
            }
        ));
    }
    for s in t.slots.iter().filter(|s| !s.agrees()) {
        if let Native::Rendered(text) = &s.native {
            out.push(format!(
                "{}: native {text:?}, minijinja {}",
                s.label,
                shown(&s.minijinja)
            ));
        }
    }
    if !crate::mapping::same_outcome(&t.run, &t.minijinja) {
        out.push(format!(
            "the outcome: as a run maps it {}, from minijinja alone {}",
            describe(&t.run),
            describe(&t.minijinja)
        ));
    }
    out
}

/// An outcome in a few words, for a disagreement.
fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Valid(c) => serde_json::to_string(c).unwrap_or_default(),
        Outcome::Skipped => "skipped".into(),
        Outcome::Rejected(errors) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| format!("{} / {}", e.field, e.rule))
                .collect();
            format!("rejected ({})", reasons.join(", "))
        }
    }
}
