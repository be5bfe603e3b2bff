//! Snapshots of the outputs that are contracts: the `validate` diagnostics, `plan`, `status`
//! and the run summary, as text and as `--json`. Scripts and people read these byte for byte,
//! so a change to any of them must show up as a snapshot diff to review (tests/cli/snapshots/),
//! never pass unnoticed. Only what differs from one run to the next is filtered: run ids,
//! timestamps, elapsed seconds, rates, customer ids and temporary paths.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::{Output, Workspace, repo, run, with_sim_credentials};

/// What differs between two runs of the same command, each with a placeholder. Applied in
/// order to the whole text.
pub(crate) fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // A tempfile directory (`.tmp` and six characters), with whatever precedes it in the
        // path: the workspace, canonical or not.
        (r#"(?:/[^\s"()]*)?/\.tmp[0-9A-Za-z]{6}"#, "[TMP]"),
        (r"\d{8}T\d{6}Z-[0-9a-f]{4}", "[RUN-ID]"),
        // RFC 3339, kept apart from whole seconds so that which fields carry a fraction
        // stays part of the contract.
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(?:Z|[+-]\d{2}:\d{2})",
            "[TIMESTAMP.FRACTION]",
        ),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})",
            "[TIMESTAMP]",
        ),
        // An export's `end_time` is `run.started_at` (the start time of the export may be
        // shown by `plan` too); its `start_time` here is the job's constant, kept.
        (
            r#"("end_time": )"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}""#,
            r#"$1"[DATETIME]""#,
        ),
        (r"(?m)( in )\d+\.\d+s$", "${1}[ELAPSED]s"),
        (r#"("elapsed_secs": )[0-9.e-]+"#, "${1}[ELAPSED]"),
        (r"\d+(?:\.\d+)? rows/s", "[RATE] rows/s"),
        // The simulator's ids grow with the clock.
        (r#"("cursor": )\d+"#, "${1}[CUSTOMER-ID]"),
        (r"\b\d{18,19}\b", "[CUSTOMER-ID]"),
        // A simulator on a free port (the fixed port 9 of the unreachable job stays).
        (r"http://127\.0\.0\.1:\d{4,5}\b", "http://[SIM]"),
        // What follows is the HTTP stack's and the OS's wording, not ours: it changes with a
        // reqwest or hyper release.
        (
            r"(error sending request for url \([^)]*\)): [^;]*",
            "$1: [TRANSPORT ERROR]",
        ),
    ]
}

