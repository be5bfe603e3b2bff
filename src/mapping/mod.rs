//! From a source record to a customer: the job's mapping templates (compiled once, with
//! `template`'s environment, before any row is read) rendered per row and assembled into a
//! customer checked against the vendor's rules, or a rejection naming the field.
//!
//! Templates are registered under the JSON pointer of their place in the job file
//! (`/mapping/email`), so a compile error finds its way back to `file:line:col` directly.
//!
//! Speed: rendering fifteen small templates one by one costs fifteen times minijinja's
//! per-render setup. So the mapper also compiles all of a row's templates into one
//! *combined* template whose output is the slots joined by a separator, renders that once per
//! row, and falls back to rendering slot by slot only when it fails or its output is
//! ambiguous — which is also how a render error is pinned to its field.

mod trace;

use minijinja::value::Value;
use minijinja::{Environment, Template};
use serde_json::Value as Json;

use crate::customer::{Customer, Field, FieldError, Rule};
use crate::pointer;
use crate::source::Record;
use crate::template::direct::{Condition, Direct};
use crate::template::{TemplateProblem, TemplateSet, describe_error, row_value};

pub use self::trace::{FieldTrace, FilterTrace, MappingTrace, Native, SlotTrace, same_outcome};

/// What became of one source row.
#[derive(Debug, Clone)]
pub enum Outcome {
    Valid(Customer),
    Rejected(Vec<FieldError>),
    Skipped,
}

/// A customer field and the slots (rendered strings) it is made of.
enum Mapped {
    Scalar(Field, usize),
    /// Joined with commas, empty items dropped.
    List(Field, Vec<usize>),
    /// Serialized to JSON text; empty values dropped.
    Map(Field, Vec<(String, MapSlot)>),
}

enum MapSlot {
    One(usize),
    Many(Vec<usize>),
}

enum FilterMode {
    /// An expression: `{% if EXPR %}` decides.
    Expression(String),
    /// A general template: falsy when it renders to "", false, 0, no or none.
    Rendered,
}

/// Marks a kept row at the start of the combined output (a skipped row renders nothing).
const KEEP: char = '\u{1E}';
/// Separates slots in the combined output.
const SEP: char = '\u{1F}';
const COMBINED: &str = "<combined>";
const FILTER: &str = "/filter";

