//! The command line: raw arguments only (clap derive). Turning them into work is `commands`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cdpjob",
    version,
    about = "Declarative, checkpointed batch jobs against the NXCloud CDP customer API",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check job files: schema, templates, source, environment names. No network.
    Validate {
        /// Job files to check; each is reported.
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Dry run: read every row, show the first customers as the API would receive them,
    /// and the counts of valid, rejected and skipped rows. No network, no credentials.
    Plan {
        job: PathBuf,
        /// How many customers to show.
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Print the job file JSON Schema (the one `validate` uses).
    Schema,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected K=V, got {s:?}"))?;
    let valid = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{k:?} is not a valid variable name (letters, digits, _)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}
