//! The customer record as the batch_create API receives it, and the vendor's rules for it
//! (CDP-API §4). A record that breaks a rule is rejected locally, before anything is sent,
//! with the field and the rule it broke.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A field of the batch_create customer object, in the API's documented order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    FullName,
    FirstName,
    LastName,
    SmsPhone,
    WhatsAppPhone,
    ViberPhone,
    Messenger,
    Instagram,
    Zalo,
    Line,
    Country,
    Email,
    Address,
    Birthday,
    TagStr,
    Remark,
    TimeZone,
    Gender,
    CustomizeField,
    BelongSeatUser,
    Weight,
}

/// What a field's value must satisfy (a field has one constraint; breaking it is reported
/// as one of the `Rule`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Constraint {
    Text { max: usize },
    Digits { max: usize },
    Date,
    Integer { min: i64, max: i64 },
    JsonObject,
    Free,
}

/// The rule a rejected row broke. Its snake_case name is a contract: it is the `rule` of
/// every error in rejected.jsonl and in `plan --json`, and what `plan` groups rejections by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `full_name` rendered empty.
    Required,
    /// Every contact channel rendered empty.
    ContactChannel,
    /// A key that is not a customer field (a customer object as JSON, on the simulator's side).
    UnknownField,
    /// A JSON value of the wrong type (a customer object as JSON).
    Type,
    /// Longer than the field's limit, in characters (digits for phone-like fields).
    MaxLength,
    /// A phone-like field holding something else than digits.
    DigitsOnly,
    /// `birthday` that is not a real `yyyy-MM-dd` date.
    Date,
    /// An integer field outside its bounds.
    Range,
    /// An integer field that does not parse as one.
    Integer,
    /// `customize_field` that is not the text of a JSON object.
    JsonObject,
    /// The source could not read the record (invalid UTF-8, wrong field count, bad JSON).
    Unreadable,
    /// A template or the filter failed to render.
    Template,
    /// With `sync: changed`, a match key an earlier row of the same source had (SPEC §12 R7).
    DuplicateKey,
}

impl Rule {
    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::ContactChannel => "contact_channel",
            Rule::UnknownField => "unknown_field",
            Rule::Type => "type",
            Rule::MaxLength => "max_length",
            Rule::DigitsOnly => "digits_only",
            Rule::Date => "date",
            Rule::Range => "range",
            Rule::Integer => "integer",
            Rule::JsonObject => "json_object",
            Rule::Unreadable => "unreadable",
            Rule::Template => "template",
            Rule::DuplicateKey => "duplicate_key",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Field {
    pub const ALL: [Field; 21] = [
        Field::FullName,
        Field::FirstName,
        Field::LastName,
        Field::SmsPhone,
        Field::WhatsAppPhone,
        Field::ViberPhone,
        Field::Messenger,
        Field::Instagram,
        Field::Zalo,
        Field::Line,
        Field::Country,
        Field::Email,
        Field::Address,
        Field::Birthday,
        Field::TagStr,
        Field::Remark,
        Field::TimeZone,
        Field::Gender,
        Field::CustomizeField,
        Field::BelongSeatUser,
        Field::Weight,
    ];

    /// The fields the server matches an incoming record to an existing customer by, in
    /// the order it tries them (SPEC §6): a customer's match key is the first present.
    pub const MATCH_KEYS: [Field; 3] = [Field::WhatsAppPhone, Field::SmsPhone, Field::Email];

    /// The channels of which at least one must be present.
    pub const CONTACT_CHANNELS: [Field; 8] = [
        Field::SmsPhone,
        Field::WhatsAppPhone,
        Field::Email,
        Field::ViberPhone,
        Field::Messenger,
        Field::Instagram,
        Field::Line,
        Field::Zalo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::FullName => "full_name",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::SmsPhone => "sms_phone",
            Field::WhatsAppPhone => "whats_app_phone",
            Field::ViberPhone => "viber_phone",
            Field::Messenger => "messenger",
            Field::Instagram => "instagram",
            Field::Zalo => "zalo",
            Field::Line => "line",
            Field::Country => "country",
            Field::Email => "email",
            Field::Address => "address",
            Field::Birthday => "birthday",
            Field::TagStr => "tagStr",
            Field::Remark => "remark",
            Field::TimeZone => "time_zone",
            Field::Gender => "gender",
            Field::CustomizeField => "customize_field",
            Field::BelongSeatUser => "belong_seat_user",
            Field::Weight => "weight",
        }
    }