/// If `source` is exactly one `{{ expression }}`, the expression.
fn sole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// The compiled mapping of a batch_create job.
pub struct Mapper {
    env: Environment<'static>,
    /// Template name (its JSON pointer) and source of each slot.
    slots: Vec<(String, String)>,
    /// The native form of each slot that has one.
    direct: Vec<Option<Direct>>,
    /// The slots the combined template renders (those without a native form), in order.
    combined_slots: Vec<usize>,
    fields: Vec<Mapped>,
    filter: Option<FilterMode>,
    /// The filter's native form, when it has one.
    native_filter: Option<Condition>,
    /// Some slot or the filter needs minijinja on every row.
    needs_jinja: bool,
    has_combined: bool,
    vars: Value,
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
        let mut slots: Vec<(String, String)> = Vec::new();
        let mut slot = |set: &mut TemplateSet, pointer: String, source: &str| -> Option<usize> {
            set.add(&pointer, source)?;
            slots.push((pointer, source.to_string()));
            Some(slots.len() - 1)
        };
        let mut fields = Vec::new();
        for (key, value) in mapping {
            let Some(field) = Field::from_name(key) else {
                continue; // the schema has already reported it
            };
            let ptr = format!("/mapping/{key}");
            match value {
                Json::String(s) => {
                    if let Some(i) = slot(&mut set, ptr, s) {
                        fields.push(Mapped::Scalar(field, i));
                    }
                }
                Json::Array(items) => {
                    let ids = list_slots(items, &ptr, |p, s| slot(&mut set, p, s));
                    fields.push(Mapped::List(field, ids));
                }
                Json::Object(entries) => {
                    let mut out = Vec::new();
                    for (k, v) in entries {
                        let p = format!("{ptr}/{}", pointer::segment(k));
                        match v {
                            Json::String(s) => {
                                if let Some(i) = slot(&mut set, p, s) {
                                    out.push((k.clone(), MapSlot::One(i)));
                                }
                            }
                            Json::Array(items) => {
                                let ids = list_slots(items, &p, |p, s| slot(&mut set, p, s));
                                out.push((k.clone(), MapSlot::Many(ids)));
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
                    .add(FILTER, &format!("{{% if {expr} %}}1{{% endif %}}"))
                    .map(|_| FilterMode::Expression(expr)),
                None => set.add(FILTER, src).map(|_| FilterMode::Rendered),
            }
        });
        let direct: Vec<Option<Direct>> = slots
            .iter()
            .map(|(_, src)| Direct::compile(src, vars))
            .collect();
        let combined_slots: Vec<usize> =
            (0..slots.len()).filter(|i| direct[*i].is_none()).collect();
        let native_filter = match &filter {
            Some(FilterMode::Expression(expr)) => Condition::compile(expr, vars),
            _ => None,
        };
        let jinja_filter = filter.as_ref().filter(|_| native_filter.is_none());
        let needs_combined = jinja_filter.is_some() || !combined_slots.is_empty();
        let has_combined = set.problems.is_empty()
            && needs_combined
            && add_combined(&mut set.env, &slots, &combined_slots, jinja_filter);
        let mapper = Mapper {
            env: set.env,
            slots,
            direct,
            combined_slots,
            fields,
            filter,
            native_filter,
            needs_jinja: needs_combined,
            has_combined,
            vars: Value::from(minijinja::value::Serde(vars)),
        };
        (mapper, set.problems)
    }

    /// Templates looked up once, for mapping many records on one thread.
    pub fn session(&self) -> MapperSession<'_> {
        let get = |name: &str| {
            self.env
                .get_template(name)
                .expect("every registered template is found")
        };
        MapperSession {
            mapper: self,
            combined: self.has_combined.then(|| get(COMBINED)),
            slots: self.slots.iter().map(|(name, _)| get(name)).collect(),
            filter: self.filter.as_ref().map(|_| get(FILTER)),
        }
    }

    /// `row.X` names used by any template (for checking a CSV header), with the template.
    pub fn row_columns(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, tmpl) in self.env.templates() {
            if name == COMBINED {
                continue;
            }
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

fn list_slots(
    items: &[Json],
    ptr: &str,
    mut slot: impl FnMut(String, &str) -> Option<usize>,
) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.as_str().and_then(|s| slot(format!("{ptr}/{i}"), s)))
        .collect()
}

/// Register the one-pass template: `KEEP slot0 SEP slot1 SEP …`, inside the filter's `if`
/// when the filter is an expression. Returns false if it does not compile (then every row
/// is rendered slot by slot, which is slower but equivalent).
fn add_combined(
    env: &mut Environment<'static>,
    slots: &[(String, String)],
    which: &[usize],
    filter: Option<&FilterMode>,
) -> bool {
    if matches!(filter, Some(FilterMode::Rendered)) {
        return false;
    }
    let mut body = String::from(KEEP);
    for (n, &i) in which.iter().enumerate() {
        if n > 0 {
            body.push(SEP);
        }
        body.push_str(&slots[i].1);
    }
    let source = match filter {
        Some(FilterMode::Expression(expr)) => format!("{{% if {expr} %}}{body}{{% endif %}}"),
        _ => body,
    };
    env.add_template_owned(COMBINED, source).is_ok()
}

/// A mapper bound to its templates; create one per thread with [`Mapper::session`].
pub struct MapperSession<'m> {
    mapper: &'m Mapper,
    combined: Option<Template<'m, 'm>>,
    slots: Vec<Template<'m, 'm>>,
    filter: Option<Template<'m, 'm>>,
}

