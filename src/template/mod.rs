//! The template language of job files, shared by every place that renders one: the
//! mapping of batch_create rows and the query and output path of query_export.
//!
//! One environment builder (cdpjob's filters, strict about undefined values, no HTML
//! escaping), one way to compile a job's templates collecting every problem at its JSON
//! pointer ([`TemplateSet`]), one sentence per minijinja error ([`describe_error`]), and the
//! native fast path for the simplest templates ([`direct`]). What a rendered mapping means
//! for a customer is `mapping`'s business, not this module's.

pub mod direct;
pub mod filters;
mod row_value;
mod template_set;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};

pub use self::row_value::row_value;
pub use self::template_set::{TemplateProblem, TemplateSet};

/// A fresh environment with cdpjob's filters and strict undefined handling.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Customer data is not HTML: never auto-escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // A SQL NULL (a JSON null) renders empty, not as "none" (SPEC §8); `row.x is none`
    // still tells it from an empty text.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_filter("digits", filters::digits);
    env.add_filter("phone", filters::phone);
    env.add_filter("date", filters::date);
    env.add_filter("datetime", filters::datetime);
    env.add_filter("split", filters::split);
    env
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