    /// The field of an API name. A `match`, not a search of [`Field::ALL`]: the simulator
    /// looks up every key of every record it is sent, and comparing each key with the
    /// names one by one was a fortieth of its work.
    pub fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "full_name" => Field::FullName,
            "first_name" => Field::FirstName,
            "last_name" => Field::LastName,
            "sms_phone" => Field::SmsPhone,
            "whats_app_phone" => Field::WhatsAppPhone,
            "viber_phone" => Field::ViberPhone,
            "messenger" => Field::Messenger,
            "instagram" => Field::Instagram,
            "zalo" => Field::Zalo,
            "line" => Field::Line,
            "country" => Field::Country,
            "email" => Field::Email,
            "address" => Field::Address,
            "birthday" => Field::Birthday,
            "tagStr" => Field::TagStr,
            "remark" => Field::Remark,
            "time_zone" => Field::TimeZone,
            "gender" => Field::Gender,
            "customize_field" => Field::CustomizeField,
            "belong_seat_user" => Field::BelongSeatUser,
            "weight" => Field::Weight,
            _ => return None,
        })
    }

    fn constraint(self) -> Constraint {
        match self {
            Field::FullName => Constraint::Text { max: 255 },
            Field::FirstName | Field::LastName | Field::BelongSeatUser => {
                Constraint::Text { max: 128 }
            }
            Field::SmsPhone | Field::WhatsAppPhone | Field::ViberPhone => {
                Constraint::Digits { max: 30 }
            }
            Field::Messenger | Field::Instagram | Field::Zalo => Constraint::Digits { max: 32 },
            Field::Line | Field::Country | Field::Email => Constraint::Text { max: 50 },
            Field::Address => Constraint::Text { max: 100 },
            Field::Remark => Constraint::Text { max: 2000 },
            Field::Birthday => Constraint::Date,
            Field::Gender => Constraint::Integer { min: 0, max: 1 },
            Field::Weight => Constraint::Integer { min: 1, max: 5 },
            Field::CustomizeField => Constraint::JsonObject,
            Field::TagStr | Field::TimeZone => Constraint::Free,
        }
    }
}

impl Field {
    /// The rule a present value of this field must satisfy, in words (`cdpjob explain`
    /// shows it beside the verdict of [`check_value`]).
    pub fn rule_text(self) -> String {
        match self.constraint() {
            Constraint::Text { max } => format!("text of at most {max} characters"),
            Constraint::Digits { max } => format!("digits only, at most {max}"),
            Constraint::Date => "a real date, yyyy-MM-dd".to_string(),
            Constraint::Integer { min, max } => format!("an integer from {min} to {max}"),
            Constraint::JsonObject => "the text of a JSON object".to_string(),
            Constraint::Free => "free text".to_string(),
        }
    }
}

/// One rendered, non-empty value checked against its field's rule alone: the check
/// [`Customer::from_rendered`] makes of each field, for showing verdicts one by one.
pub fn check_value(field: Field, text: &str) -> Result<(), FieldError> {
    verdict(field, text, Origin::Rendered).map(|_| ())
}

/// Why a row did not become a valid customer: the field, the rule (for grouping and
/// machine use) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub rule: Rule,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: Rule, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    Int(i64),
}

/// A customer that satisfies every rule, ready to be serialized into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Present fields, in `Field` order.
    values: Vec<(Field, FieldValue)>,
}

