//! `cdpjob init --from FILE [--out JOB.yaml]` (SPEC §8): a first job for a data file, so a
//! user starts from a file that validates and maps the obvious fields instead of from a
//! blank page. It samples the file ([`sample`]), guesses a mapping from the header and the
//! values ([`guess`]), writes the job ([`render`]) — never over an existing file unless
//! `--force` — and says what it placed and what it left as comments.

mod fields;
mod guess;
mod render;
mod sample;
mod values;

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::job::paths;

/// What the command line asks for.
#[derive(Debug)]
pub struct InitRequest<'a> {
    pub from: &'a Path,
    /// `None`: `<file stem>.yaml` in the working directory; `-`: standard output.
    pub out: Option<&'a Path>,
    pub force: bool,
}

/// Write the job and report what it holds.
pub fn init(req: &InitRequest<'_>) -> Result<()> {
    let from = req.from;
    let stem = from
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = match req.out {
        Some(out) => out.to_path_buf(),
        None => PathBuf::from(format!("{}.yaml", job_name(&stem))),
    };
    let to_stdout = out == Path::new("-");
    let sample = sample::read(from)?;
    if !to_stdout && out.exists() && !req.force {
        return Err(Error::Usage(format!(
            "{} exists: init never overwrites a file; pass --force to replace it",
            out.display()
        )));
    }
    let guess = guess::guess(&sample);
    let out_dir = match out.parent() {
        Some(p) if !to_stdout && !p.as_os_str().is_empty() => paths::absolute(p),
        _ => paths::absolute(Path::new(".")),
    };
    let (schema, schema_missing) = schema_path(&out_dir);
    let command = format!("cdpjob init --from {}", from.display());
    let source_path = relative(&out_dir, &paths::absolute(from));
    let text = render::render(
        &render::Context {
            schema: &schema,
            schema_missing,
            command: &command,
            name: &job_name(&stem),
            source_path: &source_path.to_string_lossy(),
        },
        &sample,
        &guess,
    );
    if to_stdout {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    } else {
        write_job(&out, &text, req.force)?;
    }
    let report = report(&out, &sample, &guess);
    if to_stdout {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `[a-z0-9_-]+` from the file's name (`Leads 2024.csv` → `leads-2024`); `import` when
/// nothing is left (a Chinese file name).
fn job_name(stem: &str) -> String {
    let mut name = String::new();
    for c in stem.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name.trim_matches('-').chars().take(64).collect();
    if name.is_empty() {
        "import".into()
    } else {
        name
    }
}

/// The `$schema` path for editors: this repository's `schemas/job.schema.json` when the job
/// is written inside it, else `job.schema.json` beside the job (which `cdpjob schema`
/// writes; the bool says it must).
fn schema_path(out_dir: &Path) -> (String, bool) {
    for dir in out_dir.ancestors() {
        let schema = dir.join("schemas/job.schema.json");
        if schema.is_file() {
            return (
                relative(out_dir, &schema).to_string_lossy().into_owned(),
                false,
            );
        }
    }
    let beside = out_dir.join("job.schema.json");
    ("job.schema.json".into(), !beside.is_file())
}

/// `to` relative to the directory `from` (both absolute and normalized).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for part in &to_parts[common..] {
        rel.push(part);
    }
    rel
}

/// Create the job file (only a new one, unless `force`).
fn write_job(out: &Path, text: &str, force: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} exists: init never overwrites a file; pass --force to replace it",
                out.display()
            ))
        } else {
            Error::io(format!("cannot write {}", out.display()), e)
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))
}

/// What the user reads after: what went where, and what next.
fn report(out: &Path, sample: &sample::Sample, guess: &guess::Guess) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let what = match (sample.delimiter, &sample.sheet) {
        (Some(d), _) => format!("{}, delimiter {:?}", sample.kind.as_str(), d),
        (None, Some(sheet)) => match sample.header_row {
            Some(n) => format!("{}, sheet `{sheet}`, header row {n}", sample.kind.as_str()),
            None => format!("{}, sheet `{sheet}`", sample.kind.as_str()),
        },
        _ => sample.kind.as_str().to_string(),
    };
    let placed: usize = sample.columns.len() - guess.unplaced.len();
    let _ = writeln!(
        o,
        "wrote {} ({what}): {placed} of {} column(s) mapped",
        if out == Path::new("-") {
            "the job to standard output".to_string()
        } else {
            out.display().to_string()
        },
        sample.columns.len()
    );
    for p in &guess.mapping {
        let _ = writeln!(o, "  {:<16} ← {}", p.field.name(), p.columns.join(" + "));
    }
    if !guess.unplaced.is_empty() {
        let names: Vec<&str> = guess.unplaced.iter().map(|(c, _)| c.as_str()).collect();
        let _ = writeln!(
            o,
            "  not placed: {} (listed in the job as comments)",
            names.join(", ")
        );
    }
    if !guess.has_contact_channel() {
        let _ = writeln!(
            o,
            "warning: no column looks like a phone, WhatsApp number or email: map one by hand (every row would be rejected)"
        );
    }
    if out != Path::new("-") {
        let _ = writeln!(o, "next: cdpjob plan {}", out.display());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_from_file_names() {
        assert_eq!(job_name("Leads 2024"), "leads-2024");
        assert_eq!(job_name("客户名单"), "import");
        assert_eq!(job_name("crm_export (1)"), "crm_export-1");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b/c.csv")),
            Path::new("c.csv")
        );
        assert_eq!(
            relative(Path::new("/a/jobs"), Path::new("/a/data/c.csv")),
            Path::new("../data/c.csv")
        );
    }
}
