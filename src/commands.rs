//! Each subcommand as a function from checked arguments to output and an exit code.

use std::io::Write as _;

use crate::cli::{
    AlgorithmArg, Cli, Command, OnlyArg, OutcomeArg, RowsFormatArg, ShellArg, SignArgs, SimArgs,
};
use crate::error::{Error, Result};
use crate::export::{self, Export};
use crate::import::results::RowOutcome;
use crate::import::{self, Import};
use crate::job::model::{JobKind, SignAlgorithm, SourceKind, VarOverrides};
use crate::job::{self, schema};
use crate::retry::RetryRequest;
use crate::rows::RowsFormat;
use crate::run_dir::RetryRows;
use crate::runner::{self, Outcome, RunOptions};
use crate::secret::Secret;
use crate::source::sql::SqlSource;
use crate::{catalogue, explain, init, mapping_test, plan, remote, retry, rows, run_dir};

/// Run the parsed command line and report how it ended; the process exits with the code.
pub fn main(cli: Cli) -> std::process::ExitCode {
    let json = cli.command.wants_json();
    let code = match execute(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            if json {
                print_json(&e.to_json());
            }
            eprint!("{}", e.render());
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code)
}

/// Run the parsed command line.
pub fn execute(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Validate { jobs, remote, vars } => {
            validate(&jobs, remote, &vars.into_iter().collect())
        }
        Command::Fields { job, json, vars } => fields(&job, json, &vars.into_iter().collect()),
        Command::Plan {
            job,
            limit,
            remote,
            json,
            vars,
        } => {
            let vars = vars.into_iter().collect();
            if remote {
                return plan_remote(&job, limit.unwrap_or(20), json, &vars);
            }
            plan(&job, limit.unwrap_or(5), json, &vars)
        }
        Command::Explain {
            job,
            row,
            run,
            json,
            vars,
        } => explain::explain(&explain::ExplainRequest {
            job,
            row,
            run,
            json,
            vars: vars.into_iter().collect(),
        }),
        Command::Test { jobs, json } => test(&jobs, json),
        Command::Run {
            job,
            run_dir,
            vars,
            json,
            quiet,
            dry_run,
            full,
            metrics_file,
            shard,
            group,
        } => {
            let vars: VarOverrides = vars.into_iter().collect();
            if dry_run {
                return plan(&job, 5, json, &vars);
            }
            let job = job::load(&job, &vars).map_err(|e| Error::Job(vec![*e]))?;
            let shard = crate::shard::resolve(shard.as_deref(), group.as_deref(), |k| {
                std::env::var(k).ok()
            })
            .map_err(Error::Usage)?;
            let opts = RunOptions {
                run_dir,
                json,
                quiet,
                force: false,
                full,
                metrics_file,
                shard: None,
            };
            match (job.spec.kind, shard) {
                (JobKind::BatchCreate, Some(s)) => {
                    return runner::sharded::run::<Import>(job, &opts, &s);
                }
                (JobKind::QueryExport, Some(_)) => {
                    return Err(Error::Usage(
                        "--shard splits batch_create jobs; an export splits its window with query.parallel".into(),
                    ));
                }
                (_, None) => {}
            }
            match job.spec.kind {
                JobKind::BatchCreate => runner::start::<Import>(&job, &opts),
                JobKind::QueryExport => runner::start::<Export>(&job, &opts),
            }
        }
        Command::Resume {
            run_dir,
            force,
            no_guard,
            json,
            quiet,
            metrics_file,
        } => {
            let opts = RunOptions {
                run_dir: None,
                json,
                quiet,
                force,
                full: false,
                metrics_file,
                shard: None,
            };
            let mut run = runner::begin::reopen(&run_dir)?;
            if no_guard {
                // The only guard a resume checks; `max_rejected` was the start's.
                run.job.spec.guard.max_failed = None;
            }
            match run.manifest.kind.job_kind() {
                JobKind::BatchCreate => runner::resume::<Import>(run, &opts),
                JobKind::QueryExport => runner::resume::<Export>(run, &opts),
            }
        }
        Command::Retry {
            run_dir,
            only,
            json,
            quiet,
            vars,
            dry_run,
            metrics_file,
        } => retry::retry(&RetryRequest {
            run_dir,
            rows: match only {
                None => RetryRows::Both,
                Some(OnlyArg::Failed) => RetryRows::Failed,
                Some(OnlyArg::Rejected) => RetryRows::Rejected,
            },
            json,
            quiet,
            vars: vars.into_iter().collect(),
            dry_run,
            metrics_file,
        }),
        Command::Rows {
            run_dir,
            outcome,
            format,
        } => rows::print(
            &run_dir,
            match outcome {
                OutcomeArg::Created => RowOutcome::Created,
                OutcomeArg::Failed => RowOutcome::Failed,
                OutcomeArg::Rejected => RowOutcome::Rejected,
            },
            match format {
                RowsFormatArg::Csv => RowsFormat::Csv,
                RowsFormatArg::Jsonl => RowsFormat::Jsonl,
            },
        ),
        Command::Status { run_dir, json } => status(&run_dir, json),
        Command::Report { run_dir, output } => crate::report::write(&run_dir, output.as_deref()),
        Command::Verify {
            run_dir,
            sample,
            seed,
            json,
        } => {
            let r = remote::verify::verify(&remote::verify::VerifyRequest {
                run_dir,
                sample,
                seed,
                json,
            })?;
            report(&r, json);
            Ok(r.outcome())
        }
        Command::Schema => {
            print!("{}", schema::SCHEMA_TEXT);
            Ok(Outcome::Done)
        }
        Command::Init { from, out, force } => {
            init::init(&init::InitRequest {
                from: &from,
                out: out.as_deref(),
                force,
            })?;
            Ok(Outcome::Done)
        }
        Command::Sign(args) => sign(args),
        Command::Sim(args) => sim(args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let shell = match shell {
                ShellArg::Bash => clap_complete::Shell::Bash,
                ShellArg::Zsh => clap_complete::Shell::Zsh,
                ShellArg::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "cdpjob", &mut std::io::stdout());
            Ok(Outcome::Done)
        }
    }
}

