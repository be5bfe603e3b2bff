//! One record mapped in the open, for `cdpjob explain`: every template rendered both ways —
//! by the native fast path a run takes where a template is simple enough, and by minijinja —
//! and the row's outcome both ways (as a run computes it, and from minijinja alone, slot by
//! slot). The two paths are meant to be indistinguishable; this is where a person can see
//! that they are, for one row, and where a difference is caught as the bug it is.

use super::{FilterMode, MapSlot, Mapped, Mapper, MapperSession, Outcome, list, map_json};
use crate::customer::Field;
use crate::source::Record;
use crate::template::{describe_error, row_value};

/// What the native fast path made of a template for this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Native<T> {
    /// The template is not simple enough to have a native form: minijinja alone renders it.
    NoForm,
    /// It has one, but this row needs minijinja (a value that is not text, or an error,
    /// whose message minijinja gives).
    SteppedAside,
    Rendered(T),
}

/// The filter, both ways.
#[derive(Debug, Clone)]
pub struct FilterTrace {
    pub template: String,
    /// Whether the native form keeps the row.
    pub native: Native<bool>,
    /// Whether minijinja keeps it, or why it failed.
    pub minijinja: Result<bool, String>,
}

impl FilterTrace {
    pub fn agrees(&self) -> bool {
        match &self.native {
            Native::Rendered(keep) => self.minijinja.as_ref() == Ok(keep),
            Native::NoForm | Native::SteppedAside => true,
        }
    }
}

/// One template of the mapping (a field, an item of a list, a key of a map), both ways.
#[derive(Debug, Clone)]
pub struct SlotTrace {
    /// Where it is: `email`, `tagStr[1]`, `customize_field.customize_1_14`.
    pub label: String,
    pub field: Field,
    pub template: String,
    pub native: Native<String>,
    pub minijinja: Result<String, String>,
}

impl SlotTrace {
    pub fn agrees(&self) -> bool {
        match &self.native {
            Native::Rendered(text) => self.minijinja.as_ref() == Ok(text),
            Native::NoForm | Native::SteppedAside => true,
        }
    }
}

/// A mapped field's value as the customer gets it (a list joined, a map as JSON text), from
/// minijinja's renderings, or the first error among its templates.
#[derive(Debug, Clone)]
pub struct FieldTrace {
    pub field: Field,
    pub value: Result<String, String>,
}

/// One record through the mapping, in the open.
#[derive(Debug, Clone)]
pub struct MappingTrace {
    pub filter: Option<FilterTrace>,
    pub slots: Vec<SlotTrace>,
    pub fields: Vec<FieldTrace>,
    /// The outcome as a run computes it: native forms first, then the combined template,
    /// and slot by slot when that fails.
    pub run: Outcome,
    /// The outcome from minijinja alone, slot by slot.
    pub minijinja: Outcome,
}

impl MappingTrace {
    /// Whether the two paths agree on every template, the filter and the outcome.
    pub fn agrees(&self) -> bool {
        self.filter.as_ref().is_none_or(FilterTrace::agrees)
            && self.slots.iter().all(SlotTrace::agrees)
            && same_outcome(&self.run, &self.minijinja)
    }
}

/// Whether two outcomes of one row are the same.
pub fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Valid(x), Outcome::Valid(y)) => x == y,
        (Outcome::Rejected(x), Outcome::Rejected(y)) => x == y,
        (Outcome::Skipped, Outcome::Skipped) => true,
        _ => false,
    }
}

impl Mapper {
    /// Every slot's place in the mapping, by slot index.
    fn labels(&self) -> Vec<(String, Field)> {
        let mut labels = vec![(String::new(), Field::FullName); self.slots.len()];
        let mut put = |i: usize, label: String, field: Field| labels[i] = (label, field);
        for mapped in &self.fields {
            match mapped {
                Mapped::Scalar(f, i) => put(*i, f.name().to_string(), *f),
                Mapped::List(f, ids) => {
                    for (n, i) in ids.iter().enumerate() {
                        put(*i, format!("{}[{n}]", f.name()), *f);
                    }
                }
                Mapped::Map(f, entries) => {
                    for (key, slot) in entries {
                        match slot {
                            MapSlot::One(i) => put(*i, format!("{}.{key}", f.name()), *f),
                            MapSlot::Many(ids) => {
                                for (n, i) in ids.iter().enumerate() {
                                    put(*i, format!("{}.{key}[{n}]", f.name()), *f);
                                }
                            }
                        }
                    }
                }
            }
        }
        labels
    }
}

