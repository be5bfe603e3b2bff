//! `cdpjob plan`: the dry run. Reads every row through the same loading, mapping and
//! validation as a real run, and shows what would be sent — no network, no credentials.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Value, json};

use crate::customer::{Customer, Rule};
use crate::error::{Error, Result};
use crate::export::{format, xlsx};
use crate::guard::{self, RejectedVerdict};
use crate::job::Job;
use crate::job::model::{GuardSpec, JobKind, Limit, OutputFormat, SyncMode};
use crate::mapping::{Mapper, Outcome};
use crate::pipeline;
use crate::query::{self, ExportContext};
use crate::source;
use crate::sync::{Classifier, Seen, Snapshot, Target, Verdict, store};

/// The first line of every human plan.
fn heading(name: &str, kind: &str, job: &Job) -> String {
    format!("plan: {name} ({kind}) from {}\n", job.path.display())
}

/// How many example row numbers to keep per rejection reason.
const EXAMPLE_ROWS: usize = 5;

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub rows: u64,
    /// Valid customers a run would send (with `sync: changed`, the new and changed ones).
    pub valid: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// Valid customers the sync state holds as they are: a run would not send them.
    pub unchanged: u64,
}

/// What change detection contributes to a plan (`sync: changed`), read from the state
/// with no network.
#[derive(Debug, Serialize)]
pub struct SyncPlan {
    /// The state file of the job's API target.
    pub state: String,
    pub target: String,
    /// Customers the state holds (0 when there is none yet or it could not be read).
    pub customers_in_state: u64,
    /// None for rows that are not a whole source (a retry's).
    pub missing_since_last_sync: Option<u64>,
    /// Why the state was not used, when it was not (held by a running run, unreadable).
    pub note: Option<String>,
}

impl SyncPlan {
    /// The state of `job`'s target as a classifier, and what the plan says about it. A
    /// state that cannot be read now is counted without (R8), saying why.
    fn load(job: &Job) -> Option<(Classifier, SyncPlan)> {
        if job.spec.sync != SyncMode::Changed {
            return None;
        }
        let target = Target::of(&job.spec.api);
        let path = store::state_path(&job.paths.sync_dir, &target);
        let (snapshot, note) = match store::snapshot(&path) {
            Ok(s) => (s, None),
            Err(e) => {
                let then = if e.is_broken() {
                    "a run would refuse it (exit 2); `run --full` moves it aside and sends every row"
                } else {
                    "counted as if every customer were new"
                };
                (Snapshot::default(), Some(format!("{e}: {then}")))
            }
        };
        let plan = SyncPlan {
            state: path.display().to_string(),
            target: target.to_string(),
            customers_in_state: snapshot.len() as u64,
            missing_since_last_sync: None,
            note,
        };
        let classifier = Classifier::new(
            snapshot,
            false,
            job.spec.merge.wire_type(),
            job.spec.strict_binding,
        );
        Some((classifier, plan))
    }
}

/// Rejections that share a field and a rule.
#[derive(Debug, Serialize)]
pub struct ReasonGroup {
    pub field: String,
    pub rule: Rule,
    pub count: u64,
    /// The first few rows, in order.
    pub example_rows: Vec<u64>,
    /// The message of the first of them.
    pub example: String,
}

/// How a source file is read: its compression, and the encoding (SPEC §8: `plan` names
/// what `auto` picked).
#[derive(Debug, Serialize)]
pub struct SourceText {
    pub compression: &'static str,
    pub encoding: &'static str,
    pub encoding_detected: bool,
}

#[derive(Debug, Serialize)]
pub struct PreviewCustomer {
    pub row: u64,
    pub customer: Customer,
}

#[derive(Debug, Serialize)]
pub struct BatchPlan {
    pub job: String,
    pub kind: &'static str,
    pub source: String,
    /// How the source file's text is read (absent for standard input and a retry's rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_text: Option<SourceText>,
    pub preview: Vec<PreviewCustomer>,
    pub counts: Counts,
    pub rejected_by_reason: Vec<ReasonGroup>,
    pub batch_size: usize,
    pub batches: u64,
    pub requests: u64,
    pub merge: &'static str,
    pub strict_binding: bool,
    /// With `sync: changed`: the state the plan compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncPlan>,
    /// The job's guards and what they would do (absent when the job has no `guard:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardPlan>,
}

