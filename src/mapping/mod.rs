//! From a source record to a customer: one minijinja environment per job, every template
//! compiled once before any row is read, strict about undefined values.
//!
//! Templates are registered under the JSON pointer of their place in the job file
//! (`/mapping/email`), so a compile error finds its way back to `file:line:col` directly.

pub mod filters;
mod row_value;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

pub use self::row_value::row_value;
use crate::customer::{Customer, Field, FieldError};
use crate::source::Record;

/// What became of one source row.
#[derive(Debug, Clone)]
pub enum Outcome {
    Valid(Customer),
    Rejected(Vec<FieldError>),
    Skipped,
}

/// A template problem found while building the mapper, at a JSON pointer of the job file.
#[derive(Debug, Clone)]
pub struct TemplateProblem {
    pub pointer: String,
    /// Byte range inside the template text, when known.
    pub range: Option<std::ops::Range<usize>>,
    pub message: String,
}

enum Mapped {
    Scalar(Field, String),
    List(Field, Vec<String>),
    Map(Field, Vec<(String, MapEntry)>),
}

enum MapEntry {
    One(String),
    Many(Vec<String>),
}

enum FilterMode {
    /// `{% if EXPR %}1{% endif %}`: the expression's truthiness.
    Expression(String),
    /// A general template: falsy when it renders to "", false, 0, no or none.
    Rendered(String),
}

/// The compiled mapping of a batch_create job.
pub struct Mapper {
    env: Environment<'static>,
    fields: Vec<Mapped>,
    filter: Option<FilterMode>,
    vars: Value,
}

/// A fresh environment with cdpjob's filters and strict undefined handling.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Customer data is not HTML: never auto-escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("digits", filters::digits);
    env.add_filter("phone", filters::phone);
    env.add_filter("date", filters::date);
    env.add_filter("datetime", filters::datetime);
    env.add_filter("split", filters::split);
    env
}

/// Compiles templates into an environment and collects every problem rather than the first.
pub struct TemplateSet {
    pub env: Environment<'static>,
    pub problems: Vec<TemplateProblem>,
}

impl TemplateSet {
    pub fn new() -> TemplateSet {
        TemplateSet {
            env: environment(),
            problems: Vec::new(),
        }
    }

    /// Compile `source` under the name `pointer`; returns the name when it compiled.
    pub fn add(&mut self, pointer: &str, source: &str) -> Option<String> {
        if let Err(e) = self
            .env
            .add_template_owned(pointer.to_string(), source.to_string())
        {
            self.problems.push(TemplateProblem {
                pointer: pointer.to_string(),
                range: e.range(),
                message: format!("this template does not compile: {}", describe_error(&e)),
            });
            return None;
        }
        let before = self.problems.len();
        self.check_names(pointer, source);
        (self.problems.len() == before).then(|| pointer.to_string())
    }

    /// Unknown filters and tests are only found at render time by minijinja; find them now.
    fn check_names(&mut self, pointer: &str, source: &str) {
        use minijinja::machinery::{Token, tokenize};
        let tokens: Vec<_> = tokenize(source, false, Default::default())
            .filter_map(Result::ok)
            .collect();
        for (i, (tok, _)) in tokens.iter().enumerate() {
            let (is_filter, next) = match tok {
                Token::Pipe => (true, tokens.get(i + 1)),
                Token::Ident("filter")
                    if matches!(tokens.get(i.wrapping_sub(1)), Some((Token::BlockStart, _))) =>
                {
                    (true, tokens.get(i + 1))
                }
                Token::Ident("is") => match tokens.get(i + 1) {
                    Some((Token::Ident("not"), _)) => (false, tokens.get(i + 2)),
                    other => (false, other),
                },
                _ => continue,
            };
            let Some((Token::Ident(name), span)) = next else {
                continue;
            };
            let known = if is_filter {
                self.filter_exists(name)
            } else {
                self.test_exists(name)
            };
            if !known {
                let what = if is_filter { "filter" } else { "test" };
                self.problems.push(TemplateProblem {
                    pointer: pointer.to_string(),
                    range: Some(span.start_offset as usize..span.end_offset as usize),
                    message: format!("unknown {what} `{name}`"),
                });
            }
        }
    }

