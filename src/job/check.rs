//! Semantic checks, the ones a schema cannot express: templates compile and name known
//! filters, the source exists and its header has the columns templates use, the base URL is
//! safe. Each pass works on the raw document, so they all run even when the schema has
//! already found problems, and the user sees every error at once.

use std::collections::HashSet;

use serde_json::Value;

use super::{Parsed, paths};
use crate::customer::Field;
use crate::diagnostic::{Diagnostic, Pos};
use crate::mapping::Mapper;
use crate::pointer;
use crate::source::{self, CsvOptions};
use crate::suggest;
use crate::template::{TemplateProblem, TemplateSet};

pub fn semantic(p: &Parsed<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_base_url(p, &mut out);
    check_notify(p, &mut out);
    match p.doc.get("kind").and_then(Value::as_str) {
        Some("batch_create") => check_batch_create(p, &mut out),
        Some("query_export") => check_query_export(p, &mut out),
        _ => {}
    }
    out
}

/// Where a template problem is: the template's node, moved to the exact character when the
/// template text sits verbatim on that line of the file.
fn template_pos(p: &Parsed<'_>, problem: &TemplateProblem) -> Pos {
    let pos = p.index.value_of(&problem.pointer);
    let Some(range) = &problem.range else {
        return pos;
    };
    let Some(source) = p.doc.pointer(&problem.pointer).and_then(Value::as_str) else {
        return pos;
    };
    let Some(line) = p.text.lines().nth(pos.line - 1) else {
        return pos;
    };
    let rest: String = line.chars().skip(pos.col - 1).collect();
    let quote = usize::from(rest.starts_with('"') || rest.starts_with('\''));
    let first_line = source.lines().next().unwrap_or_default();
    let before = source.get(..range.start).unwrap_or_default();
    if rest[quote..].starts_with(first_line) && !before.contains('\n') {
        pos.shifted(quote + before.chars().count())
    } else {
        pos
    }
}

fn template_diag(p: &Parsed<'_>, problem: &TemplateProblem) -> Diagnostic {
    let field = pointer::display(&problem.pointer);
    Diagnostic::new(
        template_pos(p, problem),
        format!("`{field}`: {}", problem.message),
    )
}

fn check_base_url(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let Some(url) = p.doc.pointer("/api/base_url").and_then(Value::as_str) else {
        return;
    };
    if url == "sim" {
        return;
    }
    if let Err(e) = crate::api::check_base_url(url) {
        out.push(
            Diagnostic::new(
                p.index.value_of("/api/base_url"),
                format!("`api.base_url`: {e}"),
            )
            .with_hint("customer data and signatures must not travel unencrypted"),
        );
    }
}

/// `notify.body` compiles (its `on` values are the schema's).
fn check_notify(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let Some(body) = p.doc.pointer("/notify/body").and_then(Value::as_str) else {
        return;
    };
    if let Err(e) = crate::notify::check_body(body) {
        out.push(Diagnostic::new(
            p.index.value_of("/notify/body"),
            format!("`notify.body`: {e}"),
        ));
    }
}

fn check_batch_create(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let mapping = p.doc.get("mapping").and_then(Value::as_object);
    let filter = p.doc.get("filter").and_then(Value::as_str);
    let mapper = mapping.map(|m| {
        let (mapper, problems) = Mapper::compile(m, filter, p.vars);
        out.extend(problems.iter().map(|pr| template_diag(p, pr)));
        mapper
    });
    if let Some(m) = mapping {
        let channels: Vec<&str> = Field::CONTACT_CHANNELS.iter().map(|f| f.name()).collect();
        if !m.keys().any(|k| channels.contains(&k.as_str())) {
            out.push(Diagnostic::new(
                p.index.key_of("/mapping"),
                format!(
                    "`mapping` names no contact channel, so every row would be rejected: map at least one of {}",
                    channels.join(", ")
                ),
            ));
        }
    }
    check_sync_key(p, mapping, out);
    check_source(p, mapper.as_ref(), out);
    super::cases::check(p, out);
}