impl Customer {
    /// Check rendered values against every rule. Empty values mean "absent".
    pub fn from_rendered(
        rendered: impl IntoIterator<Item = (Field, String)>,
    ) -> Result<Customer, Vec<FieldError>> {
        Customer::from_values(
            rendered
                .into_iter()
                .map(|(field, text)| (field, text, Origin::Rendered)),
        )
    }

    /// [`Customer::from_rendered`], told where each value came from: a JSON object the
    /// mapping wrote itself is not parsed again.
    pub fn from_values(
        values_in: impl IntoIterator<Item = (Field, String, Origin)>,
    ) -> Result<Customer, Vec<FieldError>> {
        let values_in = values_in.into_iter();
        let mut values = Vec::with_capacity(values_in.size_hint().0);
        let mut errors = Vec::new();
        for (field, text, origin) in values_in {
            if text.is_empty() {
                continue;
            }
            match check(field, text, origin) {
                Ok(v) => values.push((field, v)),
                Err(e) => errors.push(e),
            }
        }
        values.sort_by_key(|(f, _)| *f);
        whole_customer_rules(|f| values.iter().any(|(g, _)| *g == f), &mut errors);
        if errors.is_empty() {
            Ok(Customer { values })
        } else {
            Err(errors)
        }
    }

    /// A customer object as the API receives it (the simulator's side of the wire): JSON
    /// types checked, then the same rules.
    pub fn from_json(
        obj: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Customer, Vec<FieldError>> {
        let mut errors = Vec::new();
        let rendered = typed(
            obj.iter().map(|(k, v)| (k.as_str(), JsonField::from(v))),
            &mut errors,
        );
        let mut buf = itoa::Buffer::new();
        let rendered = rendered
            .iter()
            .map(|(f, t)| (*f, t.text(&mut buf).to_string()));
        match Customer::from_rendered(rendered) {
            Ok(c) if errors.is_empty() => Ok(c),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// [`Customer::from_json`]'s verdict on a customer object, the same errors in the same
    /// order, without building the customer (the simulator checks every record it is sent
    /// and keeps only its text).
    pub fn check_json<'a>(
        obj: impl IntoIterator<Item = (&'a str, JsonField<'a>)>,
    ) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let rendered = typed(obj, &mut errors);
        let mut rule_errors = Vec::new();
        let mut present = Vec::with_capacity(rendered.len());
        let mut buf = itoa::Buffer::new();
        for (field, value) in &rendered {
            let text = value.text(&mut buf);
            if text.is_empty() {
                continue;
            }
            match verdict(*field, text, Origin::Rendered) {
                Ok(_) => present.push(*field),
                Err(e) => rule_errors.push(e),
            }
        }
        whole_customer_rules(|f| present.contains(&f), &mut rule_errors);
        errors.extend(rule_errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Every present field, in API order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &FieldValue)> {
        self.values.iter().map(|(f, v)| (*f, v))
    }

    pub fn get(&self, field: Field) -> Option<&FieldValue> {
        self.values
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    pub fn text(&self, field: Field) -> Option<&str> {
        match self.get(field)? {
            FieldValue::Text(s) => Some(s),
            FieldValue::Int(_) => None,
        }
    }
}

impl Serialize for Customer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (field, value) in &self.values {
            match value {
                FieldValue::Text(s) => map.serialize_entry(field.name(), s)?,
                FieldValue::Int(i) => map.serialize_entry(field.name(), i)?,
            }
        }
        map.end()
    }
}

/// Where a value's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A template's output (or the API's): every rule is checked.
    Rendered,
    /// The text of a JSON object that the mapping wrote itself, string by string
    /// (`customize_field`'s map form): the JSON object check would only parse it again to
    /// find it valid, so it is skipped; every other rule still applies.
    WrittenJsonObject,
}