/// Print a `--json` document; a closed pipe (`| head`) is not an error worth a message.
fn print_json(doc: &serde_json::Value) {
    let text = serde_json::to_string_pretty(doc).expect("a JSON value serializes") + "\n";
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// A `--json` document that is not about a run: versioned, with no run directory.
fn document<T: serde::Serialize>(value: &T) -> serde_json::Value {
    let mut doc = run_dir::versioned(value);
    doc["run_dir"] = serde_json::Value::Null;
    doc["resumable"] = false.into();
    doc
}

/// Print a report as `--json` or as text.
fn report<T: serde::Serialize + std::fmt::Display>(value: &T, json: bool) {
    if json {
        print_json(&run_dir::versioned(value));
    } else {
        let _ = std::io::stdout()
            .lock()
            .write_all(value.to_string().as_bytes());
    }
}

fn status(path: &std::path::Path, json: bool) -> Result<Outcome> {
    if !path.join(run_dir::MANIFEST).exists() && path.is_dir() {
        // A job root: its shards (SPEC §10).
        let shards =
            import::shards::read(path)?.ok_or_else(|| import::shards::not_a_job_root(path))?;
        report(&shards, json);
        return Ok(Outcome::Done);
    }
    let manifest = runner::begin::read_manifest(path)?;
    match manifest.kind.job_kind() {
        JobKind::BatchCreate => report(&import::status::read(path, &manifest)?, json),
        JobKind::QueryExport => report(&export::status::read(path, &manifest)?, json),
    }
    Ok(Outcome::Done)
}

fn sign(a: SignArgs) -> Result<Outcome> {
    use std::io::Read as _;

    use crate::api::sign::{SignedHeaders, sign, string_to_sign_public};
    let secret = Secret::from_env(&a.secret_env).map_err(Error::Environment)?;
    let body = match &a.body {
        None => Vec::new(),
        Some(p) if p.as_os_str() == "-" => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| Error::io("cannot read the body from stdin", e))?;
            b
        }
        Some(p) => std::fs::read(p)
            .map_err(|e| Error::io(format!("cannot read the body {}", p.display()), e))?,
    };
    let ts =
        a.ts.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond().to_string());
    let headers = SignedHeaders {
        access_key: &a.access_key,
        action: &a.action,
        biz_type: &a.biz_type,
        ts: &ts,
    };
    let algorithm = match a.algorithm {
        AlgorithmArg::Md5 => SignAlgorithm::Md5,
        AlgorithmArg::Sha256 => SignAlgorithm::Sha256,
    };
    let public = String::from_utf8_lossy(&string_to_sign_public(&headers, &body)).into_owned();
    println!(
        "string to sign: {public}&accessSecret=<${}, {} characters>",
        a.secret_env,
        secret.expose().chars().count()
    );
    println!(
        "algorithm: {}",
        if algorithm == SignAlgorithm::Md5 {
            "md5"
        } else {
            "sha256"
        }
    );
    println!("sign: {}", sign(algorithm, &headers, &body, &secret));
    if body.ends_with(b"\n") {
        eprintln!(
            "note: the body ends with a newline, and it is signed too: the bytes sent must end with it as well"
        );
    }
    Ok(Outcome::Done)
}