/// Pin `text`, as `name`, with the [`filters`] applied; `command` is stored with it so a
/// reviewer sees what printed it.
fn assert_contract(name: &str, command: &str, text: &str) {
    // insta trims the end of a snapshot before comparing, so the last newline is checked here.
    assert!(
        text.ends_with('\n') && !text.ends_with("\n\n"),
        "{command}: the output must end in exactly one newline: {text:?}"
    );
    insta::with_settings!({
        filters => filters(),
        description => command,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

/// Pin a `--json` document and check the keys every one carries (SPEC §12 R1, R2).
fn assert_json_contract(name: &str, command: &str, text: &str) -> Value {
    let doc: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{command}: stdout is one JSON document ({e}):\n{text}"));
    assert_eq!(doc["format_version"], 1, "{command}: {text}");
    for key in ["run_dir", "resumable"] {
        assert!(doc.get(key).is_some(), "{command}: no `{key}` in {text}");
    }
    assert_contract(name, command, text);
    doc
}

/// `cdpjob ARGS` in `ws` with no credentials from the developer's environment.
fn cdpjob(ws: &Workspace, args: &[&str]) -> Output {
    let mut c = ws.cmd(args);
    c.env_remove("NXCLOUD_ACCESS_KEY")
        .env_remove("NXCLOUD_ACCESS_SECRET");
    run(c)
}

/// A workspace holding a copy of the repository's `jobs/` (runs then go to `runs/`, exports to
/// `exports/`, as the jobs say).
fn shipped_jobs() -> Workspace {
    let ws = Workspace::new();
    copy_files(&repo().join("jobs"), &ws, "jobs");
    ws
}

fn copy_files(from: &Path, ws: &Workspace, to: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{to}/{}", path.file_name().unwrap().to_str().unwrap());
        if path.is_dir() {
            copy_files(&path, ws, &name);
        } else {
            ws.write(&name, std::fs::read(&path).unwrap());
        }
    }
}

/// The one run directory of job `name`.
fn the_run_dir(ws: &Workspace, name: &str) -> String {
    let root = ws.path(&format!("runs/{name}"));
    let dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| format!("runs/{name}/{}", e.file_name().to_str().unwrap()))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// `status` and `status --json` of `dir`, pinned as `{name}_status` and `{name}_status_json`.
fn assert_status(ws: &Workspace, name: &str, dir: &str, status: &str) {
    let job_root = dir.rsplit_once('/').unwrap().0;
    let out = cdpjob(ws, &["status", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_contract(
        &format!("{name}_status"),
        &format!("cdpjob status {job_root}/RUN_ID"),
        &out.stdout,
    );
    let out = cdpjob(ws, &["status", "--json", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = assert_json_contract(
        &format!("{name}_status_json"),
        &format!("cdpjob status --json {job_root}/RUN_ID"),
        &out.stdout,
    );
    assert_eq!(doc["status"], status);
    assert_eq!(doc["run_dir"], dir);
}

/// Customers created in the second an export starts in belong to the next export (README,
/// Incremental exports): wait for the clock to leave the second they were created in.
fn wait_for_the_next_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(
        Duration::from_nanos(u64::from(1_000_000_000 - into)) + Duration::from_millis(20),
    );
}

/// The quickstart with its API where nothing listens (port 9), no retries and all its rows in
/// one batch: the one request fails, and the run stops with batch 0 in doubt. (With two
/// batches, which one is sent first is not fixed, even one request at a time.)
fn unreachable_job(ws: &Workspace) -> &'static str {
    let quickstart = std::fs::read_to_string(ws.path("jobs/quickstart.yaml")).unwrap();
    let job: String = quickstart
        .lines()
        .map(|line| match line {
            l if l.starts_with("name: ") => "name: unreachable".to_string(),
            l if l.starts_with("  base_url: ") => {
                "  base_url: \"http://127.0.0.1:9\"\n  max_retries: 0".to_string()
            }
            l if l.starts_with("batch_size: ") => "batch_size: 100".to_string(),
            l => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    for needed in [
        "name: unreachable",
        "127.0.0.1:9",
        "max_retries: 0",
        "batch_size: 100",
    ] {
        assert!(job.contains(needed), "{needed} in {job}");
    }
    ws.write("jobs/unreachable.yaml", job);
    "jobs/unreachable.yaml"
}

#[test]
fn validate_diagnostics_of_the_broken_job_catalogue() {
    let catalogue = repo().join("tests/fixtures/broken-jobs");
    let readme = std::fs::read_to_string(catalogue.join("README.md")).unwrap();
    let ws = Workspace::new();
    copy_files(&catalogue, &ws, ".");
    let mut jobs: Vec<String> = std::fs::read_dir(&catalogue)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    jobs.sort();
    assert!(jobs.len() >= 10, "{jobs:?}");
    for job in &jobs {
        assert!(
            readme.contains(&format!("`{job}`")),
            "tests/fixtures/broken-jobs/README.md does not say what {job} is"
        );
        let out = cdpjob(&ws, &["validate", job]);
        assert_eq!(out.code, 2, "{job}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "", "{job}: nothing on stdout");
        let name = format!(
            "validate_{}",
            job.trim_end_matches(".yaml").replace('-', "_")
        );
        assert_contract(&name, &format!("cdpjob validate {job}"), &out.stderr);
    }
}

#[test]
fn plan_of_the_shipped_jobs_as_text_and_json() {
    let ws = shipped_jobs();
    for (name, job) in [
        ("plan_quickstart", "jobs/quickstart.yaml"),
        ("plan_export_customers", "jobs/export-customers.yaml"),
    ] {
        let out = cdpjob(&ws, &["plan", job]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_contract(name, &format!("cdpjob plan {job}"), &out.stdout);
        let out = cdpjob(&ws, &["plan", "--json", job]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let doc = assert_json_contract(
            &format!("{name}_json"),
            &format!("cdpjob plan --json {job}"),
            &out.stdout,
        );
        assert_eq!(doc["run_dir"], Value::Null, "plan creates no run directory");
    }
    assert!(!ws.path("runs").exists(), "plan wrote nothing");
}

#[test]
fn run_summary_and_status_of_the_quickstart() {
    let ws = shipped_jobs();
    let out = cdpjob(&ws, &["run", "jobs/quickstart.yaml"]);
    assert_eq!(out.code, 1, "rejected rows: exit 1\n{}", out.stderr);
    assert_contract(
        "run_quickstart",
        "cdpjob run jobs/quickstart.yaml",
        &out.stdout,
    );
    let dir = the_run_dir(&ws, "quickstart");
    assert_status(&ws, "quickstart", &dir, "finished");

    let ws = shipped_jobs();
    let out = cdpjob(&ws, &["run", "--json", "jobs/quickstart.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = assert_json_contract(
        "run_quickstart_json",
        "cdpjob run --json jobs/quickstart.yaml",
        &out.stdout,
    );
    assert_eq!(doc["run_dir"], the_run_dir(&ws, "quickstart"));
    assert_eq!(doc["resumable"], false);
}

#[test]
fn report_line_of_the_quickstart() {
    let ws = shipped_jobs();
    assert_eq!(cdpjob(&ws, &["run", "jobs/quickstart.yaml"]).code, 1);
    let dir = the_run_dir(&ws, "quickstart");
    let out = cdpjob(&ws, &["report", &dir]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_contract(
        "report_quickstart",
        "cdpjob report runs/quickstart/RUN_ID",
        &out.stdout,
    );
    let out = cdpjob(&ws, &["report", &dir, "-o", "-"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert!(
        out.stdout.starts_with("<!DOCTYPE html>"),
        "only the page on stdout"
    );
}

#[test]
fn run_summary_and_status_of_an_interrupted_import() {
    let ws = shipped_jobs();
    let job = unreachable_job(&ws);
    let mut c = ws.cmd(&["run", job]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 3, "stopped early, resumable\n{}", out.stderr);
    assert_contract(
        "run_unreachable",
        "cdpjob run jobs/unreachable.yaml",
        &out.stdout,
    );
    let dir = the_run_dir(&ws, "unreachable");
    assert_status(&ws, "unreachable", &dir, "interrupted");

    let ws = shipped_jobs();
    let job = unreachable_job(&ws);
    let mut c = ws.cmd(&["run", "--json", job]);
    with_sim_credentials(&mut c);
    let out = run(c);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let doc = assert_json_contract(
        "run_unreachable_json",
        "cdpjob run --json jobs/unreachable.yaml",
        &out.stdout,
    );
    assert_eq!(doc["run_dir"], the_run_dir(&ws, "unreachable"));
    assert_eq!(doc["resumable"], true);
}

#[test]
fn run_summary_and_status_of_a_finished_export() {
    // The quickstart's 39 customers, then the export of everything created before it.
    let ws = shipped_jobs();
    assert_eq!(cdpjob(&ws, &["run", "jobs/quickstart.yaml"]).code, 1);
    wait_for_the_next_second();
    let out = cdpjob(&ws, &["run", "jobs/export-customers.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_contract(
        "run_export_customers",
        "cdpjob run jobs/export-customers.yaml",
        &out.stdout,
    );
    let dir = the_run_dir(&ws, "export-customers");
    assert_status(&ws, "export_customers", &dir, "finished");

    let ws = shipped_jobs();
    assert_eq!(cdpjob(&ws, &["run", "jobs/quickstart.yaml"]).code, 1);
    wait_for_the_next_second();
    let out = cdpjob(&ws, &["run", "--json", "jobs/export-customers.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = assert_json_contract(
        "run_export_customers_json",
        "cdpjob run --json jobs/export-customers.yaml",
        &out.stdout,
    );
    assert_eq!(doc["run_dir"], the_run_dir(&ws, "export-customers"));
    assert_eq!(doc["resumable"], false);
}

/// The quickstart under guards (SPEC §7): `refused` allows 10% of its rows rejected (8 of
/// the 47 the filter keeps are: 17.0%); `guarded` allows 20%, sends with `strict_binding:
/// true` and names an agent the simulator lacks for the `trial` segment, and allows 2
/// failed rows. All its customers are in one batch, so its one answer decides the stop.
fn guarded_jobs(ws: &Workspace) -> [&'static str; 2] {
    let quickstart = std::fs::read_to_string(ws.path("jobs/quickstart.yaml")).unwrap();
    let variant = |name: &str, guard: &str, strict: bool| -> String {
        let mut job: String = quickstart
            .lines()
            .map(|line| match line {
                l if l.starts_with("name: ") => format!("name: {name}"),
                l if l.starts_with("batch_size: ") => "batch_size: 100".to_string(),
                l if strict && l.starts_with("strict_binding: ") => {
                    "strict_binding: true".to_string()
                }
                l if strict && l.starts_with("merge: ") => format!(
                    "  belong_seat_user: \"{{{{ 'nobody' if row.segment == 'trial' else 'agent-1' }}}}\"\n{l}"
                ),
                l => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        job.push_str(guard);
        job
    };
    ws.write(
        "jobs/refused.yaml",
        variant("refused", "guard:\n  max_rejected: \"10%\"\n", false),
    );
    let guarded = variant(
        "guarded",
        "guard:\n  max_rejected: \"20%\"\n  max_failed: 2\n",
        true,
    );
    assert!(guarded.contains("strict_binding: true") && guarded.contains("belong_seat_user"));
    ws.write("jobs/guarded.yaml", guarded);
    ["jobs/refused.yaml", "jobs/guarded.yaml"]
}

#[test]
fn guards_in_plan_a_refused_run_and_a_run_a_guard_stopped() {
    let ws = shipped_jobs();
    let [refused, guarded] = guarded_jobs(&ws);
    for (name, job) in [("plan_refused", refused), ("plan_guarded", guarded)] {
        let out = cdpjob(&ws, &["plan", job]);
        assert_eq!(
            out.code, 0,
            "plan exits 0 whatever the verdict: {}",
            out.stderr
        );
        assert_contract(name, &format!("cdpjob plan {job}"), &out.stdout);
        let out = cdpjob(&ws, &["plan", "--json", job]);
        assert_json_contract(
            &format!("{name}_json"),
            &format!("cdpjob plan --json {job}"),
            &out.stdout,
        );
    }

    let out = cdpjob(&ws, &["run", refused]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_contract("run_refused", &format!("cdpjob run {refused}"), &out.stderr);
    let out = cdpjob(&ws, &["run", "--json", refused]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let doc = assert_json_contract(
        "run_refused_json",
        &format!("cdpjob run --json {refused}"),
        &out.stdout,
    );
    assert_eq!(
        (&doc["run_dir"], &doc["resumable"]),
        (&Value::Null, &false.into())
    );
    assert!(
        !ws.path("runs/refused")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().path().is_dir())
    );

    let out = cdpjob(&ws, &["run", guarded]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_contract("run_guarded", &format!("cdpjob run {guarded}"), &out.stdout);
    let dir = the_run_dir(&ws, "guarded");
    assert_status(&ws, "guarded", &dir, "stopped_by_guard");
    let out = cdpjob(&ws, &["resume", "--json", &dir]);
    assert_eq!(out.code, 4, "a plain resume stops again: {}", out.stderr);
    let doc = assert_json_contract(
        "resume_guarded_json",
        "cdpjob resume --json runs/guarded/RUN_ID",
        &out.stdout,
    );
    assert_eq!(
        (&doc["run_dir"], &doc["resumable"]),
        (&dir.as_str().into(), &true.into())
    );
}

#[test]
fn help_of_every_command() {
    let ws = Workspace::new();
    let out = cdpjob(&ws, &["--help"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_contract("help", "cdpjob --help", &out.stdout);
    let commands: Vec<&str> = out
        .stdout
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 13, "{commands:?}");
    for command in commands {
        let out = cdpjob(&ws, &[command, "--help"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_contract(
            &format!("help_{command}"),
            &format!("cdpjob {command} --help"),
            &out.stdout,
        );
    }
}

/// The run directories of job `name`, oldest first.
fn run_dirs_of(ws: &Workspace, name: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(ws.path(&format!("runs/{name}")))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("manifest.json").exists())
        .map(|e| format!("runs/{name}/{}", e.file_name().to_str().unwrap()))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn retry_summary_of_the_quickstart() {
    let ws = shipped_jobs();
    assert_eq!(cdpjob(&ws, &["run", "jobs/quickstart.yaml"]).code, 1);
    let first = the_run_dir(&ws, "quickstart");
    // Run ids of one second would not sort by time.
    wait_for_the_next_second();
    let out = cdpjob(&ws, &["retry", &first]);
    assert_eq!(
        out.code, 1,
        "the same mapping rejects them again\n{}",
        out.stderr
    );
    assert_contract(
        "retry_quickstart",
        "cdpjob retry runs/quickstart/RUN_ID",
        &out.stdout,
    );
    wait_for_the_next_second();
    let out = cdpjob(&ws, &["retry", "--json", &first]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = assert_json_contract(
        "retry_quickstart_json",
        "cdpjob retry --json runs/quickstart/RUN_ID",
        &out.stdout,
    );
    let dirs = run_dirs_of(&ws, "quickstart");
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(
        doc["run_dir"].as_str().unwrap().ends_with(&dirs[2]),
        "{doc}"
    );
    assert_eq!(doc["retry_of"]["not_retryable"], 2);
}