/// The rules of a whole customer, beside those of each field: a full name, and a contact
/// channel (each unless a value of it already broke its own rule, in `errors`).
fn whole_customer_rules(has: impl Fn(Field) -> bool, errors: &mut Vec<FieldError>) {
    let broke = |errors: &[FieldError], f: Field| errors.iter().any(|e| e.field == f.name());
    if !has(Field::FullName) && !broke(errors, Field::FullName) {
        errors.push(FieldError::new(
            "full_name",
            Rule::Required,
            "full_name is required and rendered empty",
        ));
    }
    let any_channel_broken = Field::CONTACT_CHANNELS.iter().any(|f| broke(errors, *f));
    if !any_channel_broken && !Field::CONTACT_CHANNELS.iter().any(|f| has(*f)) {
        errors.push(FieldError::new(
            "contact",
            Rule::ContactChannel,
            "no contact channel: sms_phone, whats_app_phone, email, viber_phone, messenger, instagram, line and zalo are all empty",
        ));
    }
}

/// A value of a customer object, as far as the rules look at its JSON type.
#[derive(Debug, Clone, Copy)]
pub enum JsonField<'a> {
    Null,
    Text(&'a str),
    /// A JSON integer that fits an i64.
    Integer(i64),
    /// Any other number, a boolean, an array or an object.
    Other,
}

impl<'a> From<&'a serde_json::Value> for JsonField<'a> {
    fn from(v: &'a serde_json::Value) -> JsonField<'a> {
        use serde_json::Value;
        match v {
            Value::Null => JsonField::Null,
            Value::String(s) => JsonField::Text(s),
            Value::Number(n) => n.as_i64().map_or(JsonField::Other, JsonField::Integer),
            _ => JsonField::Other,
        }
    }
}

/// The fields of a customer object with the JSON type their rule wants; unknown names and
/// wrong types go to `errors`, in the object's order.
fn typed<'a>(
    obj: impl IntoIterator<Item = (&'a str, JsonField<'a>)>,
    errors: &mut Vec<FieldError>,
) -> Vec<(Field, Typed<'a>)> {
    let mut rendered = Vec::new();
    for (key, value) in obj {
        let Some(field) = Field::from_name(key) else {
            errors.push(FieldError::new(
                key,
                Rule::UnknownField,
                format!("{key} is not a customer field"),
            ));
            continue;
        };
        let integer = matches!(field.constraint(), Constraint::Integer { .. });
        match (value, integer) {
            (JsonField::Null, _) => {}
            (JsonField::Text(s), false) => rendered.push((field, Typed::Text(s))),
            (JsonField::Integer(n), true) => rendered.push((field, Typed::Integer(n))),
            _ => errors.push(FieldError::new(
                key,
                Rule::Type,
                format!(
                    "{key} must be {}",
                    if integer { "an integer" } else { "a string" }
                ),
            )),
        }
    }
    rendered
}

/// A value of the JSON type its field's rule wants: the rule then reads an integer's text,
/// as it reads a rendered value's.
enum Typed<'a> {
    Text(&'a str),
    Integer(i64),
}

impl Typed<'_> {
    /// The text the rule reads (`buf` holds an integer's).
    fn text<'b>(&'b self, buf: &'b mut itoa::Buffer) -> &'b str {
        match self {
            Typed::Text(s) => s,
            Typed::Integer(n) => buf.format(*n),
        }
    }
}

/// What a value that keeps to its field's rule is.
enum Checked {
    Text,
    Int(i64),
}

fn check(field: Field, text: String, origin: Origin) -> Result<FieldValue, FieldError> {
    Ok(match verdict(field, &text, origin)? {
        Checked::Text => FieldValue::Text(text),
        Checked::Int(i) => FieldValue::Int(i),
    })
}

