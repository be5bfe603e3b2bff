//! The request body of a query export, rendered from the job's `query` block.
//!
//! String values are templates over `vars`, `run` (`id`, `started_at`) and `state` (what the
//! previous successful export of this job recorded). The block is rendered once per run.

use std::path::Path;

use minijinja::Value as Tv;
use serde_json::{Map, Value};

use crate::api::wire::is_api_datetime;
use crate::job::Job;
use crate::pointer::display as display_path;
use crate::template::{TemplateSet, describe_error};

/// The template context of an export run.
#[derive(Debug, Clone)]
pub struct ExportContext {
    pub run_id: String,
    /// Whole seconds; templates see it as RFC 3339 text.
    pub started_at: jiff::Timestamp,
    pub state: Map<String, Value>,
}

impl ExportContext {
    fn value(&self, vars: &Map<String, Value>) -> Tv {
        minijinja::context! {
            vars => Tv::from(minijinja::value::Serde(vars)),
            run => minijinja::context! { id => self.run_id.clone(), started_at => self.started_at.to_string() },
            state => Tv::from(minijinja::value::Serde(&self.state)),
        }
    }
}

/// The state a previous export left, or an empty map when there is none yet.
pub fn read_state(path: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a JSON object: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Render one template string against the export context.
fn render(set: &mut TemplateSet, pointer: &str, source: &str, ctx: &Tv) -> Result<String, String> {
    let name = set
        .add(pointer, source)
        .ok_or_else(|| format!("`{}` does not compile", display_path(pointer)))?;
    let t = set
        .env
        .get_template(&name)
        .map_err(|e| describe_error(&e))?;
    t.render(ctx)
        .map_err(|e| format!("`{}`: {}", display_path(pointer), describe_error(&e)))
}

/// The first request body (without paging cursor) and the rendered output path.
pub fn render_query(job: &Job, ctx: &ExportContext) -> Result<(Value, String), Vec<String>> {
    let mut set = TemplateSet::new();
    let tctx = ctx.value(&job.vars);
    let mut errors = Vec::new();
    let mut body = Map::new();
    body.insert("tenant_id".into(), Value::from(job.spec.api.tenant_id));
    body.insert("app_key".into(), Value::from(job.spec.api.app_key.clone()));
    let query = job.spec.query.clone().unwrap_or_default();
    let mut limit = 50i64;
    for (key, value) in &query {
        let ptr = format!("/query/{key}");
        match (key.as_str(), value) {
            ("page_size", v) => limit = v.as_i64().unwrap_or(50),
            ("max_records" | "parallel", _) => {}
            ("tags" | "his_tags", Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let mut tag = Map::new();
                    for (k, v) in item.as_object().into_iter().flatten() {
                        let p = format!("{ptr}/{i}/{k}");
                        let rendered = match v {
                            Value::String(s) => match render(&mut set, &p, s, &tctx) {
                                Ok(r) if k == "id" => match r.trim().parse::<i64>() {
                                    Ok(n) => Value::from(n),
                                    Err(_) => {
                                        errors.push(format!(
                                            "`{}` rendered {r:?}, not an integer id",
                                            display_path(&p)
                                        ));
                                        continue;
                                    }
                                },
                                Ok(r) => Value::String(r),
                                Err(e) => {
                                    errors.push(e);
                                    continue;
                                }
                            },
                            other => other.clone(),
                        };
                        tag.insert(k.clone(), rendered);
                    }
                    out.push(Value::Object(tag));
                }
                body.insert(key.clone(), Value::Array(out));
            }
            (_, Value::String(s)) => {
                match render(&mut set, &ptr, s, &tctx) {
                    Ok(r) => {
                        if (key == "start_time" || key == "end_time")
                            && !r.is_empty()
                            && !is_api_datetime(&r)
                        {
                            errors.push(format!(
                            "`query.{key}` rendered {r:?}; the API expects yyyy-MM-dd HH:mm:ss (the datetime filter converts)"
                        ));
                        }
                        let v = if key == "source_type" {
                            match r.trim().parse::<i64>() {
                                Ok(n) if (0..=15).contains(&n) => Value::from(n),
                                _ => {
                                    errors.push(format!("`query.source_type` rendered {r:?}; it must be an integer 0-15"));
                                    continue;
                                }
                            }
                        } else {
                            Value::String(r)
                        };
                        body.insert(key.clone(), v);
                    }
                    Err(e) => errors.push(e),
                }
            }
            (_, other) => {
                body.insert(key.clone(), other.clone());
            }
        }
    }
    body.insert("limit".into(), Value::from(limit));
    let output = job
        .spec
        .output
        .as_ref()
        .map(|o| render(&mut set, "/output/path", &o.path, &tctx))
        .transpose();
    let output = match output {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    if errors.is_empty() {
        Ok((Value::Object(body), output))
    } else {
        Err(errors)
    }
}

/// Record what a finished export covered, for the next run's templates (atomically: a
/// crash leaves the old state or the new one).
pub fn write_state(path: &Path, state: &Map<String, Value>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::run_dir::create_private_dir(dir)?;
    }
    crate::run_dir::write_json_atomic(path, state)
}

/// The end of an export's window, which `state.last_end_time` records for the next run:
/// the query's `end_time`. A query without one has no end — it also returns customers
/// created while it pages — so it records none (a next run starting from the run's start
/// would export those customers again).
pub fn window_end(request: &Value) -> Option<String> {
    request
        .get("end_time")
        .and_then(Value::as_str)
        .filter(|end| !end.is_empty())
        .map(str::to_string)
}