impl MapperSession<'_> {
    /// Map one record. Never fails: problems become a rejected outcome with reasons.
    pub fn map(&self, record: &Record) -> Outcome {
        let data = match &record.data {
            Ok(d) => d,
            Err(bad) => {
                return Outcome::Rejected(vec![FieldError::new(
                    "source",
                    Rule::Unreadable,
                    bad.reason.clone(),
                )]);
            }
        };
        let m = self.mapper;
        // The fast path: native filter and slots first, then one render for the rest.
        let mut natives_ok = true;
        let mut filter_passed = false;
        if let Some(cond) = &m.native_filter {
            match cond.eval(data, record.row) {
                Some(true) => filter_passed = true,
                Some(false) => return Outcome::Skipped,
                None => natives_ok = false,
            }
        }
        let mut texts: Vec<Option<String>> = m
            .direct
            .iter()
            .map(|d| d.as_ref().and_then(|d| d.eval(data, record.row)))
            .collect();
        natives_ok &= texts
            .iter()
            .zip(&m.direct)
            .all(|(t, d)| t.is_some() || d.is_none());
        let all_native = !m.needs_jinja;
        if natives_ok && all_native {
            return self.assemble(|i| Ok(texts[i].take().unwrap_or_default()));
        }
        let ctx = minijinja::context! {
            row => row_value(data.clone()),
            vars => m.vars.clone(),
            row_number => record.row,
        };
        if !natives_ok {
            // Some native form stepped aside for this row (a date that does not exist, a
            // value that is not text): minijinja renders those slots, and only those.
            return self.map_mixed(&ctx, texts, filter_passed);
        }
        if let Some(combined) = &self.combined
            && let Ok(out) = combined.render(&ctx)
        {
            let Some(body) = out.strip_prefix(KEEP) else {
                return Outcome::Skipped;
            };
            let rendered: Vec<&str> = if m.combined_slots.is_empty() {
                Vec::new()
            } else {
                body.split(SEP).collect()
            };
            // More pieces than slots means a value held a separator: take the exact path.
            if rendered.len() == m.combined_slots.len() {
                for (&i, text) in m.combined_slots.iter().zip(rendered) {
                    texts[i] = Some(text.to_string());
                }
                return self.assemble(|i| Ok(texts[i].take().unwrap_or_default()));
            }
        }
        self.map_mixed(&ctx, texts, filter_passed)
    }

    /// Slot by slot, as [`Self::map_slot_by_slot`], but a slot the native path rendered
    /// (`texts[i]`) keeps that text — the very text minijinja gives (the differential
    /// tests hold them to it) — and a filter the native condition passed is not rendered
    /// again.
    fn map_mixed(
        &self,
        ctx: &Value,
        mut texts: Vec<Option<String>>,
        filter_passed: bool,
    ) -> Outcome {
        if !filter_passed && let Some(skipped_or_failed) = self.jinja_filter(ctx) {
            return skipped_or_failed;
        }
        self.assemble(|i| match texts[i].take() {
            Some(text) => Ok(text),
            None => self.slots[i].render(ctx),
        })
    }

    /// The row through minijinja alone, slot by slot: what `explain` compares a run with.
    fn map_slot_by_slot(&self, ctx: &Value) -> Outcome {
        if let Some(skipped_or_failed) = self.jinja_filter(ctx) {
            return skipped_or_failed;
        }
        self.assemble(|i| self.slots[i].render(ctx))
    }

    /// The filter rendered by minijinja: `None` when the row is kept (or there is no
    /// filter), else its outcome, skipped or rejected for the filter's error.
    fn jinja_filter(&self, ctx: &Value) -> Option<Outcome> {
        if let (Some(filter), Some(mode)) = (&self.filter, &self.mapper.filter) {
            match filter.render(ctx) {
                Ok(out) => {
                    let keep = match mode {
                        FilterMode::Expression(_) => out == "1",
                        FilterMode::Rendered => !matches!(
                            out.trim().to_ascii_lowercase().as_str(),
                            "" | "false" | "0" | "no" | "none"
                        ),
                    };
                    if !keep {
                        return Some(Outcome::Skipped);
                    }
                }
                Err(e) => {
                    return Some(Outcome::Rejected(vec![FieldError::new(
                        "filter",
                        Rule::Template,
                        format!("the filter failed: {}", describe_error(&e)),
                    )]));
                }
            }
        }
        None
    }

    /// Build the customer from slot texts (`text(i)`), collecting every problem.
    fn assemble(&self, mut text: impl FnMut(usize) -> Result<String, minijinja::Error>) -> Outcome {
        let mut rendered = Vec::with_capacity(self.mapper.fields.len());
        let mut errors = Vec::new();
        for mapped in &self.mapper.fields {
            let (field, result) = match mapped {
                Mapped::Scalar(f, i) => (*f, text(*i)),
                Mapped::List(f, ids) => (*f, joined(ids, &mut text)),
                Mapped::Map(f, entries) => (*f, map_json(entries, &mut text)),
            };
            match result {
                Ok(s) => rendered.push((field, s)),
                Err(e) => errors.push(FieldError::new(
                    field.name(),
                    Rule::Template,
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
                    !(had_render_errors && matches!(e.rule, Rule::Required | Rule::ContactChannel))
                }));
                Outcome::Rejected(errors)
            }
        }
    }
}