/// What a run's guards would do with this source (SPEC §12 R10: `plan` shows the verdict,
/// and exits 0 either way).
#[derive(Debug, Serialize)]
pub struct GuardPlan {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rejected: Option<RejectedPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<FailedPlan>,
}

#[derive(Debug, Serialize)]
pub struct RejectedPlan {
    #[serde(flatten)]
    pub verdict: RejectedVerdict,
    /// `would_pass` or `would_refuse`.
    #[serde(rename = "verdict")]
    pub says: &'static str,
}

/// `max_failed` cannot be judged without the API's answers: when it is checked.
#[derive(Debug, Serialize)]
pub struct FailedPlan {
    pub limit: Limit,
    /// A percentage is checked once this many rows are answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_answered: Option<u64>,
}

impl GuardPlan {
    fn of(guard: &GuardSpec, counts: &Counts) -> Option<GuardPlan> {
        if guard.max_rejected.is_none() && guard.max_failed.is_none() {
            return None;
        }
        Some(GuardPlan {
            max_rejected: guard.max_rejected.map(|limit| {
                let verdict =
                    RejectedVerdict::of(limit, counts.rejected, counts.rows, counts.skipped);
                RejectedPlan {
                    says: if verdict.passes {
                        "would_pass"
                    } else {
                        "would_refuse"
                    },
                    verdict,
                }
            }),
            max_failed: guard.max_failed.map(|limit| FailedPlan {
                limit,
                min_answered: matches!(limit, Limit::Percent(_)).then_some(guard::MIN_ANSWERED),
            }),
        })
    }

    fn render(&self) -> String {
        let mut o = String::new();
        if let Some(r) = &self.max_rejected {
            let _ = writeln!(
                o,
                "guard max_rejected {}: {}: {}",
                r.verdict.limit,
                if r.verdict.passes {
                    "would pass"
                } else {
                    "would refuse the run (exit 4, nothing sent)"
                },
                r.verdict.describe()
            );
        }
        if let Some(f) = &self.max_failed {
            let when = match f.min_answered {
                Some(n) => format!(", once {n} rows are answered"),
                None => String::new(),
            };
            let _ = writeln!(
                o,
                "guard max_failed {}: checked as the API answers{when} (a run past it stops, exit 4)",
                f.limit
            );
        }
        o
    }
}

/// What the counting pass found: where every row of the source would end up.
#[derive(Debug)]
pub struct Tally {
    pub counts: Counts,
    /// Rejections grouped by field and rule, the largest group first.
    pub rejected_by_reason: Vec<ReasonGroup>,
    /// The first valid customers, as many as asked for.
    pub preview: Vec<PreviewCustomer>,
    /// With `sync: changed`: the state the rows were compared with.
    pub sync: Option<SyncPlan>,
}

/// The counting pass over a batch_create job's whole source: every row read, mapped and
/// checked exactly as a run would, counted by outcome, rejections grouped by field and
/// rule. `plan` shows it, and the `max_rejected` guard (SPEC §7) refuses a run on it before
/// anything is sent, so whatever this pass counts, both see. Keeps the first `preview`
/// valid customers.
pub fn count_rows(job: &Job, preview: usize) -> Result<Tally> {
    let (source, label, _) = job_source(job)?;
    count_records(job, source, &label, preview)
}