/// One value against its field's rule.
fn verdict(field: Field, text: &str, origin: Origin) -> Result<Checked, FieldError> {
    let name = field.name();
    match field.constraint() {
        Constraint::Free => Ok(Checked::Text),
        Constraint::JsonObject if origin == Origin::WrittenJsonObject => {
            // Debug builds (the tests) still parse it: a writer that went wrong shows here.
            debug_assert!(
                json_object_text(text),
                "the mapping wrote {text:?} as a JSON object"
            );
            Ok(Checked::Text)
        }
        // No more bytes than the limit is no more characters: most values need no count.
        Constraint::Text { max } if text.len() <= max => Ok(Checked::Text),
        Constraint::Text { max } => {
            let n = text.chars().count();
            if n > max {
                Err(FieldError::new(
                    name,
                    Rule::MaxLength,
                    format!("{name} is {n} characters long; the limit is {max}"),
                ))
            } else {
                Ok(Checked::Text)
            }
        }
        Constraint::Digits { max } => {
            if let Some(bad) = text.chars().find(|c| !c.is_ascii_digit()) {
                return Err(FieldError::new(
                    name,
                    Rule::DigitsOnly,
                    format!(
                        "{name} {text:?} must hold digits only (found {bad:?}); the phone() or digits filter cleans numbers"
                    ),
                ));
            }
            let n = text.len();
            if n > max {
                Err(FieldError::new(
                    name,
                    Rule::MaxLength,
                    format!("{name} has {n} digits; the limit is {max}"),
                ))
            } else {
                Ok(Checked::Text)
            }
        }
        Constraint::Date => {
            if is_real_iso_date(text) {
                Ok(Checked::Text)
            } else {
                Err(FieldError::new(
                    name,
                    Rule::Date,
                    format!(
                        "{name} {text:?} is not a real date in yyyy-MM-dd form; date('<input format>') reformats"
                    ),
                ))
            }
        }
        Constraint::Integer { min, max } => match text.trim().parse::<i64>() {
            Ok(i) if (min..=max).contains(&i) => Ok(Checked::Int(i)),
            Ok(i) => Err(FieldError::new(
                name,
                Rule::Range,
                format!("{name} is {i}; it must be between {min} and {max}"),
            )),
            Err(_) => Err(FieldError::new(
                name,
                Rule::Integer,
                format!("{name} {text:?} is not an integer between {min} and {max}"),
            )),
        },
        Constraint::JsonObject if json_object_text(text) => Ok(Checked::Text),
        Constraint::JsonObject => Err(FieldError::new(
            name,
            Rule::JsonObject,
            format!("{name} must be the text of a JSON object"),
        )),
    }
}

fn json_object_text(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
        && text.trim_start().starts_with('{')
}

