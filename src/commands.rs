//! Each subcommand as a function from checked arguments to output and an exit code.

use std::io::Write as _;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::job::model::{JobKind, VarOverrides};
use crate::job::{self, schema};
use crate::plan;

/// Run the parsed command line; returns the process exit code.
pub fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate { jobs, vars } => validate(&jobs, &vars.into_iter().collect()),
        Command::Plan {
            job,
            limit,
            json,
            vars,
        } => plan(&job, limit, json, &vars.into_iter().collect()),
        Command::Schema => {
            print!("{}", schema::SCHEMA_TEXT);
            Ok(0)
        }
    }
}

fn validate(paths: &[std::path::PathBuf], vars: &VarOverrides) -> Result<i32> {
    let mut failed = Vec::new();
    for path in paths {
        match job::load(path, vars) {
            Ok(job) => println!(
                "{}: ok ({}, {})",
                path.display(),
                job.spec.name,
                job.spec.kind.as_str()
            ),
            Err(errors) => failed.push(*errors),
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Error::Job(failed))
    }
}

fn plan(path: &std::path::Path, limit: usize, json: bool, vars: &VarOverrides) -> Result<i32> {
    let job = job::load(path, vars).map_err(|e| Error::Job(vec![*e]))?;
    let (human, machine) = match job.spec.kind {
        JobKind::BatchCreate => {
            let p = plan::plan_batch(&job, limit)?;
            (p.render_human(&job), serde_json::to_string_pretty(&p))
        }
        JobKind::QueryExport => {
            let p = plan::plan_export(&job)?;
            (p.render_human(&job), serde_json::to_string_pretty(&p))
        }
    };
    let mut out = std::io::stdout().lock();
    let text = if json {
        machine.map_err(|e| Error::Usage(e.to_string()))? + "\n"
    } else {
        human
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    Ok(0)
}