/// `sync: changed` recognizes a customer by its match key: a mapping without any of the
/// key fields would send every customer on every run, which is not what was asked for.
fn check_sync_key(
    p: &Parsed<'_>,
    mapping: Option<&serde_json::Map<String, Value>>,
    out: &mut Vec<Diagnostic>,
) {
    if p.doc.get("sync").and_then(Value::as_str) != Some("changed") {
        return;
    }
    let keys: Vec<&str> = Field::MATCH_KEYS.iter().map(|f| f.name()).collect();
    if mapping.is_some_and(|m| !m.keys().any(|k| keys.contains(&k.as_str()))) {
        out.push(Diagnostic::new(
            p.index.value_of("/sync"),
            format!(
                "`sync: changed` recognizes customers by their match key, but `mapping` renders none of {}: every customer would be sent on every run",
                keys.join(", ")
            ),
        ));
    }
}

fn check_source(p: &Parsed<'_>, mapper: Option<&Mapper>, out: &mut Vec<Diagnostic>) {
    let Some(src) = p.doc.get("source").and_then(Value::as_object) else {
        return;
    };
    let Some(path) = src.get("path").and_then(Value::as_str) else {
        return;
    };
    let kind = src.get("type").and_then(Value::as_str).unwrap_or("csv");
    for key in ["delimiter", "quote"] {
        if let Some(s) = src.get(key).and_then(Value::as_str)
            && s.chars().count() == 1
            && !s.is_ascii()
        {
            out.push(Diagnostic::new(
                p.index.value_of(&format!("/source/{key}")),
                format!("`source.{key}` must be an ASCII character"),
            ));
        }
    }
    let header = src.get("header").and_then(Value::as_bool).unwrap_or(true);
    let columns: Option<Vec<String>> = src
        .get("columns")
        .and_then(|c| serde_json::from_value(c.clone()).ok());
    if kind == "csv" && !header && columns.is_none() {
        out.push(Diagnostic::new(
            p.index.key_of("/source/header"),
            "`source.header` is false, so `source.columns` must name the columns".to_string(),
        ));
    }
    check_keys_of_kind(p, src, kind, out);
    if path == "-" {
        if kind == "xlsx" {
            out.push(Diagnostic::new(
                p.index.value_of("/source/path"),
                "`source.path`: a workbook cannot be read from standard input (`-`): name its file"
                    .to_string(),
            ));
            return;
        }
        if p.doc.pointer("/guard/max_rejected").is_some() {
            out.push(
                Diagnostic::new(
                    p.index.key_of("/guard/max_rejected"),
                    "`guard.max_rejected` reads the whole source before the first request, and standard input (`source.path: \"-\"`) can be read only once".to_string(),
                )
                .with_hint("read the source from a file, or remove `max_rejected`"),
            );
        }
        return; // standard input: nothing else to check before the run
    }
    let full = paths::resolve(p.dir, path);
    let pos = p.index.value_of("/source/path");
    let file = match std::fs::File::open(&full) {
        Ok(f) => f,
        Err(e) => {
            out.push(
                Diagnostic::new(
                    pos,
                    format!("`source.path`: cannot read {}: {e}", full.display()),
                )
                .with_hint("relative paths resolve against the job file's directory"),
            );
            return;
        }
    };
    if full.is_dir() {
        out.push(Diagnostic::new(
            pos,
            format!("`source.path`: {} is a directory", full.display()),
        ));
        return;
    }
    if kind == "xlsx" {
        drop(file);
        let opts = source::SheetOptions {
            sheet: match src.get("sheet") {
                Some(Value::String(name)) => Some(source::SheetRef::Name(name.clone())),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(source::SheetRef::Position),
                _ => None,
            },
            header_row: src
                .get("header_row")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
        };
        match source::SheetSource::open(&full, &opts, Default::default()) {
            Ok(sheet) => {
                let of = format!("the header row of sheet `{}` in {path}", sheet.sheet());
                check_source_columns(p, mapper, sheet.columns(), &of, out);
            }
            Err(e) => {
                let at = format!("/source/{}", e.key);
                let at = match p.doc.pointer(&at) {
                    Some(_) => p.index.value_of(&at),
                    None => pos,
                };
                out.push(Diagnostic::new(at, e.to_string()));
            }
        }
        return;
    }
    if kind != "csv" {
        return;
    }
    drop(file);
    let text_opts = source::TextOptions {
        compression: src.get("compression").and_then(Value::as_str),
        encoding: src.get("encoding").and_then(Value::as_str),
    };
    let opts = CsvOptions {
        delimiter: src
            .get("delimiter")
            .and_then(Value::as_str)
            .and_then(|s| s.bytes().next())
            .unwrap_or(b','),
        quote: src
            .get("quote")
            .and_then(Value::as_str)
            .and_then(|s| s.bytes().next())
            .unwrap_or(b'"'),
        header: true,
        columns: None,
        encoding: "UTF-8",
    };
    let mut names = if header {
        let read = source::text::open(&full, text_opts, Default::default()).and_then(|text| {
            let opts = opts.clone().encoded(text.encoding.name());
            source::read_csv_header(text.reader, &opts)
        });
        match read {
            Ok(n) => n,
            Err(e) => {
                out.push(Diagnostic::new(pos, format!("`source.path`: {e}")));
                return;
            }
        }
    } else {
        columns.unwrap_or_default()
    };
    if header
        && let Some(mapper) = mapper
        && mapper
            .row_columns()
            .iter()
            .any(|(_, col)| !names.contains(col))
        && let Some((d, split)) = source::delimiter::better_split(&full, text_opts, &opts, &names)
    {
        // Said once, for the file: each `row.X` is then checked against the columns the
        // right delimiter gives, so only a real typo is reported beside it.
        out.push(
            Diagnostic::new(
                p.index.value_of(if src.contains_key("delimiter") {
                    "/source/delimiter"
                } else {
                    "/source/path"
                }),
                format!(
                    "`source.delimiter`: the CSV header of {path} is one column, `{}`, read with the delimiter {}; it splits cleanly on {} into {} columns: {}",
                    names[0],
                    source::delimiter::as_yaml(opts.delimiter),
                    source::delimiter::as_yaml(d),
                    split.len(),
                    split.join(", ")
                ),
            )
            .with_hint(format!(
                "set `source.delimiter: {}`",
                source::delimiter::as_yaml(d)
            )),
        );
        names = split;
    }
    let of = format!("the CSV header of {path}");
    check_source_columns(p, mapper, &names, &of, out);
}