/// Each of the slots' texts, trimmed, the empty ones dropped, passed to `each` in order.
fn for_items(
    ids: &[usize],
    text: &mut impl FnMut(usize) -> Result<String, minijinja::Error>,
    mut each: impl FnMut(&str),
) -> Result<(), minijinja::Error> {
    for &i in ids {
        let s = text(i)?;
        let s = s.trim();
        if !s.is_empty() {
            each(s);
        }
    }
    Ok(())
}

fn list(
    ids: &[usize],
    text: &mut impl FnMut(usize) -> Result<String, minijinja::Error>,
) -> Result<Vec<String>, minijinja::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for_items(ids, text, |s| out.push(s.to_string()))?;
    Ok(out)
}

/// A list field's value: the items joined with commas (what `list(…).join(",")` gives,
/// without a string per item).
fn joined(
    ids: &[usize],
    text: &mut impl FnMut(usize) -> Result<String, minijinja::Error>,
) -> Result<String, minijinja::Error> {
    let mut out = String::new();
    for_items(ids, text, |s| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(s);
    })?;
    Ok(out)
}

/// A map field's value as JSON text, written as it goes: the same text as building a
/// `serde_json` object of the non-empty entries and printing it (the keys are unique, those
/// of a JSON object in the job), without the object. Empty when every entry is.
fn map_json(
    entries: &[(String, MapSlot)],
    text: &mut impl FnMut(usize) -> Result<String, minijinja::Error>,
) -> Result<String, minijinja::Error> {
    fn json_str(out: &mut Vec<u8>, s: &str) {
        serde_json::to_writer(out, s).expect("writing to memory does not fail");
    }
    let mut out: Vec<u8> = Vec::with_capacity(64);
    let key_of = |out: &mut Vec<u8>, key: &str| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        json_str(out, key);
        out.push(b':');
    };
    for (key, entry) in entries {
        match entry {
            MapSlot::One(i) => {
                let s = text(*i)?;
                if !s.is_empty() {
                    key_of(&mut out, key);
                    json_str(&mut out, &s);
                }
            }
            MapSlot::Many(ids) => {
                let mut items: Vec<u8> = Vec::new();
                for_items(ids, text, |s| {
                    items.push(if items.is_empty() { b'[' } else { b',' });
                    json_str(&mut items, s);
                })?;
                if !items.is_empty() {
                    key_of(&mut out, key);
                    out.extend_from_slice(&items);
                    out.push(b']');
                }
            }
        }
    }
    if !out.is_empty() {
        out.push(b'}');
    }
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{RecordSource, RowData};

    fn mapper(yaml_mapping: serde_json::Value, filter: Option<&str>) -> Mapper {
        let vars = serde_json::json!({"cc": "86"});
        Mapper::new(
            yaml_mapping.as_object().unwrap(),
            filter,
            vars.as_object().unwrap(),
        )
        .unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn json_record(row: u64, v: serde_json::Value) -> Record {
        Record {
            row,
            line: row,
            data: Ok(RowData::Json(v.as_object().unwrap().clone())),
        }
    }

    fn csv_records(text: &str) -> Vec<Record> {
        let src = crate::source::CsvSource::new(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            crate::source::CsvOptions {
                delimiter: b',',
                quote: b'"',
                header: true,
                columns: None,
                encoding: "UTF-8",
            },
        )
        .unwrap();
        let mut out = Vec::new();
        Box::new(src)
            .for_each(&mut |r| {
                out.push(r);
                true
            })
            .unwrap();
        out
    }

    fn summary(o: &Outcome) -> String {
        match o {
            Outcome::Valid(c) => serde_json::to_string(c).unwrap(),
            Outcome::Skipped => "skipped".into(),
            Outcome::Rejected(e) => format!(
                "rejected {:?}",
                e.iter()
                    .map(|e| (&e.field, e.rule.as_str()))
                    .collect::<Vec<_>>()
            ),
        }
    }

    const CSV: &str = "name,kind,phone\nAnn,a,139 1234 5678\nBob,b,+1 415 555 0100\nCid,a,n/a\n";

    fn run(m: &Mapper, records: Vec<Record>) -> Vec<String> {
        let s = m.session();
        records.into_iter().map(|r| summary(&s.map(&r))).collect()
    }

    #[test]
    fn every_filter_form_gives_the_same_partition() {
        let mapping = serde_json::json!({"full_name": "{{ row.name }}", "sms_phone": "{{ row.phone | phone(vars.cc) }}"});
        let expected = vec![
            r#"{"full_name":"Ann","sms_phone":"8613912345678"}"#.to_string(),
            "skipped".to_string(),
            r#"rejected [("sms_phone", "template")]"#.to_string(),
        ];
        for filter in [
            "{{ row.kind == 'a' }}",                  // native condition
            "row.kind != 'b'",                        // bare expression, native
            "{{ row.kind in ['a'] }}",                // minijinja expression
            "{% if row.kind == 'a' %}yes{% endif %}", // rendered template
        ] {
            let m = mapper(mapping.clone(), Some(filter));
            assert_eq!(run(&m, csv_records(CSV)), expected, "filter {filter}");
        }
    }

    #[test]
    fn native_jinja_and_mixed_mappings_agree() {
        let native = serde_json::json!({"full_name": "{{ row.name }}", "sms_phone": "{{ row.phone | phone(vars.cc) }}", "remark": "{{ row.kind | upper }}"});
        let jinja = serde_json::json!({"full_name": "{{ row.name ~ '' }}", "sms_phone": "{{ (row.phone | phone(vars.cc)) ~ '' }}", "remark": "{{ row.kind | upper | string }}"});
        let mixed = serde_json::json!({"full_name": "{{ row.name }}", "sms_phone": "{{ (row.phone | phone(vars.cc)) ~ '' }}", "remark": "{{ row.kind | upper }}"});
        let a = run(&mapper(native, None), csv_records(CSV));
        assert_eq!(a, run(&mapper(jinja, None), csv_records(CSV)));
        assert_eq!(a, run(&mapper(mixed, None), csv_records(CSV)));
        assert_eq!(
            a[1],
            r#"{"full_name":"Bob","sms_phone":"14155550100","remark":"B"}"#
        );
    }

    #[test]
    fn a_value_holding_the_separator_takes_the_exact_path() {
        let m = mapper(
            serde_json::json!({"full_name": "{{ row.name ~ '' }}", "email": "{{ row.e ~ '' }}"}),
            None,
        );
        let s = m.session();
        let out = s.map(&json_record(
            1,
            serde_json::json!({"name": "A\u{1f}B", "e": "x@y"}),
        ));
        assert_eq!(
            summary(&out),
            "{\"full_name\":\"A\u{1f}B\",\"email\":\"x@y\"}".replace("\u{1f}", "\\u001f")
        );
    }

    /// `map_json` and `joined` write as they go; they must give what building the
    /// `serde_json` object (or the list of items) and printing it gave.
    #[test]
    fn map_and_list_fields_print_as_serde_json_objects_do() {
        let texts = [
            "plain",
            "",
            "  ",
            " padded ",
            "quote \" and \\ back",
            "tab\tnew\nline\u{1}",
            "中文 ✓",
            "a,b",
            "{\"json\": 1}",
        ];
        let n = texts.len();
        let entries: Vec<(String, MapSlot)> = vec![
            ("k1".into(), MapSlot::One(0)),
            ("key \"two\"".into(), MapSlot::Many(vec![1, 2, 3, 4])),
            ("empty".into(), MapSlot::One(1)),
            ("empties".into(), MapSlot::Many(vec![1, 2])),
            ("键".into(), MapSlot::Many((0..n).collect())),
            ("last".into(), MapSlot::One(5)),
        ];
        for skip in 0..=entries.len() {
            // Every prefix left out: the first entry written is never the same one.
            let entries = &entries[skip..];
            let mut text = |i: usize| Ok::<_, minijinja::Error>(texts[i].to_string());
            let mut obj = serde_json::Map::new();
            for (key, entry) in entries {
                match entry {
                    MapSlot::One(i) if !texts[*i].is_empty() => {
                        obj.insert(key.clone(), Json::from(texts[*i]));
                    }
                    MapSlot::Many(ids) => {
                        let items = list(ids, &mut text).unwrap();
                        if !items.is_empty() {
                            obj.insert(key.clone(), Json::from(items));
                        }
                    }
                    MapSlot::One(_) => {}
                }
            }
            let expected = if obj.is_empty() {
                String::new()
            } else {
                Json::Object(obj).to_string()
            };
            assert_eq!(
                map_json(entries, &mut text).unwrap(),
                expected,
                "from {skip}"
            );
        }
        let mut text = |i: usize| Ok::<_, minijinja::Error>(texts[i].to_string());
        for ids in [
            vec![],
            vec![1, 2],
            vec![0, 1, 3],
            (0..n).collect::<Vec<_>>(),
        ] {
            assert_eq!(
                joined(&ids, &mut text).unwrap(),
                list(&ids, &mut text).unwrap().join(","),
                "{ids:?}"
            );
        }
    }

    #[test]
    fn the_benchmark_gender_table_agrees_with_minijinja() {
        let native = serde_json::json!({"full_name": "{{ row.name }}", "email": "x@y", "gender": "{{ {'M': 1, 'F': 0}[row.kind] | default('') }}"});
        let jinja = serde_json::json!({"full_name": "{{ row.name }}", "email": "x@y", "gender": "{{ ({'M': 1, 'F': 0}[row.kind] | default('')) ~ '' }}"});
        let csv = "name,kind,phone\nAnn,M,1\nBob,F,2\nCid,,3\nDan,X,4\nEve, M,5\n";
        let a = run(&mapper(native, None), csv_records(csv));
        assert_eq!(a, run(&mapper(jinja, None), csv_records(csv)));
        assert_eq!(a[0], r#"{"full_name":"Ann","email":"x@y","gender":1}"#);
        assert_eq!(a[2], r#"{"full_name":"Cid","email":"x@y"}"#);
    }

    /// A row where some native form steps aside is rendered partly natively, partly by
    /// minijinja: its outcome must be minijinja's alone, slot by slot.
    #[test]
    fn a_row_rendered_partly_natively_ends_as_minijinja_alone_ends_it() {
        let mapping = serde_json::json!({
            "full_name": "{{ row.name }}",
            "birthday": "{{ row.dob | date('%d/%m/%Y') }}",
            "sms_phone": "{{ row.phone | phone(vars.cc) }}",
            "remark": "{{ row.kind ~ '!' }}",
            "tagStr": ["{{ row.kind }}", "{{ row.name | upper }}"],
            "customize_field": {"customize_1_1": "{{ row.dob | date('%d/%m/%Y') }}"},
        });
        let rows = [
            serde_json::json!({"name": "Ann", "kind": "a", "dob": "31/02/1990", "phone": "139"}),
            serde_json::json!({"name": "Bob", "kind": "b", "dob": "01/02/1990", "phone": "n/a"}),
            serde_json::json!({"name": 7, "kind": "a", "dob": "01/02/1990", "phone": 139}),
            serde_json::json!({"name": "Cid", "kind": 1, "dob": "bad", "phone": "139"}),
            serde_json::json!({"name": "Dan", "kind": "b", "dob": "01/02/1990", "phone": "139"}),
        ];
        for filter in [
            None,
            Some("row.kind != 'b'"),
            Some("{{ row.kind in ['a', 1] }}"),
        ] {
            let m = mapper(mapping.clone(), filter);
            let s = m.session();
            for (i, row) in rows.iter().enumerate() {
                let record = json_record(i as u64 + 1, row.clone());
                let Ok(data) = &record.data else {
                    unreachable!()
                };
                let ctx = minijinja::context! {
                    row => row_value(data.clone()),
                    vars => m.vars.clone(),
                    row_number => record.row,
                };
                let (run, alone) = (s.map(&record), s.map_slot_by_slot(&ctx));
                assert!(
                    same_outcome(&run, &alone),
                    "{filter:?} {row}: {run:?} vs {alone:?}"
                );
            }
        }
    }

    #[test]
    fn a_non_text_json_value_falls_back_to_minijinja() {
        let m = mapper(
            serde_json::json!({"full_name": "{{ row.name }}", "sms_phone": "{{ row.phone | digits }}"}),
            None,
        );
        let out = m.session().map(&json_record(
            1,
            serde_json::json!({"name": "Ann", "phone": 8613912345678_i64}),
        ));
        assert_eq!(
            summary(&out),
            r#"{"full_name":"Ann","sms_phone":"8613912345678"}"#
        );
    }
}
