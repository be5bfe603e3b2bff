//! The vendor's rules (CDP-API §4, as `customer` holds them) the way `explain` lists them:
//! each mapped field's rule and its verdict for this row, then the rules about the customer
//! as a whole (a name, a contact channel) and, with `sync: changed`, its match key.

use serde::Serialize;

use crate::customer::{self, Field, FieldError, Rule};
use crate::mapping::{FieldTrace, Outcome};

/// One rule checked, and what this row made of it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleVerdict {
    /// The field, or `contact` for the channels together.
    pub field: String,
    /// The rule, in words.
    pub rule: String,
    /// `ok`, `broken`, `absent` (rendered empty: not sent, nothing to check) or
    /// `not_checked` (an earlier problem decided it).
    pub verdict: &'static str,
    /// The rule broken, by its wire name (as rejected.jsonl gives it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broke: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RuleVerdict {
    fn new(field: &str, rule: impl Into<String>, verdict: &'static str) -> RuleVerdict {
        RuleVerdict {
            field: field.to_string(),
            rule: rule.into(),
            verdict,
            broke: None,
            message: None,
        }
    }

    fn broken(field: &str, rule: impl Into<String>, e: &FieldError) -> RuleVerdict {
        RuleVerdict {
            broke: Some(e.rule),
            message: Some(e.message.clone()),
            ..RuleVerdict::new(field, rule, "broken")
        }
    }

    fn noting(mut self, message: impl Into<String>) -> RuleVerdict {
        self.message = Some(message.into());
        self
    }
}

/// The verdicts for the fields as minijinja rendered them; `outcome` is the row's (from
/// the same renderings), `final_errors` what the row was finally rejected for (a duplicate
/// match key is decided after the mapping), `sync_key` the match key when change detection
/// is on.
pub fn verdicts(
    fields: &[FieldTrace],
    outcome: &Outcome,
    final_errors: &[FieldError],
    sync_key: Option<Option<Field>>,
) -> Vec<RuleVerdict> {
    let mut out = Vec::new();
    for f in fields {
        let name = f.field.name();
        out.push(match &f.value {
            Err(message) => RuleVerdict::broken(
                name,
                "its template renders",
                &FieldError::new(name, Rule::Template, format!("{name}: {message}")),
            ),
            Ok(text) if text.is_empty() => RuleVerdict::new(name, f.field.rule_text(), "absent")
                .noting("rendered empty: the field is not sent"),
            Ok(text) => match customer::check_value(f.field, text) {
                Ok(()) => RuleVerdict::new(name, f.field.rule_text(), "ok"),
                Err(e) => RuleVerdict::broken(name, f.field.rule_text(), &e),
            },
        });
    }
    let errors: &[FieldError] = match outcome {
        Outcome::Rejected(errors) => errors,
        _ => &[],
    };
    let broken = |rule: Rule| errors.iter().find(|e| e.rule == rule);
    let present = |field: Field| {
        fields
            .iter()
            .any(|f| f.field == field && f.value.as_ref().is_ok_and(|v| !v.is_empty()))
    };
    let required = "full_name is required";
    out.push(match broken(Rule::Required) {
        Some(e) => RuleVerdict::broken("full_name", required, e),
        None if present(Field::FullName) => RuleVerdict::new("full_name", required, "ok"),
        None => RuleVerdict::new("full_name", required, "not_checked")
            .noting("full_name did not render: that is its problem"),
    });
    let channels: Vec<&str> = Field::CONTACT_CHANNELS
        .iter()
        .filter(|f| present(**f))
        .map(|f| f.name())
        .collect();
    let contact = "at least one contact channel";
    out.push(match broken(Rule::ContactChannel) {
        Some(e) => RuleVerdict::broken("contact", contact, e),
        None if !channels.is_empty() => {
            RuleVerdict::new("contact", contact, "ok").noting(channels.join(", "))
        }
        None => RuleVerdict::new("contact", contact, "not_checked")
            .noting("a channel did not render or broke its rule"),
    });
    if let Some(key) = sync_key {
        let rule = "one row per match key (sync: changed)";
        let duplicate = final_errors.iter().find(|e| e.rule == Rule::DuplicateKey);
        out.push(match (duplicate, key) {
            (Some(e), _) => RuleVerdict::broken(&e.field, rule, e),
            (None, Some(field)) => RuleVerdict::new(field.name(), rule, "ok")
                .noting("no earlier row has this match key"),
            (None, None) => RuleVerdict::new("match key", rule, "not_checked")
                .noting("no whats_app_phone, sms_phone or email: always sent, never recorded"),
        });
    }
    out
}
