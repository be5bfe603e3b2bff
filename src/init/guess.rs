//! The mapping `init` proposes for a sample: each column placed on the field its name
//! means ([`super::fields`]), the first column for a field winning, with the template its
//! values call for ([`super::values`]); a full name made of first and last names when no
//! column holds it; and every column left over, with an example value, for the comments.

use crate::customer::Field;

use super::sample::Sample;
use super::{fields, values};

/// One line of the mapping.
#[derive(Debug, PartialEq, Eq)]
pub struct Placed {
    pub field: Field,
    pub template: String,
    /// The columns it reads (for the comment beside it and the summary).
    pub columns: Vec<String>,
}

/// What `init` proposes.
#[derive(Debug)]
pub struct Guess {
    pub mapping: Vec<Placed>,
    /// Columns no field took, each with its first sample value.
    pub unplaced: Vec<(String, Option<String>)>,
    /// For `vars.country_code`, when a phone is mapped.
    pub country_code: Option<String>,
}

impl Guess {
    pub fn has_contact_channel(&self) -> bool {
        self.mapping
            .iter()
            .any(|p| Field::CONTACT_CHANNELS.contains(&p.field))
    }
}

pub fn guess(sample: &Sample) -> Guess {
    let mut taken: Vec<(Field, usize)> = Vec::new();
    let mut unplaced = Vec::new();
    for (i, column) in sample.columns.iter().enumerate() {
        match fields::field_of(column) {
            Some(field) if !taken.iter().any(|(f, _)| *f == field) => taken.push((field, i)),
            _ => unplaced.push((column.clone(), sample.values[i].first().cloned())),
        }
    }
    let column = |i: usize| sample.columns[i].clone();
    let mut mapping: Vec<Placed> = Vec::new();
    let of = |field: Field| taken.iter().find(|(f, _)| *f == field).map(|(_, i)| *i);
    // full_name is required: when no column holds it, first and last names make it.
    if of(Field::FullName).is_none() {
        let parts: Vec<usize> = [Field::FirstName, Field::LastName]
            .into_iter()
            .filter_map(of)
            .collect();
        if !parts.is_empty() {
            let joined: Vec<String> = parts
                .iter()
                .map(|&i| match sample.shape(i) {
                    values::Shape::Text => values::value_of(&column(i), values::Shape::Text),
                    shape => format!("({})", values::value_of(&column(i), shape)),
                })
                .collect();
            mapping.push(Placed {
                field: Field::FullName,
                template: format!("{{{{ ({}) | trim }}}}", joined.join(" ~ ' ' ~ ")),
                columns: parts.iter().map(|&i| column(i)).collect(),
            });
        }
    }
    // In the order of Field::ALL, which is the API's own order of the fields.
    for field in Field::ALL {
        let Some(i) = of(field) else { continue };
        mapping.push(Placed {
            field,
            template: values::template(field, &column(i), sample.shape(i), &sample.values[i]),
            columns: vec![column(i)],
        });
    }
    mapping.sort_by_key(|p| Field::ALL.iter().position(|f| *f == p.field));
    let phones: Vec<&String> = mapping
        .iter()
        .filter(|p| {
            matches!(
                p.field,
                Field::SmsPhone | Field::WhatsAppPhone | Field::ViberPhone
            )
        })
        .flat_map(|p| {
            let i = sample.columns.iter().position(|c| *c == p.columns[0]);
            i.map(|i| sample.values[i].iter()).into_iter().flatten()
        })
        .collect();
    let has_phone = mapping
        .iter()
        .any(|p| p.template.contains("vars.country_code"));
    Guess {
        mapping,
        unplaced,
        country_code: has_phone.then(|| values::country_code(&phones)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceKind;

    fn sample(columns: &[&str], rows: &[&[&str]]) -> Sample {
        Sample {
            kind: SourceKind::Csv,
            delimiter: Some(','),
            encoding: None,
            sheet: None,
            header_row: None,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            values: (0..columns.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].to_string())
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .collect(),
            lists: vec![false; columns.len()],
        }
    }

    #[test]
    fn first_and_last_names_make_the_full_name_and_the_rest_is_listed() {
        let s = sample(
            &["First", "Last", "Mobile", "Company", "Phone"],
            &[&["Ann", "Lee", "+44 7700 900123", "Acme", "1"]],
        );
        let g = guess(&s);
        let fields: Vec<&str> = g.mapping.iter().map(|p| p.field.name()).collect();
        assert_eq!(
            fields,
            ["full_name", "first_name", "last_name", "sms_phone"]
        );
        assert_eq!(
            g.mapping[0].template,
            "{{ (row.First ~ ' ' ~ row.Last) | trim }}"
        );
        assert_eq!(
            g.unplaced,
            [
                ("Company".to_string(), Some("Acme".to_string())),
                ("Phone".to_string(), Some("1".to_string())),
            ],
            "the second phone column is not placed"
        );
        assert_eq!(g.country_code.as_deref(), Some("44"));
        assert!(g.has_contact_channel());
    }
}