/// The source's columns, as `of` names them: none twice, and every `row.X` a template
/// uses among them (with a "did you mean").
fn check_source_columns(
    p: &Parsed<'_>,
    mapper: Option<&Mapper>,
    names: &[String],
    of: &str,
    out: &mut Vec<Diagnostic>,
) {
    let pos = p.index.value_of("/source/path");
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            out.push(Diagnostic::new(
                pos,
                format!("`source.path`: {of} names the column `{n}` twice"),
            ));
        }
    }
    if let Some(mapper) = mapper {
        check_row_columns(p, mapper, names, of, out);
    }
}

/// Every `row.X` of the templates must be one of `names` (the columns of `what`).
fn check_row_columns(
    p: &Parsed<'_>,
    mapper: &Mapper,
    names: &[String],
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    for (pointer, col) in mapper.row_columns() {
        if names.iter().any(|n| n == &col) {
            continue;
        }
        let near = suggest::closest(&col, names.iter().map(String::as_str));
        let problem = TemplateProblem {
            pointer: pointer.clone(),
            range: p
                .doc
                .pointer(&pointer)
                .and_then(Value::as_str)
                .and_then(|s| s.find(&format!("row.{col}")))
                .map(|i| i..i + 4 + col.len()),
            message: format!("`row.{col}`: {what} has no column `{col}`"),
        };
        let d = template_diag(p, &problem);
        out.push(match near {
            Some(n) => d.with_hint(format!("did you mean `row.{n}`?")),
            None => d.with_hint(format!("the columns are: {}", names.join(", "))),
        });
    }
}

/// `source` keys that mean nothing for its type: the CSV options on a workbook, the sheet
/// options on a text file.
fn check_keys_of_kind(
    p: &Parsed<'_>,
    src: &serde_json::Map<String, Value>,
    kind: &str,
    out: &mut Vec<Diagnostic>,
) {
    let (keys, applies): (&[&str], &str) = if kind == "xlsx" {
        (
            &[
                "delimiter",
                "quote",
                "header",
                "columns",
                "encoding",
                "compression",
            ],
            "text sources (csv, jsonl, json), not to a workbook",
        )
    } else {
        (&["sheet", "header_row"], "`type: xlsx` sources only")
    };
    for key in keys.iter().filter(|k| src.contains_key(**k)) {
        out.push(Diagnostic::new(
            p.index.key_of(&format!("/source/{key}")),
            format!("`source.{key}` applies to {applies}"),
        ));
    }
}

/// `validate --remote` of a sql source: every `row.X` against the query's `columns` (as
/// the database described them, without fetching a row; SPEC §12 R11).
pub fn sql_columns(p: &Parsed<'_>, columns: &[String]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mapping = p.doc.get("mapping").and_then(Value::as_object);
    let filter = p.doc.get("filter").and_then(Value::as_str);
    if let Some(m) = mapping {
        let (mapper, _) = Mapper::compile(m, filter, p.vars);
        check_row_columns(p, &mapper, columns, "the query of `source.query`", &mut out);
    }
    out
}