/// `yyyy-MM-dd`, exactly, naming a day that exists.
pub fn is_real_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r.clone()].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (s[0..4].parse(), s[5..7].parse(), s[8..10].parse()) else {
        return false;
    };
    jiff::civil::Date::new(y, m, d).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_found_by_its_name_and_by_nothing_else() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
        for not_a_name in [
            "",
            "Email",
            "email ",
            "tagstr",
            "customize_1_14",
            "full_nam",
        ] {
            assert_eq!(Field::from_name(not_a_name), None, "{not_a_name:?}");
        }
    }

    fn build(fields: &[(Field, &str)]) -> Result<Customer, Vec<FieldError>> {
        Customer::from_rendered(fields.iter().map(|(f, s)| (*f, s.to_string())))
    }

    fn rules(r: Result<Customer, Vec<FieldError>>) -> Vec<(String, String)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.rule.to_string()))
            .collect()
    }

    fn pair(f: &str, r: &str) -> (String, String) {
        (f.to_string(), r.to_string())
    }

    /// Every rule's wire name, written out: rejected.jsonl and `plan --json` carry these.
    const WIRE_NAMES: [(Rule, &str); 13] = [
        (Rule::Required, "required"),
        (Rule::ContactChannel, "contact_channel"),
        (Rule::UnknownField, "unknown_field"),
        (Rule::Type, "type"),
        (Rule::MaxLength, "max_length"),
        (Rule::DigitsOnly, "digits_only"),
        (Rule::Date, "date"),
        (Rule::Range, "range"),
        (Rule::Integer, "integer"),
        (Rule::JsonObject, "json_object"),
        (Rule::Unreadable, "unreadable"),
        (Rule::Template, "template"),
        (Rule::DuplicateKey, "duplicate_key"),
    ];

    #[test]
    fn every_rule_keeps_its_wire_name() {
        for (rule, name) in WIRE_NAMES {
            // A new variant stops this match compiling until it is added to WIRE_NAMES.
            match rule {
                Rule::Required
                | Rule::ContactChannel
                | Rule::UnknownField
                | Rule::Type
                | Rule::MaxLength
                | Rule::DigitsOnly
                | Rule::Date
                | Rule::Range
                | Rule::Integer
                | Rule::JsonObject
                | Rule::Unreadable
                | Rule::Template
                | Rule::DuplicateKey => {}
            }
            assert_eq!(serde_json::to_string(&rule).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<Rule>(&format!("\"{name}\"")).unwrap(),
                rule
            );
            assert_eq!(rule.as_str(), name);
            assert_eq!(rule.to_string(), name);
        }
        let e = FieldError::new("birthday", Rule::Date, "not a date");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"field":"birthday","rule":"date","message":"not a date"}"#
        );
    }

    #[test]
    fn a_minimal_customer_serializes_in_api_order() {
        let c = build(&[
            (Field::Email, "a@b.c"),
            (Field::FullName, "Ann"),
            (Field::Gender, "1"),
        ])
        .unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"full_name":"Ann","email":"a@b.c","gender":1}"#
        );
    }

    #[test]
    fn full_name_is_required() {
        assert_eq!(
            rules(build(&[(Field::Email, "a@b.c"), (Field::FullName, "")])),
            vec![pair("full_name", "required")]
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let name255 = "牛".repeat(255);
        assert!(build(&[(Field::FullName, &name255), (Field::Email, "a@b.c")]).is_ok());
        let name256 = "牛".repeat(256);
        assert_eq!(
            rules(build(&[
                (Field::FullName, &name256),
                (Field::Email, "a@b.c")
            ])),
            vec![pair("full_name", "max_length")]
        );
        let first129 = "é".repeat(129);
        assert_eq!(
            rules(build(&[
                (Field::FullName, "A"),
                (Field::FirstName, &first129),
                (Field::Email, "a@b.c")
            ])),
            vec![pair("first_name", "max_length")]
        );
    }

    #[test]
    fn every_length_limit_is_enforced_at_its_boundary() {
        let cases = [
            (Field::LastName, 128),
            (Field::Line, 50),
            (Field::Country, 50),
            (Field::Email, 50),
            (Field::Address, 100),
            (Field::Remark, 2000),
            (Field::BelongSeatUser, 128),
        ];
        for (field, max) in cases {
            let ok = "x".repeat(max);
            let long = "x".repeat(max + 1);
            assert!(
                build(&[(Field::FullName, "A"), (Field::SmsPhone, "1"), (field, &ok)]).is_ok(),
                "{field:?} at {max}"
            );
            assert_eq!(
                rules(build(&[
                    (Field::FullName, "A"),
                    (Field::SmsPhone, "1"),
                    (field, &long)
                ])),
                vec![pair(field.name(), "max_length")]
            );
        }
    }

    #[test]
    fn phone_like_fields_are_digits_only_with_limits() {
        for (field, max) in [
            (Field::SmsPhone, 30),
            (Field::WhatsAppPhone, 30),
            (Field::ViberPhone, 30),
            (Field::Messenger, 32),
            (Field::Instagram, 32),
            (Field::Zalo, 32),
        ] {
            assert!(build(&[(Field::FullName, "A"), (field, &"1".repeat(max))]).is_ok());
            assert_eq!(
                rules(build(&[
                    (Field::FullName, "A"),
                    (field, &"1".repeat(max + 1))
                ])),
                vec![pair(field.name(), "max_length")]
            );
            assert_eq!(
                rules(build(&[(Field::FullName, "A"), (field, "+8613")])),
                vec![pair(field.name(), "digits_only")]
            );
        }
    }

    #[test]
    fn birthday_must_be_a_real_date() {
        let ok = |d: &str| {
            build(&[
                (Field::FullName, "A"),
                (Field::Email, "e"),
                (Field::Birthday, d),
            ])
        };
        assert!(ok("2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "01/02/2024",
            "2024-04-31",
            "２０２４-01-01",
        ] {
            assert_eq!(rules(ok(bad)), vec![pair("birthday", "date")], "{bad}");
        }
    }

    #[test]
    fn gender_and_weight_are_bounded_integers() {
        let with =
            |f: Field, v: &str| build(&[(Field::FullName, "A"), (Field::Email, "e"), (f, v)]);
        assert!(with(Field::Gender, "0").is_ok());
        assert!(with(Field::Gender, "1").is_ok());
        assert_eq!(
            rules(with(Field::Gender, "2")),
            vec![pair("gender", "range")]
        );
        assert_eq!(
            rules(with(Field::Gender, "M")),
            vec![pair("gender", "integer")]
        );
        assert!(with(Field::Weight, "5").is_ok());
        assert_eq!(
            rules(with(Field::Weight, "0")),
            vec![pair("weight", "range")]
        );
        assert_eq!(
            rules(with(Field::Weight, "6")),
            vec![pair("weight", "range")]
        );
        assert_eq!(
            rules(with(Field::Weight, "1.5")),
            vec![pair("weight", "integer")]
        );
    }

    #[test]
    fn customize_field_must_be_a_json_object_text() {
        let with = |v: &str| {
            build(&[
                (Field::FullName, "A"),
                (Field::Email, "e"),
                (Field::CustomizeField, v),
            ])
        };
        assert!(with(r#"{"customize_1_14":"aa"}"#).is_ok());
        assert_eq!(
            rules(with("[1]")),
            vec![pair("customize_field", "json_object")]
        );
        assert_eq!(
            rules(with("{oops")),
            vec![pair("customize_field", "json_object")]
        );
    }

    #[test]
    fn checking_a_json_customer_says_what_building_it_says() {
        for text in [
            r#"{"full_name":"A","sms_phone":"1","gender":1,"weight":null}"#,
            r#"{"full_name":"A","sms_phone":1,"gender":"1","nick":"x"}"#,
            r#"{"full_name":5,"email":"a@b.c"}"#,
            r#"{"full_name":"","sms_phone":"12a","birthday":"2020-02-30","gender":7}"#,
            r#"{"full_name":"A","whats_app_phone":[1],"email":{"a":1},"gender":1.5}"#,
            r#"{"full_name":"A","customize_field":"{oops","email":"x","gender":18446744073709551615}"#,
            r#"{}"#,
        ] {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).unwrap();
            let built = Customer::from_json(&map).err();
            let checked =
                Customer::check_json(map.iter().map(|(k, v)| (k.as_str(), JsonField::from(v))))
                    .err();
            assert_eq!(checked, built, "{text}");
        }
    }

    #[test]
    fn json_customers_are_typed_and_checked() {
        let ok: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"full_name":"A","sms_phone":"1","gender":1,"weight":null}"#)
                .unwrap();
        assert!(Customer::from_json(&ok).is_ok());
        let bad: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"full_name":"A","sms_phone":1,"gender":"1","nick":"x"}"#)
                .unwrap();
        let rules: Vec<String> = Customer::from_json(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}/{}", e.field, e.rule))
            .collect();
        assert_eq!(
            rules,
            [
                "sms_phone/type",
                "gender/type",
                "nick/unknown_field",
                "contact/contact_channel"
            ]
        );
    }

    #[test]
    fn at_least_one_contact_channel() {
        assert_eq!(
            rules(build(&[(Field::FullName, "A"), (Field::Country, "CN")])),
            vec![pair("contact", "contact_channel")]
        );
        for channel in Field::CONTACT_CHANNELS {
            let value = if matches!(channel, Field::Email | Field::Line) {
                "x"
            } else {
                "1"
            };
            assert!(
                build(&[(Field::FullName, "A"), (channel, value)]).is_ok(),
                "{channel:?}"
            );
        }
    }

    #[test]
    fn a_broken_channel_is_reported_once_not_twice() {
        assert_eq!(
            rules(build(&[(Field::FullName, "A"), (Field::SmsPhone, "abc")])),
            vec![pair("sms_phone", "digits_only")]
        );
    }
}
