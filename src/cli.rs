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

/// How a run ends, for scripts and schedulers (SPEC §3, §12 R1): `run --help` and the
/// commands that run a job show it.
const EXIT_CODES: &str = "\
Exit codes:
  0  every row created or exported (rows the filter skipped, or unchanged since the last
     sync, count as done)
  1  the run finished, but some rows were rejected or failed (see the result files)
  2  the job file, the arguments or the environment are invalid, or the run stopped in a
     way no resume can mend
  3  the run stopped early (transport, credentials, a signal, a failed write, another run
     holding the lock): `cdpjob resume RUN_DIR` continues it, or run the same command
     again when no run directory was made
  4  a guard (max_rejected, max_failed) refused or stopped the run: look before trying again";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check job files: schema, templates, source, environment names. No network.
    Validate {
        /// Job files to check; each is reported.
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// Also ask the job's API for the tenant's fields and check the custom fields the
        /// job uses against them (needs the credentials a run needs).
        #[arg(long)]
        remote: bool,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Dry run: read every row, show the first customers as the API would receive them,
    /// and the counts of valid, rejected and skipped rows. No network, no credentials
    /// (unless --remote).
    Plan {
        /// The job file (YAML).
        job: PathBuf,
        /// How many customers to show (default 5; with --remote, 20).
        #[arg(long)]
        limit: Option<usize>,
        /// Also look the first customers up in the CDP by match key and show what a run
        /// would change: new, unchanged, or update with each field old → new (needs the
        /// credentials a run needs; reads only).
        #[arg(long)]
        remote: bool,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Trace one source row end to end: the record, each template rendered by the native
    /// fast path and by minijinja, the rules, the filter, its batch; with --run, its outcome
    /// in that run and its batch's journal. No network.
    Explain {
        /// The job file (YAML).
        job: PathBuf,
        /// The row, numbered as result lines and `cdpjob rows` number it (from 1).
        #[arg(long)]
        row: u64,
        /// A run of this job: the row's outcome there, and its batch's journal events.
        #[arg(long = "run", value_name = "RUN_DIR")]
        run: Option<PathBuf>,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        /// Override a template variable (repeatable; with --run, over the run's vars).
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Run the mapping tests (`tests:`) of job files. No source read, no network.
    ///
    /// Each case's row goes through the job's own mapping and filter and is compared with
    /// what the case expects; a failing case is shown at its file:line:col with what differs
    /// (`-` expected, `+` rendered). Exit 0 when every case passes, 1 when one fails, 2 when
    /// a job file does not load.
    Test {
        /// Job files whose tests to run (a job without tests passes, with a note).
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Execute a job: create a run directory, send the batches, write the results.
    #[command(after_long_help = EXIT_CODES)]
    Run {
        /// The job file (YAML).
        job: PathBuf,
        /// Put the run directory here instead of <run.root>/<name>/<run-id>.
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Print only the summary, as one JSON object, on stdout.
        #[arg(long)]
        json: bool,
        /// No progress and no informational lines (`run directory:`, `sync:`, notes):
        /// only warnings, errors and the final summary.
        #[arg(short, long)]
        quiet: bool,
        /// Do not run: show the plan (the same as `cdpjob plan`).
        #[arg(long)]
        dry_run: bool,
        /// With `sync: changed`: send every valid row, not only what changed, and refresh
        /// the sync state (an unreadable state is moved aside and started afresh).
        #[arg(long)]
        full: bool,
        /// Write the run's Prometheus metrics to this file (node_exporter's textfile
        /// collector), atomically, every 10 s and at the end.
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<PathBuf>,
        /// Run shard K of N (0 ≤ K < N; batch_create only): only the rows whose match key
        /// hashes to K, in <run.root>/<name>/<group>-K-of-N. Running it again resumes it, or
        /// says it already finished. Default: JOB_COMPLETION_INDEX/CDPJOB_SHARDS when
        /// CDPJOB_SHARDS is set.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// The shards' run group (default: CDPJOB_RUN_GROUP, else today's UTC date,
        /// yyyymmdd); another group runs the shards again.
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// List the tenant's customer fields (name, type, choice options) from the job's API.
    Fields {
        /// The job file (YAML).
        job: PathBuf,
        /// Print the fields as a JSON array on stdout.
        #[arg(long)]
        json: bool,
        /// Override a template variable (repeatable): --var country_code=44
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Continue an interrupted run from its checkpoint.
    #[command(after_long_help = EXIT_CODES)]
    Resume {
        /// The run directory to continue (`run` printed it: runs/<name>/<run-id>).
        run_dir: PathBuf,
        /// Resume even though the job file or the source changed since the run started.
        #[arg(long)]
        force: bool,
        /// Go on past the job's max_failed guard, for this resume only (a run it stopped
        /// exits 4; a plain resume checks the guard again).
        #[arg(long)]
        no_guard: bool,
        /// Print only the summary, as one JSON object, on stdout.
        #[arg(long)]
        json: bool,
        /// No progress and no informational lines (`run directory:`, `sync:`, notes):
        /// only warnings, errors and the final summary.
        #[arg(short, long)]
        quiet: bool,
        /// Write the run's Prometheus metrics to this file (node_exporter's textfile
        /// collector), atomically, every 10 s and at the end.
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<PathBuf>,
    },
    /// Start a new run of RUN_DIR's job, as its file is now, whose rows are RUN_DIR's failed
    /// and rejected records mapped again (original row numbers kept).
    #[command(after_long_help = EXIT_CODES)]
    Retry {
        /// The run directory of the import whose rows to retry.
        run_dir: PathBuf,
        /// Retry only the failed rows (refused by the API) or only the rejected ones
        /// (refused locally); both by default.
        #[arg(long, value_enum)]
        only: Option<OnlyArg>,
        /// Print only the summary, as one JSON object, on stdout.
        #[arg(long)]
        json: bool,
        /// No progress and no informational lines (`run directory:`, `sync:`, notes):
        /// only warnings, errors and the final summary.
        #[arg(short, long)]
        quiet: bool,
        /// Override a template variable (repeatable); the run's own vars are the default.
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Do not run: show the plan of the retry.
        #[arg(long)]
        dry_run: bool,
        /// Write the run's Prometheus metrics to this file (node_exporter's textfile
        /// collector), atomically, every 10 s and at the end.
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<PathBuf>,
    },
    /// Print an import's rows of one outcome: the result lines, or a CSV to fix and feed back.
    Rows {
        /// The run directory of an import.
        run_dir: PathBuf,
        /// Which rows: created, failed (refused by the API) or rejected (refused locally).
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        /// jsonl: the result lines as they are. csv: created rows as
        /// row,customer_id,whats_app_phone; failed and rejected rows in the source's columns,
        /// then _row and _reason (a file to fix and use as a source).
        #[arg(long, value_enum, default_value_t = RowsFormatArg::Jsonl)]
        format: RowsFormatArg,
    },
    /// Read back the customers an import created, by match key, and compare what is stored
    /// with what the run sent under its merge mode. Exit 0 all match, 1 a mismatch, 3 the
    /// API failed (verify again continues).
    Verify {
        /// The run directory of an import.
        run_dir: PathBuf,
        /// Check a seeded sample of N created customers instead of all of them.
        #[arg(long, value_name = "N")]
        sample: Option<u64>,
        /// The sample's seed (a new one is drawn and printed when absent).
        #[arg(long, value_name = "S", requires = "sample")]
        seed: Option<u64>,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// What a run did or is doing.
    Status {
        /// A run directory (runs/<name>/<run-id>), or a job root (runs/<name>) to list the
        /// states of its shards (run --shard).
        run_dir: PathBuf,
        /// Print the status as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write a run's report: one self-contained HTML page (no external resource, no
    /// JavaScript) with its status and timings, outcome counts, rejects and failures with
    /// example rows, and charts of throughput, retries and bisections from its journal.
    Report {
        /// A run directory (runs/<name>/<run-id>), finished, stopped or still running.
        run_dir: PathBuf,
        /// Where to write the page (default: RUN_DIR/report.html; `-`: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the job file JSON Schema (the one `validate` uses).
    Schema,
    /// Write a first job for a CSV, XLSX or JSON Lines file: its source as detected and a
    /// mapping guessed from the header and the values; unplaced columns become comments.
    Init {
        /// The data file (.csv, .xlsx/.xls/.ods, .jsonl, .json).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Where to write the job (default: <file name>.yaml here; `-`: standard output).
        #[arg(long, value_name = "JOB.yaml")]
        out: Option<PathBuf>,
        /// Replace the job file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the string-to-sign (secret masked) and the signature, to debug error 1003.
    /// The secret comes from the environment, never from a flag.
    Sign(SignArgs),
    /// Run the CDP API simulator (CDP-API §2–§6) as an HTTP server on loopback.
    Sim(SimArgs),
    /// Print a completion script for a shell, generated from these very arguments.
    ///
    /// bash: `cdpjob completions bash > ~/.local/share/bash-completion/completions/cdpjob`;
    /// zsh: `cdpjob completions zsh > ~/.zfunc/_cdpjob` (a directory on `$fpath`, before
    /// `compinit`); fish: `cdpjob completions fish > ~/.config/fish/completions/cdpjob.fish`.
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: ShellArg,
    },
}

impl Command {
    /// Whether the command was asked for one JSON document on stdout.
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Plan { json, .. }
            | Command::Explain { json, .. }
            | Command::Test { json, .. }
            | Command::Run { json, .. }
            | Command::Fields { json, .. }
            | Command::Resume { json, .. }
            | Command::Retry { json, .. }
            | Command::Status { json, .. }
            | Command::Verify { json, .. } => *json,
            Command::Validate { .. }
            | Command::Rows { .. }
            | Command::Report { .. }
            | Command::Schema
            | Command::Init { .. }
            | Command::Sign(_)
            | Command::Sim(_)
            | Command::Completions { .. } => false,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The access key, as sent in the `accessKey` header.
    #[arg(long)]
    pub access_key: String,
    /// The `action` header.
    #[arg(long, default_value = "mt")]
    pub action: String,
    /// The `bizType` header.
    #[arg(long, default_value = "2")]
    pub biz_type: String,
    /// Milliseconds since the epoch (default: now).
    #[arg(long)]
    pub ts: Option<String>,
    /// The exact body bytes: a file, or - for standard input (default: empty body).
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// The signature's hash, as the job's `api.sign_algorithm`.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Md5)]
    pub algorithm: AlgorithmArg,
    /// The environment variable holding the secret.
    #[arg(long, default_value = "NXCLOUD_ACCESS_SECRET")]
    pub secret_env: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OnlyArg {
    Failed,
    Rejected,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutcomeArg {
    Created,
    Failed,
    Rejected,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RowsFormatArg {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AlgorithmArg {
    Md5,
    Sha256,
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: std::net::SocketAddr,
    /// File the customers are logged to (JSON lines, kept between runs); in memory when absent.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The access key the simulator accepts.
    #[arg(long, default_value = crate::sim::SIM_ACCESS_KEY)]
    pub access_key: String,
    /// The environment variable holding the secret; the built-in one when it is unset.
    #[arg(long, default_value = "NXCLOUD_ACCESS_SECRET")]
    pub secret_env: String,
    /// The tenant_id a body must carry.
    #[arg(long, default_value_t = crate::sim::SIM_TENANT_ID)]
    pub tenant_id: i64,
    /// The app_key a body must carry.
    #[arg(long, default_value = crate::sim::SIM_APP_KEY)]
    pub app_key: String,
    /// An agent that exists (repeatable); default agent-1 and agent-2.
    #[arg(long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
    /// Response time: every answer leaves N ms after its request arrived (the handling included).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability of an injected HTTP 503.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub fail_5xx: f64,
    /// Probability of an injected HTTP 429 with Retry-After: 1.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub fail_429: f64,
    /// Probability of applying a request and then dropping the connection unanswered.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub drop: f64,
    /// Answer the first authenticated request with 1004 (timestamp expired).
    #[arg(long)]
    pub expire_ts_once: bool,
    /// Seed of the fault injection, of the shuffled order and of the generated customers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The order the query endpoint returns customers in and follows `after` by: asc (ids
    /// ascending), desc (descending) or shuffled (a fixed pseudo-random order, from --seed).
    #[arg(long, default_value_t = crate::sim::Order::Asc)]
    pub order: crate::sim::Order,
    /// A query's end_time is inside its window ([start, end]) instead of just past it
    /// ([start, end)): the vendor does not say which, so a client must work with both.
    #[arg(long)]
    pub inclusive_end: bool,
    /// Before listening, create N generated customers (distinct names, phones and e-mails,
    /// from --seed), created evenly over --seed-window; only when the state holds none.
    #[arg(long, value_name = "N", requires = "seed_window")]
    pub seed_customers: Option<u64>,
    /// The window the generated customers' created_at spread over: "START..END", both
    /// yyyy-MM-dd HH:mm:ss (UTC), END excluded.
    #[arg(long, value_name = "START..END", requires = "seed_customers")]
    pub seed_window: Option<crate::sim::SeedWindow>,
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every positional argument and option of every command says what it is in `--help`.
    #[test]
    fn every_argument_is_documented() {
        let cli = super::Cli::command();
        let mut undocumented = Vec::new();
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    undocumented.push(format!("{} {}", command.get_name(), arg.get_id()));
                }
            }
            assert!(
                command.get_about().is_some(),
                "{} has no about",
                command.get_name()
            );
        }
        assert!(undocumented.is_empty(), "no help text: {undocumented:?}");
    }
}