/// What deserves a look without stopping anything: `validate` prints these and exits 0.
pub fn warnings(p: &Parsed<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if p.doc.pointer("/source/type").and_then(Value::as_str) == Some("sql")
        && let Some(query) = p.doc.pointer("/source/query").and_then(Value::as_str)
        && !has_order_by(query)
    {
        out.push(
            Diagnostic::new(
                p.index.value_of("/source/query"),
                "warning: `source.query` has no ORDER BY, so row numbers follow the order the database happens to return"
                    .to_string(),
            )
            .with_hint("order by a unique key (`ORDER BY id`): then row N is the same row in every run, plan and retry"),
        );
    }
    out
}

/// Whether a query says ORDER BY anywhere (any case, any whitespace between the words).
fn has_order_by(query: &str) -> bool {
    let words: Vec<String> = query
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    words.windows(2).any(|w| w[0] == "ORDER" && w[1] == "BY")
}

fn check_query_export(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let mut set = TemplateSet::new();
    let visit = |pointer: String, v: &Value, set: &mut TemplateSet| {
        if let Value::String(s) = v {
            set.add(&pointer, s);
        }
    };
    if let Some(q) = p.doc.get("query").and_then(Value::as_object) {
        for (k, v) in q {
            let ptr = format!("/query/{k}");
            match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(obj) = item.as_object() {
                            for (kk, vv) in obj {
                                visit(format!("{ptr}/{i}/{kk}"), vv, &mut set);
                            }
                        }
                    }
                }
                other => visit(ptr, other, &mut set),
            }
        }
    }
    if let Some(path) = p.doc.pointer("/output/path") {
        visit("/output/path".into(), path, &mut set);
    }
    out.extend(set.problems.iter().map(|pr| template_diag(p, pr)));
    check_columns(p, out);
    check_parallel(p, out);
}

/// `query.parallel` > 1 splits the query's window: it needs both ends, and cannot honour a
/// `max_records` (which customers would be "the first N" of several windows?).
fn check_parallel(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let parallel = p.doc.pointer("/query/parallel").and_then(Value::as_u64);
    if parallel.is_none_or(|k| k <= 1) {
        return;
    }
    if p.doc.pointer("/query/max_records").is_some() {
        out.push(Diagnostic::new(
            p.index.key_of("/query/max_records"),
            "`query.max_records` cannot be used with `query.parallel` > 1: drop one of them"
                .to_string(),
        ));
    }
    for end in ["start_time", "end_time"] {
        if p.doc.pointer(&format!("/query/{end}")).is_none() {
            out.push(Diagnostic::new(
                p.index.key_of("/query/parallel"),
                format!("`query.parallel` > 1 splits the window, so `query.{end}` is needed"),
            ));
        }
    }
}

/// Columns (CSV, xlsx) and keys (JSON Lines) must name something a customer has; the
/// spreadsheet options of CSV belong to CSV.
fn check_columns(p: &Parsed<'_>, out: &mut Vec<Diagnostic>) {
    let format = p
        .doc
        .pointer("/output/format")
        .and_then(Value::as_str)
        .unwrap_or("csv");
    if format != "csv" {
        for (key, why) in [
            (
                "bom",
                "a byte-order mark is for spreadsheet programs that open a CSV file",
            ),
            (
                "formula_guard",
                "only a CSV cell can run as a formula: a workbook's text cells and JSON strings never do",
            ),
        ] {
            if p.doc.pointer(&format!("/output/{key}")).is_some() {
                out.push(
                    Diagnostic::new(
                        p.index.key_of(&format!("/output/{key}")),
                        format!("`output.{key}` applies to csv output, not {format}: {why}"),
                    )
                    .with_hint(format!("remove `{key}`, or use `format: csv`")),
                );
            }
        }
    }
    let Some(columns) = p.doc.pointer("/output/columns").and_then(Value::as_array) else {
        return;
    };
    for (i, column) in columns.iter().enumerate() {
        if let Some(name) = column.as_str()
            && let Err(message) = crate::api::wire::check_query_column(name)
        {
            out.push(Diagnostic::new(
                p.index.value_of(&format!("/output/columns/{i}")),
                format!("`output.columns[{i}]`: {message}"),
            ));
        }
    }
}
