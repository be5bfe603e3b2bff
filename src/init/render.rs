//! The job file `init` writes: the schema line, a job on the embedded simulator (so `plan`
//! and `run` work at once), the source as it was sampled, the guessed mapping, and the
//! columns left over as comments. Strings are written as JSON strings, which YAML reads as
//! the same double-quoted text, so no column name or template can break the file.

use std::fmt::Write as _;

use crate::customer::Field;
use crate::source::SourceKind;

use super::guess::Guess;
use super::sample::Sample;

/// What the text needs besides the guess.
pub struct Context<'a> {
    /// The `$schema` path for editors, relative to the job file.
    pub schema: &'a str,
    /// Whether the schema is `schema` only after `cdpjob schema` writes it.
    pub schema_missing: bool,
    /// How the command was given, for the header comment.
    pub command: &'a str,
    pub name: &'a str,
    /// `source.path`, relative to the job file.
    pub source_path: &'a str,
}

pub fn render(ctx: &Context<'_>, sample: &Sample, guess: &Guess) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# yaml-language-server: $schema={}", ctx.schema);
    if ctx.schema_missing {
        let _ = writeln!(
            o,
            "# (`cdpjob schema > {}` writes the schema beside this file, for editors)",
            ctx.schema
        );
    }
    let _ = writeln!(o, "#");
    let _ = writeln!(
        o,
        "# Written by `{}`: check the mapping, then `cdpjob plan` this file.",
        ctx.command
    );
    let _ = writeln!(o, "version: 1");
    let _ = writeln!(o, "name: {}", ctx.name);
    let _ = writeln!(o, "kind: batch_create");
    let _ = writeln!(o, "api:");
    let _ = writeln!(
        o,
        "  base_url: sim          # the embedded simulator; the API's https:// address for real"
    );
    let _ = writeln!(
        o,
        "  tenant_id: 123         # the simulator's tenant and app key: put yours"
    );
    let _ = writeln!(o, "  app_key: \"46oKF=os\"");
    if let Some(cc) = &guess.country_code {
        let _ = writeln!(o, "vars:");
        let _ = writeln!(
            o,
            "  country_code: {}     # put in front of phone numbers written without one",
            quoted(cc)
        );
    }
    let _ = writeln!(o, "source:");
    let _ = writeln!(o, "  type: {}", sample.kind.as_str());
    let _ = writeln!(o, "  path: {}", quoted(ctx.source_path));
    if let Some(d) = sample.delimiter.filter(|d| *d != ',') {
        let _ = writeln!(o, "  delimiter: {}", quoted(&d.to_string()));
    }
    if let Some(encoding) = sample.encoding {
        let _ = writeln!(o, "  encoding: {encoding}");
    }
    if sample.kind == SourceKind::Xlsx
        && let Some(sheet) = &sample.sheet
    {
        let _ = writeln!(o, "  sheet: {}", quoted(sheet));
    }
    if let Some(n) = sample.header_row {
        let _ = writeln!(
            o,
            "  header_row: {n}     # the row that names the columns; the rows above it are not read"
        );
    }
    let _ = writeln!(o, "mapping:");
    if !guess.mapping.iter().any(|p| p.field == Field::FullName) {
        let first = match sample.columns.first() {
            Some(c) => super::values::value_of(c, sample.shape(0)),
            None => "row.name".to_string(),
        };
        let _ = writeln!(
            o,
            "  # No column looks like a name: full_name is required, pick the column that holds it."
        );
        let _ = writeln!(
            o,
            "  full_name: {}",
            quoted(&format!("{{{{ {first} | trim }}}}"))
        );
    }
    for placed in &guess.mapping {
        let _ = writeln!(o, "  {}: {}", placed.field.name(), quoted(&placed.template));
    }
    if !guess.has_contact_channel() {
        let _ = writeln!(
            o,
            "  # No column looks like a phone, WhatsApp number or email: a customer needs one."
        );
    }
    if !guess.unplaced.is_empty() {
        let _ = writeln!(
            o,
            "# Columns not placed: map them by hand (a custom field goes in customize_field), or leave them out."
        );
        for (column, example) in &guess.unplaced {
            match example {
                Some(e) => {
                    let _ = writeln!(o, "#   {}  e.g. {}", quoted(column), quoted(&shorten(e)));
                }
                None => {
                    let _ = writeln!(o, "#   {}  (empty in the rows read)", quoted(column));
                }
            }
        }
    }
    o
}

/// A string as YAML reads it back unchanged: a JSON string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// An example value short enough for a comment line.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX).collect();
    t.push('…');
    t
}