    fn probe(&self, expr: &str, unknown: ErrorKind) -> bool {
        match self.env.compile_expression(expr) {
            Ok(e) => !matches!(e.eval(()), Err(err) if err.kind() == unknown),
            Err(_) => true,
        }
    }

    fn filter_exists(&self, name: &str) -> bool {
        self.probe(&format!("none | {name}"), ErrorKind::UnknownFilter)
    }

    fn test_exists(&self, name: &str) -> bool {
        self.probe(&format!("none is {name}"), ErrorKind::UnknownTest)
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet::new()
    }
}

/// A minijinja error in one line a user can act on.
pub fn describe_error(e: &minijinja::Error) -> String {
    let kind = e.kind();
    match (kind, e.detail()) {
        (ErrorKind::UndefinedError, None) => {
            "a value is undefined (a missing column or key? `| default('')` allows absence)"
                .to_string()
        }
        // Our filters' own messages already say what went wrong.
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_string(),
        (_, Some(detail)) => format!("{kind}: {detail}"),
        (_, None) => kind.to_string(),
    }
}

/// If `source` is exactly one `{{ expression }}`, the expression.
fn sole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

impl Mapper {
    /// Compile every template of `mapping` and `filter`. `vars` are the job's vars with any
    /// command-line overrides applied.
    pub fn new(
        mapping: &serde_json::Map<String, Json>,
        filter: Option<&str>,
        vars: &serde_json::Map<String, Json>,
    ) -> Result<Mapper, Vec<TemplateProblem>> {
        let (mapper, problems) = Mapper::compile(mapping, filter, vars);
        if problems.is_empty() {
            Ok(mapper)
        } else {
            Err(problems)
        }
    }