fn sim(a: SimArgs) -> Result<Outcome> {
    use crate::sim::{FaultConfig, SIM_SECRET, Seeding, Sim, SimConfig};
    let seeding = match (a.seed_customers, a.seed_window) {
        (Some(count), Some(window)) => Some(Seeding::new(count, window).map_err(Error::Usage)?),
        _ => None,
    };
    let secret = match std::env::var(&a.secret_env) {
        Ok(s) if !s.is_empty() => Secret::new(s),
        _ => {
            eprintln!(
                "note: ${} is not set: the simulator uses its built-in secret",
                a.secret_env
            );
            Secret::new(SIM_SECRET)
        }
    };
    let mut cfg = SimConfig {
        access_key: a.access_key,
        secret,
        tenant_id: a.tenant_id,
        app_key: a.app_key,
        faults: FaultConfig {
            latency: std::time::Duration::from_millis(a.latency_ms),
            fail_5xx: a.fail_5xx,
            fail_429: a.fail_429,
            drop: a.drop,
            expire_ts_once: a.expire_ts_once,
            seed: a.seed,
        },
        order: a.order,
        inclusive_end: a.inclusive_end,
        seeding,
        ..SimConfig::default()
    };
    if !a.agents.is_empty() {
        cfg.agents = a.agents;
    }
    runner::begin::runtime()?.block_on(async move {
        let sim = Sim::start(a.listen, cfg.clone(), a.state.as_deref())
            .await
            .map_err(|e| Error::io(format!("cannot start the simulator on {}", a.listen), e))?;
        // On stderr: the first line on stdout is the address, which scripts read.
        match (&cfg.seeding, sim.seeded) {
            (Some(s), true) => eprintln!("seeded {} customers created over {}", s.count, s.window),
            (Some(_), false) => {
                eprintln!("note: the state holds customers already: nothing seeded")
            }
            (None, _) => {}
        }
        println!(
            "cdpjob sim listening on {} (access key {}, tenant_id {}, app_key {})",
            sim.base_url(),
            cfg.access_key,
            cfg.tenant_id,
            cfg.app_key
        );
        let _ = std::io::stdout().flush();
        runner::shutdown::signal().await;
        sim.stop().await;
        Ok(Outcome::Done)
    })
}