/// The job's source, opened, and what it is (for messages and the plan): its path and type,
/// and how its text is read when that is not plain UTF-8.
pub fn job_source(
    job: &Job,
) -> Result<(Box<dyn source::RecordSource>, String, Option<SourceText>)> {
    let src_spec = job
        .spec
        .source
        .as_ref()
        .ok_or_else(|| Error::Usage("a batch_create job needs a source".into()))?;
    if src_spec.kind == source::SourceKind::Sql {
        let sql = source::sql::SqlSource::open(src_spec, &job.resolve(&src_spec.path))?;
        let label = format!("{} (sql)", sql.describe());
        return Ok((Box::new(sql), label, None));
    }
    let path = job.resolve(&src_spec.path);
    let source = source::open(src_spec, &path).map_err(|e| Error::Usage(e.to_string()))?;
    // A workbook is not text: it has no compression or encoding to describe.
    let text = if src_spec.kind == source::SourceKind::Xlsx {
        None
    } else {
        source::text::describe(&path, source::TextOptions::of(src_spec))
            .map_err(|e| Error::Usage(e.to_string()))?
            .map(|(compression, picked)| SourceText {
                compression: compression.as_str(),
                encoding: picked.name(),
                encoding_detected: picked.detected,
            })
    };
    let mut about = vec![src_spec.kind.as_str().to_string()];
    if let Some(detail) = source.detail() {
        about.push(detail);
    }
    if let Some(t) = &text {
        if t.compression != "none" {
            about.push(t.compression.to_string());
        }
        if t.encoding_detected {
            about.push(format!("encoding: auto → {}", t.encoding));
        } else if t.encoding != "UTF-8" {
            about.push(format!("encoding {}", t.encoding));
        }
    }
    let label = format!("{} ({})", path.display(), about.join(", "));
    Ok((source, label, text))
}