    /// Compile what compiles and report the rest; `validate` still checks the columns
    /// that the good templates use when others are broken.
    pub fn compile(
        mapping: &serde_json::Map<String, Json>,
        filter: Option<&str>,
        vars: &serde_json::Map<String, Json>,
    ) -> (Mapper, Vec<TemplateProblem>) {
        let mut set = TemplateSet::new();
        let mut fields = Vec::new();
        for (key, value) in mapping {
            let Some(field) = Field::from_name(key) else {
                continue; // the schema has already reported it
            };
            let ptr = format!("/mapping/{key}");
            match value {
                Json::String(s) => {
                    if let Some(name) = set.add(&ptr, s) {
                        fields.push(Mapped::Scalar(field, name));
                    }
                }
                Json::Array(items) => {
                    let names = add_list(&mut set, &ptr, items);
                    fields.push(Mapped::List(field, names));
                }
                Json::Object(entries) => {
                    let mut out = Vec::new();
                    for (k, v) in entries {
                        let p = format!("{ptr}/{}", crate::job::yaml::pointer_segment(k));
                        match v {
                            Json::String(s) => {
                                if let Some(name) = set.add(&p, s) {
                                    out.push((k.clone(), MapEntry::One(name)));
                                }
                            }
                            Json::Array(items) => {
                                out.push((k.clone(), MapEntry::Many(add_list(&mut set, &p, items))))
                            }
                            _ => {}
                        }
                    }
                    fields.push(Mapped::Map(field, out));
                }
                _ => {}
            }
        }
        let filter = filter.and_then(|src| {
            let expr = sole_expression(src).map(str::to_string).or_else(|| {
                (!src.contains("{{") && !src.contains("{%")).then(|| src.trim().to_string())
            });
            match expr {
                Some(expr) => set
                    .add("/filter", &format!("{{% if {expr} %}}1{{% endif %}}"))
                    .map(FilterMode::Expression),
                None => set.add("/filter", src).map(FilterMode::Rendered),
            }
        });
        let mapper = Mapper {
            env: set.env,
            fields,
            filter,
            vars: Value::from(minijinja::value::Serde(vars)),
        };
        (mapper, set.problems)
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    /// Map one record. Never fails: problems become a rejected outcome with reasons.
    pub fn map(&self, record: Record) -> Outcome {
        let data = match record.data {
            Ok(d) => d,
            Err(reason) => {
                return Outcome::Rejected(vec![FieldError::new("source", "unreadable", reason)]);
            }
        };
        let ctx = minijinja::context! {
            row => row_value(data),
            vars => self.vars.clone(),
            row_number => record.row,
        };
        if let Some(filter) = &self.filter {
            let (name, is_expr) = match filter {
                FilterMode::Expression(n) => (n, true),
                FilterMode::Rendered(n) => (n, false),
            };
            match self.render(name, &ctx) {
                Ok(out) => {
                    let keep = if is_expr {
                        out == "1"
                    } else {
                        !matches!(
                            out.trim().to_ascii_lowercase().as_str(),
                            "" | "false" | "0" | "no" | "none"
                        )
                    };
                    if !keep {
                        return Outcome::Skipped;
                    }
                }
                Err(e) => {
                    return Outcome::Rejected(vec![FieldError::new(
                        "filter",
                        "template",
                        format!("the filter failed: {}", describe_error(&e)),
                    )]);
                }
            }
        }
        let mut rendered = Vec::with_capacity(self.fields.len());
        let mut errors = Vec::new();
        for mapped in &self.fields {
            let (field, result) = match mapped {
                Mapped::Scalar(f, name) => (*f, self.render(name, &ctx)),
                Mapped::List(f, names) => (*f, self.render_list(names, &ctx).map(|v| v.join(","))),
                Mapped::Map(f, entries) => (*f, self.render_map(entries, &ctx)),
            };
            match result {
                Ok(text) => rendered.push((field, text)),
                Err(e) => errors.push(FieldError::new(
                    field.name(),
                    "template",
                    format!("{}: {}", field.name(), describe_error(&e)),
                )),
            }
        }
        match Customer::from_rendered(rendered) {
            Ok(c) if errors.is_empty() => Outcome::Valid(c),
            Ok(_) => Outcome::Rejected(errors),
            Err(rule_errors) => {
                let had_render_errors = !errors.is_empty();
                errors.extend(rule_errors.into_iter().filter(|e| {
                    // A field that failed to render is not also "required" or "missing".
                    !(had_render_errors && (e.rule == "required" || e.rule == "contact_channel"))
                }));
                Outcome::Rejected(errors)
            }
        }
    }

    fn render_list(&self, names: &[String], ctx: &Value) -> Result<Vec<String>, minijinja::Error> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let s = self.render(n, ctx)?;
            let s = s.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
        Ok(out)
    }

    fn render_map(
        &self,
        entries: &[(String, MapEntry)],
        ctx: &Value,
    ) -> Result<String, minijinja::Error> {
        let mut obj = serde_json::Map::new();
        for (key, entry) in entries {
            match entry {
                MapEntry::One(n) => {
                    let s = self.render(n, ctx)?;
                    if !s.is_empty() {
                        obj.insert(key.clone(), Json::String(s));
                    }
                }
                MapEntry::Many(names) => {
                    let items = self.render_list(names, ctx)?;
                    if !items.is_empty() {
                        obj.insert(key.clone(), Json::from(items));
                    }
                }
            }
        }
        Ok(if obj.is_empty() {
            String::new()
        } else {
            Json::Object(obj).to_string()
        })
    }

    /// `row.X` names used by any template (for checking a CSV header).
    pub fn row_columns(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, tmpl) in self.env.templates() {
            for var in tmpl.undeclared_variables(true) {
                if let Some(col) = var.strip_prefix("row.") {
                    out.push((name.to_string(), col.to_string()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn add_list(set: &mut TemplateSet, ptr: &str, items: &[Json]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            item.as_str()
                .and_then(|s| set.add(&format!("{ptr}/{i}"), s))
        })
        .collect()
}
