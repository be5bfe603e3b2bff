//! A source row as a template value: CSV rows are looked up by column name without copying
//! the whole record into a map; JSON rows are converted as they are.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};

use crate::source::{CsvRow, RowData};

#[derive(Debug)]
struct CsvRowObject(CsvRow);

impl Object for CsvRowObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self
            .0
            .header
            .names()
            .iter()
            .map(|n| Value::from(n.as_str()))
            .collect();
        Enumerator::Iter(Box::new(names.into_iter()))
    }
}

/// The `row` of a template context.
pub fn row_value(data: RowData) -> Value {
    match data {
        RowData::Csv(row) => Value::from_object(CsvRowObject(row)),
        RowData::Json(map) => Value::from(minijinja::value::Serde(&map)),
    }
}