/// [`count_rows`] over any records `job` would map (a retry's rows, say); `label` says
/// what they are.
pub fn count_records(
    job: &Job,
    source: Box<dyn source::RecordSource>,
    label: &str,
    preview: usize,
) -> Result<Tally> {
    let spec = &job.spec;
    let mapping = spec.mapping.clone().unwrap_or_default();
    let mapper = Mapper::new(&mapping, spec.filter.as_deref(), &job.vars)
        .map_err(|p| Error::Usage(format!("templates did not compile: {}", p[0].message)))?;

    let limit = preview;
    let mut counts = Counts::default();
    let mut preview = Vec::new();
    // Keyed by the rule's wire name, not the enum, so groups that tie on count and rows
    // keep the alphabetical order they always had.
    let mut groups: BTreeMap<(String, &'static str), ReasonGroup> = BTreeMap::new();
    let (classifier, mut sync) = SyncPlan::load(job).unzip();
    let mut seen = Seen::default();
    // Once the preview is full no later row can join it: a valid customer is then counted
    // and dropped on the mapping thread that made it (`None`), not carried to this one and
    // freed here. Rows mapped before the flag is seen still carry theirs: harmless.
    let preview_full = AtomicBool::new(limit == 0);
    // As a run does: the verdict on the mapping threads, then duplicates in row order.
    let classify = |record: source::Record, outcome: Outcome| {
        let verdict = match (&classifier, &outcome) {
            (Some(c), Outcome::Valid(customer)) => Some(c.classify(customer)),
            _ => None,
        };
        let outcome = match outcome {
            Outcome::Valid(_) if preview_full.load(Ordering::Relaxed) => None,
            other => Some(other),
        };
        (outcome, verdict, record.line_number())
    };
    // The last row counted and its line: where a read that breaks broke.
    let mut last_line = None;
    pipeline::map_then_in_order(
        source,
        &mapper,
        pipeline::default_workers(),
        &AtomicBool::new(false),
        &classify,
        |row, (outcome, verdict, line)| {
            counts.rows += 1;
            last_line = line;
            let outcome = match verdict.map(|v| Classifier::settle(&mut seen, v, row)) {
                Some(Err(duplicate)) => Some(Outcome::Rejected(vec![duplicate])),
                Some(Ok(Verdict::Unchanged)) => {
                    counts.unchanged += 1;
                    return true;
                }
                Some(Ok(Verdict::Send(_))) | None => outcome,
            };
            match outcome {
                None => counts.valid += 1,
                Some(Outcome::Valid(customer)) => {
                    counts.valid += 1;
                    if preview.len() < limit {
                        preview.push(PreviewCustomer { row, customer });
                        if preview.len() == limit {
                            preview_full.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Some(Outcome::Skipped) => counts.skipped += 1,
                Some(Outcome::Rejected(errors)) => {
                    counts.rejected += 1;
                    for e in errors {
                        let g = groups
                            .entry((e.field.clone(), e.rule.as_str()))
                            .or_insert_with(|| ReasonGroup {
                                field: e.field.clone(),
                                rule: e.rule,
                                count: 0,
                                example_rows: Vec::new(),
                                example: e.message.clone(),
                            });
                        g.count += 1;
                        if g.example_rows.len() < EXAMPLE_ROWS
                            && g.example_rows.last() != Some(&row)
                        {
                            g.example_rows.push(row);
                        }
                    }
                }
            }
            true
        },
    )
    .map_err(|e| {
        let after = match (counts.rows, last_line) {
            (0, _) => "before its first row".to_string(),
            (n, Some(line)) => format!("after row {n} (line {line})"),
            (n, None) => format!("after row {n}"),
        };
        Error::io(format!("reading {label} failed {after}"), e)
    })?;

    let mut rejected_by_reason: Vec<ReasonGroup> = groups.into_values().collect();
    rejected_by_reason.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.example_rows.cmp(&b.example_rows))
    });
    if let (Some(s), Some(c)) = (&mut sync, &classifier) {
        s.missing_since_last_sync = Some(c.missing(&seen));
    }
    Ok(Tally {
        counts,
        rejected_by_reason,
        preview,
        sync,
    })
}

/// The lines of the rejections by reason, as `plan` prints them (and a guard's refusal).
pub fn render_reasons(groups: &[ReasonGroup]) -> String {
    let mut o = String::new();
    for g in groups {
        let rows: Vec<String> = g.example_rows.iter().map(u64::to_string).collect();
        let more = if g.count as usize > g.example_rows.len() {
            ", …"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {:>7}  {} / {}  (row{} {}{more})  e.g. {}",
            g.count,
            g.field,
            g.rule,
            if g.example_rows.len() == 1 { "" } else { "s" },
            rows.join(", "),
            g.example
        );
    }
    o
}

/// Read and map every row of a batch_create job.
pub fn plan_batch(job: &Job, limit: usize) -> Result<BatchPlan> {
    let (source, label, text) = job_source(job)?;
    let mut plan = plan_records(job, source, label, limit)?;
    plan.source_text = text;
    Ok(plan)
}

/// Read and map every record of `source` as `job` would (a retry's rows, say); `label`
/// says what the source is.
pub fn plan_records(
    job: &Job,
    source: Box<dyn source::RecordSource>,
    label: String,
    limit: usize,
) -> Result<BatchPlan> {
    let spec = &job.spec;
    let Tally {
        counts,
        rejected_by_reason,
        preview,
        sync,
    } = count_records(job, source, &label, limit)?;
    let batches = counts.valid.div_ceil(spec.batch_size as u64);
    Ok(BatchPlan {
        job: spec.name.clone(),
        kind: spec.kind.as_str(),
        source: label,
        source_text: None,
        preview,
        guard: GuardPlan::of(&spec.guard, &counts),
        counts,
        rejected_by_reason,
        batch_size: spec.batch_size,
        batches,
        requests: batches,
        merge: spec.merge.as_str(),
        strict_binding: spec.strict_binding,
        sync,
    })
}

impl BatchPlan {
    /// The body of one batch_create request for these customers, as it would be sent.
    pub fn request_envelope(job: &Job) -> Value {
        json!({
            "type": job.spec.merge.wire_type(),
            "tenant_id": job.spec.api.tenant_id,
            "app_key": job.spec.api.app_key,
            "strict_binding": job.spec.strict_binding,
        })
    }

    pub fn render_human(&self, job: &Job) -> String {
        self.render_human_ending(
            job,
            "no request was sent (plan never touches the network)\n",
        )
    }

    /// The plan for people, with `ending` in place of its last line (`plan --remote` says
    /// what it asked the API instead of "no request was sent").
    pub fn render_human_ending(&self, job: &Job, ending: &str) -> String {
        let mut o = heading(&self.job, self.kind, job);
        let _ = writeln!(o, "source: {}", self.source);
        let _ = writeln!(
            o,
            "request: POST {}/saas/cdp/openapi/customers/batch_create  {}",
            job.spec.api.base_url,
            Self::request_envelope(job)
        );
        if self.preview.is_empty() {
            let _ = writeln!(o, "\nno valid customer to preview");
        } else {
            let _ = writeln!(
                o,
                "\nfirst {} customer(s) as the API would receive them:",
                self.preview.len()
            );
            for p in &self.preview {
                let body = serde_json::to_string(&p.customer).unwrap_or_default();
                let _ = writeln!(o, "  row {:>5}  {body}", p.row);
            }
        }
        let c = &self.counts;
        let _ = writeln!(o, "\nrows      {:>9}", c.rows);
        match &self.sync {
            None => {
                let _ = writeln!(o, "valid     {:>9}", c.valid);
                let _ = writeln!(
                    o,
                    "unchanged {:>9}  (sync: all, every valid row is sent)",
                    c.unchanged
                );
            }
            Some(s) => {
                let _ = writeln!(
                    o,
                    "to send   {:>9}  (new or changed since the last sync)",
                    c.valid
                );
                let _ = writeln!(
                    o,
                    "unchanged {:>9}  (the sync state holds them as they are: not sent)",
                    c.unchanged
                );
                let missing = match s.missing_since_last_sync {
                    Some(n) => format!(", {n} of them missing from this source"),
                    None => String::new(),
                };
                let _ = writeln!(
                    o,
                    "  sync state: {} customer(s) for {}{missing}",
                    s.customers_in_state, s.target
                );
                if let Some(note) = &s.note {
                    let _ = writeln!(o, "  note: {note}");
                }
            }
        }
        let _ = writeln!(o, "rejected  {:>9}", c.rejected);
        o.push_str(&render_reasons(&self.rejected_by_reason));
        let _ = writeln!(o, "skipped   {:>9}  (filter)", c.skipped);
        let _ = writeln!(
            o,
            "\n{} batch(es) of up to {} → {} batch_create request(s), merge {} (type {}), strict_binding {}",
            self.batches,
            self.batch_size,
            self.requests,
            self.merge,
            job.spec.merge.wire_type(),
            self.strict_binding
        );
        if let Some(g) = &self.guard {
            o.push_str(&g.render());
        }
        o.push_str(ending);
        o
    }
}

#[derive(Debug, Serialize)]
pub struct ExportPlan {
    pub job: String,
    pub kind: &'static str,
    pub endpoint: String,
    pub first_request: Value,
    pub output: String,
    pub output_format: OutputPlan,
    pub state_file: String,
    pub state: serde_json::Map<String, Value>,
    /// `query.parallel`, and the sub-windows a run would page (none when it is 1).
    pub parallel: usize,
    pub windows: Vec<crate::run_dir::SubWindow>,
}

/// How an export's file is written: its format and the options that apply to it.
#[derive(Debug, Serialize)]
pub struct OutputPlan {
    pub format: OutputFormat,
    /// The columns (CSV, xlsx) or keys (JSON Lines) in order; null: each customer whole.
    pub columns: Option<Vec<String>>,
    /// CSV only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bom: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula_guard: Option<bool>,
    /// xlsx only: the first sheet's name, and how many data rows a sheet holds before the
    /// next begins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_per_sheet: Option<u32>,
}

impl OutputPlan {
    fn of(job: &Job) -> OutputPlan {
        let Some(spec) = &job.spec.output else {
            return OutputPlan {
                format: OutputFormat::default(),
                columns: None,
                bom: None,
                formula_guard: None,
                sheet: None,
                rows_per_sheet: None,
            };
        };
        let columns = format::columns_for(spec);
        let csv = spec.format == OutputFormat::Csv;
        let xlsx = spec.format == OutputFormat::Xlsx;
        OutputPlan {
            format: spec.format,
            columns: (!columns.is_empty()).then_some(columns),
            bom: csv.then_some(spec.bom),
            formula_guard: csv.then_some(spec.formula_guard),
            sheet: xlsx.then(|| xlsx::sheet_name(&job.spec.name, 1)),
            rows_per_sheet: xlsx.then_some(xlsx::MAX_DATA_ROWS),
        }
    }

    /// One line: `csv, formula guard on, no byte-order mark`, and so on.
    fn describe(&self) -> String {
        let mut parts = vec![self.format.as_str().to_string()];
        if let Some(bom) = self.bom {
            parts.push(
                if bom {
                    "byte-order mark"
                } else {
                    "no byte-order mark"
                }
                .into(),
            );
        }
        if let Some(guard) = self.formula_guard {
            parts.push(format!(
                "formula guard {}",
                if guard { "on" } else { "off" }
            ));
        }
        if let (Some(sheet), Some(rows)) = (&self.sheet, self.rows_per_sheet) {
            parts.push(format!(
                "sheet `{sheet}`, every cell text, a new sheet after {rows} rows"
            ));
        }
        if self.columns.is_none() {
            parts.push("each customer whole, as received".into());
        }
        parts.join(", ")
    }
}

pub fn plan_export(job: &Job) -> Result<ExportPlan> {
    let state_file = job.paths.export_state.clone();
    let state = query::read_state(&state_file).map_err(Error::Usage)?;
    let ctx = ExportContext {
        run_id: "plan".into(),
        // As `run` does: whole seconds, never in the future.
        started_at: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("now is a valid timestamp"),
        state: state.clone(),
    };
    let (body, output) = query::render_query(job, &ctx).map_err(|errs| {
        Error::Usage(format!(
            "{}: the query does not render:\n  {}",
            job.path.display(),
            errs.join("\n  ")
        ))
    })?;
    let parallel = job.spec.parallel();
    let windows = if parallel > 1 {
        let end = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
        crate::export::window::split(end("start_time"), end("end_time"), parallel)
            .map_err(Error::Usage)?
    } else {
        Vec::new()
    };
    Ok(ExportPlan {
        parallel,
        windows,
        job: job.spec.name.clone(),
        kind: JobKind::QueryExport.as_str(),
        endpoint: format!("{}/saas/cdp/openapi/customers/query", job.spec.api.base_url),
        first_request: body,
        output: job.resolve(&output).display().to_string(),
        output_format: OutputPlan::of(job),
        state_file: state_file.display().to_string(),
        state,
    })
}

impl ExportPlan {
    pub fn render_human(&self, job: &Job) -> String {
        let mut o = heading(&self.job, self.kind, job);
        let _ = writeln!(
            o,
            "state: {} {}",
            self.state_file,
            if self.state.is_empty() {
                "(none yet)".to_string()
            } else {
                Value::Object(self.state.clone()).to_string()
            }
        );
        let _ = writeln!(o, "first request: POST {}", self.endpoint);
        let _ = writeln!(
            o,
            "{}",
            serde_json::to_string_pretty(&self.first_request).unwrap_or_default()
        );
        if !self.windows.is_empty() {
            let _ = writeln!(
                o,
                "parallel {}: {} sub-windows, each paged on its own, joined in time order:",
                self.parallel,
                self.windows.len()
            );
            for w in &self.windows {
                let _ = writeln!(o, "  {} .. {}", w.start_time, w.end_time);
            }
        }
        let _ = writeln!(
            o,
            "output: {} ({})",
            self.output,
            self.output_format.describe()
        );
        if let Some(columns) = &self.output_format.columns {
            let what = match self.output_format.format {
                OutputFormat::Jsonl => "keys",
                OutputFormat::Csv | OutputFormat::Xlsx => "columns",
            };
            let _ = writeln!(o, "{what}: {}", columns.join(", "));
        }
        let _ = writeln!(o, "no request was sent (plan never touches the network)");
        o
    }
}
