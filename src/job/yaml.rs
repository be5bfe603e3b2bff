//! YAML text → a JSON value plus the position of every node.
//!
//! The schema validator and serde both work on `serde_json::Value`; the user needs
//! `file:line:col`. We parse with saphyr's `MarkedYaml` (which keeps a span per node and
//! rejects duplicate keys), convert to JSON once, and remember where each JSON pointer came
//! from so any later error can be pointed back at the text.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diagnostic::{Diagnostic, Pos};
use crate::pointer;

/// Where a node sits in the file: the value itself and, for a mapping entry, its key.
#[derive(Debug, Clone, Copy)]
pub struct NodePos {
    pub key: Option<Pos>,
    pub value: Pos,
}

/// JSON pointer (RFC 6901, as jsonschema reports instance paths) → position.
#[derive(Debug, Default)]
pub struct PositionIndex {
    nodes: HashMap<String, NodePos>,
}

impl PositionIndex {
    pub fn get(&self, pointer: &str) -> Option<NodePos> {
        self.nodes.get(pointer).copied()
    }

    /// The value's position, or the nearest ancestor's when the pointer names something
    /// absent (a missing key is reported where its parent is).
    pub fn value_or_ancestor(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return n.key.unwrap_or(n.value);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos::START,
            }
        }
    }

    /// A key's position (for "unknown key" errors), falling back to its value.
    pub fn key_of(&self, pointer: &str) -> Pos {
        match self.nodes.get(pointer) {
            Some(n) => n.key.unwrap_or(n.value),
            None => self.value_or_ancestor(pointer),
        }
    }

    /// The value's own position (for errors about a value, e.g. a template).
    pub fn value_of(&self, pointer: &str) -> Pos {
        match self.nodes.get(pointer) {
            Some(n) => n.value,
            None => self.value_or_ancestor(pointer),
        }
    }
}

/// Parse `text` as a single YAML document.
pub fn parse(text: &str) -> Result<(Value, PositionIndex), Vec<Diagnostic>> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        vec![Diagnostic::new(
            Pos::from_marker(m.line(), m.col()),
            format!("this is not valid YAML: {}", e.info()),
        )]
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(vec![Diagnostic::new(
            Pos::START,
            "the job file is empty: it needs at least version, name, kind and api".to_string(),
        )]);
    };
    if let Some(extra) = docs.next() {
        return Err(vec![Diagnostic::new(
            pos_of(&extra),
            "a job file holds one YAML document; remove the `---` and what follows".to_string(),
        )]);
    }
    let mut index = PositionIndex::default();
    let mut errors = Vec::new();
    let value = convert(&doc, String::new(), None, &mut index, &mut errors);
    if errors.is_empty() {
        Ok((value, index))
    } else {
        Err(errors)
    }
}

fn pos_of(node: &MarkedYaml<'_>) -> Pos {
    let m = node.span.start;
    Pos::from_marker(m.line(), m.col())
}

fn convert(
    node: &MarkedYaml<'_>,
    pointer: String,
    key: Option<Pos>,
    index: &mut PositionIndex,
    errors: &mut Vec<Diagnostic>,
) -> Value {
    let value_pos = pos_of(node);
    index.nodes.insert(
        pointer.clone(),
        NodePos {
            key,
            value: value_pos,
        },
    );
    match &node.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(text, _, _) => Value::String(text.to_string()),
        YamlData::Tagged(_, inner) => convert(inner, pointer, key, index, errors),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, format!("{pointer}/{i}"), None, index, errors))
                .collect(),
        ),
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key_name = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(other) => match scalar(other) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => {
                        errors.push(Diagnostic::new(
                            pos_of(k),
                            "a key must be a plain word, not a list or a mapping".to_string(),
                        ));
                        continue;
                    }
                };
                let child = format!("{pointer}/{}", pointer::segment(&key_name));
                let v = convert(v, child, Some(pos_of(k)), index, errors);
                out.insert(key_name, v);
            }
            Value::Object(out)
        }
        YamlData::Alias(_) => {
            errors.push(Diagnostic::new(
                value_pos,
                "YAML aliases (*name) are not supported in job files: write the value out"
                    .to_string(),
            ));
            Value::Null
        }
        YamlData::BadValue => {
            errors.push(Diagnostic::new(
                value_pos,
                "this YAML value could not be read".to_string(),
            ));
            Value::Null
        }
    }
}

fn scalar(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let (v, idx) = parse("a: 1\nb:\n  c: \"x\"\n  d: [1, 2]\n").unwrap();
        assert_eq!(v["b"]["c"], "x");
        let c = idx.get("/b/c").unwrap();
        assert_eq!((c.key.unwrap().line, c.key.unwrap().col), (3, 3));
        assert_eq!((c.value.line, c.value.col), (3, 6));
        let d1 = idx.get("/b/d/1").unwrap();
        assert_eq!((d1.value.line, d1.value.col), (4, 10));
    }

    #[test]
    fn duplicate_keys_are_an_error_with_a_position() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err[0].pos.line, 2);
        assert!(err[0].message.contains("duplicate"), "{}", err[0].message);
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let (v, _) = parse("a: \"86\"\nb: 86\n").unwrap();
        assert_eq!(v["a"], Value::String("86".into()));
        assert_eq!(v["b"], Value::from(86));
    }
}