impl MapperSession<'_> {
    /// `record` mapped both ways; `None` for a record the source could not read (there is
    /// nothing to render).
    pub fn trace(&self, record: &Record) -> Option<MappingTrace> {
        let data = record.data.as_ref().ok()?;
        let m = self.mapper;
        let ctx = minijinja::context! {
            row => row_value(data.clone()),
            vars => m.vars.clone(),
            row_number => record.row,
        };
        let filter = self
            .filter
            .as_ref()
            .zip(m.filter.as_ref())
            .map(|(t, mode)| {
                let minijinja = t
                    .render(&ctx)
                    .map(|out| keeps(mode, &out))
                    .map_err(|e| format!("the filter failed: {}", describe_error(&e)));
                let native = match &m.native_filter {
                    None => Native::NoForm,
                    Some(cond) => match cond.eval(data, record.row) {
                        Some(keep) => Native::Rendered(keep),
                        None => Native::SteppedAside,
                    },
                };
                FilterTrace {
                    // An expression is compiled inside an `if`: show it as the job wrote it.
                    template: match mode {
                        FilterMode::Expression(expr) => expr.clone(),
                        FilterMode::Rendered => t.source().to_string(),
                    },
                    native,
                    minijinja,
                }
            });
        let rendered: Vec<Result<String, minijinja::Error>> =
            self.slots.iter().map(|t| t.render(&ctx)).collect();
        let mut slots: Vec<SlotTrace> = m
            .labels()
            .into_iter()
            .enumerate()
            .map(|(i, (label, field))| SlotTrace {
                label,
                field,
                template: m.slots[i].1.clone(),
                native: match &m.direct[i] {
                    None => Native::NoForm,
                    Some(d) => d
                        .eval(data, record.row)
                        .map_or(Native::SteppedAside, Native::Rendered),
                },
                minijinja: rendered[i]
                    .as_ref()
                    .map(String::clone)
                    .map_err(describe_error),
            })
            .collect();
        // A test of the check itself: the native path made to differ on purpose.
        if crate::failpoint::armed("explain_native_differs")
            && let Some(Native::Rendered(text)) = slots
                .iter_mut()
                .map(|s| &mut s.native)
                .find(|n| matches!(n, Native::Rendered(_)))
        {
            text.push('!');
        }
        let described: Vec<Result<String, String>> = rendered
            .iter()
            .map(|r| match r {
                Ok(text) => Ok(text.clone()),
                Err(e) => Err(describe_error(e)),
            })
            .collect();
        let fields = self.field_values(&described);
        Some(MappingTrace {
            filter,
            slots,
            fields,
            run: self.map(record),
            minijinja: self.map_slot_by_slot(&ctx),
        })
    }

    /// Each mapped field's value, assembled from the slots' renderings as a run assembles it.
    fn field_values(&self, rendered: &[Result<String, String>]) -> Vec<FieldTrace> {
        // A described error passes through `describe_error` unchanged as an operation's.
        let mut text = |i: usize| {
            rendered[i].clone().map_err(|message| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message)
            })
        };
        self.mapper
            .fields
            .iter()
            .map(|mapped| {
                let (field, value) = match mapped {
                    Mapped::Scalar(f, i) => (*f, text(*i)),
                    Mapped::List(f, ids) => (*f, list(ids, &mut text).map(|v| v.join(","))),
                    Mapped::Map(f, entries) => (*f, map_json(entries, &mut text)),
                };
                FieldTrace {
                    field,
                    value: value.map_err(|e| describe_error(&e)),
                }
            })
            .collect()
    }
}

/// Whether the filter's rendered output keeps the row (as `map` decides it).
fn keeps(mode: &FilterMode, out: &str) -> bool {
    match mode {
        FilterMode::Expression(_) => out == "1",
        FilterMode::Rendered => !matches!(
            out.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "0" | "no" | "none"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RowData;

    fn mapper(mapping: serde_json::Value, filter: Option<&str>) -> Mapper {
        let vars = serde_json::json!({"cc": "86"});
        Mapper::new(
            mapping.as_object().unwrap(),
            filter,
            vars.as_object().unwrap(),
        )
        .unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn record(v: serde_json::Value) -> Record {
        Record {
            row: 3,
            line: 4,
            data: Ok(RowData::Json(v.as_object().unwrap().clone())),
        }
    }

    #[test]
    fn native_and_minijinja_slots_are_shown_side_by_side() {
        let m = mapper(
            serde_json::json!({
                "full_name": "{{ row.first ~ ' ' ~ row.last }}",
                "sms_phone": "{{ row.phone | phone(vars.cc) }}",
                "tagStr": ["{{ row.kind }}", "imported"],
                "customize_field": {"customize_1_14": "{{ row.kind | upper }}"}
            }),
            Some("row.kind != 'b'"),
        );
        let t = m
            .session()
            .trace(&record(serde_json::json!({"first": "Ann", "last": "Lee", "phone": "139 1234 5678", "kind": "a"})))
            .unwrap();
        let labels: Vec<&str> = t.slots.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "full_name",
                "sms_phone",
                "tagStr[0]",
                "tagStr[1]",
                "customize_field.customize_1_14"
            ]
        );
        assert_eq!(t.slots[0].native, Native::NoForm);
        assert_eq!(
            t.slots[1].native,
            Native::Rendered("8613912345678".to_string())
        );
        assert_eq!(t.slots[1].minijinja.as_deref(), Ok("8613912345678"));
        let filter = t.filter.as_ref().unwrap();
        assert_eq!(
            (&filter.native, &filter.minijinja),
            (&Native::Rendered(true), &Ok(true))
        );
        let values: Vec<String> = t.fields.iter().map(|f| f.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            [
                "Ann Lee",
                "8613912345678",
                "a,imported",
                r#"{"customize_1_14":"A"}"#
            ]
        );
        assert!(t.agrees());
        assert!(matches!(t.run, Outcome::Valid(_)));
    }

    #[test]
    fn a_render_error_steps_the_native_path_aside() {
        let m = mapper(
            serde_json::json!({"full_name": "{{ row.first }}", "sms_phone": "{{ row.phone | phone(vars.cc) }}"}),
            None,
        );
        let t = m
            .session()
            .trace(&record(serde_json::json!({"first": "Ann", "phone": "n/a"})))
            .unwrap();
        assert_eq!(t.slots[1].native, Native::SteppedAside);
        assert!(t.slots[1].minijinja.as_ref().unwrap_err().contains("n/a"));
        assert!(t.agrees());
        assert!(matches!(t.run, Outcome::Rejected(_)));
    }
}