fn validate(paths: &[std::path::PathBuf], remote: bool, vars: &VarOverrides) -> Result<Outcome> {
    let mut failed = Vec::new();
    let mut unreachable_api = None;
    // A database that refused (credentials, a query that does not compile): exit 2.
    let mut failed_other = None;
    for path in paths {
        let job = match job::load(path, vars) {
            Ok(job) => job,
            Err(errors) => {
                failed.push(*errors);
                continue;
            }
        };
        for w in &job.warnings {
            eprint!("{}", w.render(&job.path, &job.text));
        }
        let mut checked = "";
        if remote
            && let Some(src) = job
                .spec
                .source
                .as_ref()
                .filter(|s| s.kind == SourceKind::Sql)
        {
            // One database's failure must not hide the other files' results either.
            let columns = match SqlSource::open(src, &job.resolve(&src.path)) {
                Ok(sql) => sql.columns().to_vec(),
                Err(e) => {
                    let e = Error::from(e);
                    eprintln!("{}: {e}", path.display());
                    if e.exit_code() == 3 {
                        unreachable_api = Some(e);
                    } else {
                        failed_other = Some(e);
                    }
                    continue;
                }
            };
            let problems = job::with_parsed(&job, |p| job::check::sql_columns(p, &columns))
                .unwrap_or_default();
            if !problems.is_empty() {
                failed.push(job::JobErrors {
                    path: job.path.clone(),
                    text: job.text.clone(),
                    diagnostics: problems,
                });
                continue;
            }
        }
        if remote {
            // One file's API failure must not hide the other files' results.
            let fields = match catalogue::fetch(&job) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    unreachable_api = Some(e);
                    continue;
                }
            };
            if let Some(errors) = catalogue::remote_errors(&job, &fields) {
                failed.push(errors);
                continue;
            }
            checked = ", custom fields checked against the tenant's";
        }
        println!(
            "{}: ok ({}, {}{checked})",
            path.display(),
            job.spec.name,
            job.spec.kind.as_str()
        );
    }
    if !failed.is_empty() {
        Err(Error::Job(failed))
    } else if let Some(e) = failed_other {
        Err(e)
    } else if let Some(e) = unreachable_api {
        // Printed above, next to its file; this says it once more, last, and exits with
        // the API failure's code.
        Err(e)
    } else {
        Ok(Outcome::Done)
    }
}

fn fields(path: &std::path::Path, json: bool, vars: &VarOverrides) -> Result<Outcome> {
    let job = job::load(path, vars).map_err(|e| Error::Job(vec![*e]))?;
    let fields = catalogue::fetch(&job)?;
    if json {
        print_json(&document(&serde_json::json!({ "fields": fields })));
    } else {
        let text = catalogue::render_table(&job, &fields);
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
    Ok(Outcome::Done)
}

fn plan(path: &std::path::Path, limit: usize, json: bool, vars: &VarOverrides) -> Result<Outcome> {
    let job = job::load(path, vars).map_err(|e| Error::Job(vec![*e]))?;
    let (human, machine) = match job.spec.kind {
        JobKind::BatchCreate => {
            let p = plan::plan_batch(&job, limit)?;
            (p.render_human(&job), document(&p))
        }
        JobKind::QueryExport => {
            let p = plan::plan_export(&job)?;
            (p.render_human(&job), document(&p))
        }
    };
    if json {
        print_json(&machine);
    } else {
        // A closed pipe (`| head`) is not an error worth a message.
        let _ = std::io::stdout().lock().write_all(human.as_bytes());
    }
    Ok(Outcome::Done)
}

/// `plan --remote`: the plan, and its first `limit` valid customers looked up in the CDP.
fn plan_remote(
    path: &std::path::Path,
    limit: usize,
    json: bool,
    vars: &VarOverrides,
) -> Result<Outcome> {
    let job = job::load(path, vars).map_err(|e| Error::Job(vec![*e]))?;
    if job.spec.kind != JobKind::BatchCreate {
        return Err(Error::Usage(format!(
            "{}: --remote shows what an import would change; this job is a {}",
            path.display(),
            job.spec.kind.as_str()
        )));
    }
    let p = plan::plan_batch(&job, limit)?;
    let remote = remote::plan::look_up(&job, &p.preview)?;
    if json {
        let mut doc = document(&p);
        doc["remote"] = serde_json::to_value(&remote).expect("a plan serializes");
        print_json(&doc);
    } else {
        let text = p.render_human_ending(&job, &remote.render());
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
    Ok(Outcome::Done)
}

/// `cdpjob test`: exit 1 when a case failed, 2 when a job file did not load (its problems
/// are printed after the other files' results, as `validate` prints them).
fn test(paths: &[std::path::PathBuf], json: bool) -> Result<Outcome> {
    let (report, unloaded) = mapping_test::run(paths);
    if json {
        // With a file that did not load, the one document is the error's.
        if unloaded.is_empty() {
            print_json(&document(&report));
        }
    } else if !report.jobs.is_empty() {
        let _ = std::io::stdout()
            .lock()
            .write_all(report.to_string().as_bytes());
    }
    if !unloaded.is_empty() {
        return Err(Error::Job(unloaded));
    }
    // A failed case is a finished check with findings: the exit code a run with rejected
    // rows has.
    Ok(if report.all_passed() {
        Outcome::Done
    } else {
        Outcome::RowsNotCreated
    })
}
