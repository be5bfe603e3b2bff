//! The shell around the commands (SPEC §10 "Shell"): completion scripts for bash, zsh and
//! fish, and `-q/--quiet`, which leaves only warnings, errors and the final summary.

use crate::common::{API, Output, Workspace, cdpjob, read, repo, run};

/// The subcommands `cdpjob --help` lists (what a completion script must offer).
fn subcommands() -> Vec<String> {
    let out = run({
        let mut c = cdpjob();
        c.arg("--help");
        c
    });
    let list: Vec<String> = out
        .stdout
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(
        list.len() >= 15 && list.iter().any(|c| c == "completions"),
        "{list:?}"
    );
    list
}

#[track_caller]
fn completions(ws: &Workspace, shell: &str) -> String {
    let out = run(ws.cmd(&["completions", shell]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    out.stdout
}

/// Whether `program` can be run here.
fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_bash_script_parses_and_completes_every_subcommand() {
    let ws = Workspace::new();
    let script = ws.write("cdpjob.bash", completions(&ws, "bash"));
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // What bash offers after `cdpjob <TAB>` and after `cdpjob run --q<TAB>`.
    let complete = |words: &str| {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _cdpjob cdpjob \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &probe])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let offered = complete("cdpjob ''");
    for command in subcommands() {
        assert!(
            offered.contains(&command),
            "{command} not offered: {offered:?}"
        );
    }
    assert_eq!(complete("cdpjob run --qu"), ["--quiet"]);
    assert_eq!(complete("cdpjob completions f"), ["fish"]);
}

#[test]
fn the_zsh_script_names_every_subcommand() {
    let ws = Workspace::new();
    let script = completions(&ws, "zsh");
    assert!(script.starts_with("#compdef cdpjob\n"), "{}", &script[..80]);
    assert!(script.contains("\n_cdpjob() {\n"));
    for command in subcommands() {
        assert!(
            script.contains(&format!("\n'{command}:")),
            "{command} missing"
        );
    }
    if installed("zsh") {
        let path = ws.write("_cdpjob", &script);
        let out = std::process::Command::new("zsh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "SKIPPED: zsh is not installed: the zsh script was checked for its structure only"
        );
    }
}

#[test]
fn the_fish_script_names_every_subcommand() {
    let ws = Workspace::new();
    let script = completions(&ws, "fish");
    for command in subcommands() {
        assert!(
            script.contains(&format!("-f -a \"{command}\" -d '")),
            "{command} missing"
        );
    }
    assert!(
        script
            .contains("complete -c cdpjob -n \"__fish_cdpjob_using_subcommand run\" -s q -l quiet")
    );
    if installed("fish") {
        let path = ws.write("cdpjob.fish", &script);
        let out = std::process::Command::new("fish")
            .arg("--no-execute")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "SKIPPED: fish is not installed: the fish script was checked for its structure only"
        );
    }
}

#[test]
fn an_unknown_shell_is_refused() {
    let ws = Workspace::new();
    let out = run(ws.cmd(&["completions", "powershell"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("possible values: bash, zsh, fish"),
        "{}",
        out.stderr
    );
}

/// An import that says things on stderr besides its summary: the `run directory:` line, a
/// sync state (`sync: changed`) and a `max_rejected` pre-pass; one of its two rows is
/// rejected (exit 1).
fn chatty_import(ws: &Workspace) {
    ws.write("leads.csv", "name,phone\nAnn,13912345678\nBob,n/a\n");
    ws.write(
        "job.yaml",
        format!("{API}source: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  sms_phone: \"{{{{ row.phone | phone('86') }}}}\"\nsync: changed\nguard: {{max_rejected: 5}}\n"),
    );
}

/// The run's summary is the whole of stdout, and stderr is empty.
#[track_caller]
fn only_the_summary(out: &Output, code: i32) {
    assert_eq!(out.code, code, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr, "", "stderr with -q");
    assert!(
        out.stdout.starts_with("run ") && out.stdout.contains("\nrun directory: "),
        "{}",
        out.stdout
    );
}

/// The run directory a summary names.
fn run_dir_of(summary: &str) -> String {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("run directory: "))
        .expect("a run directory line")
        .to_string()
}

#[test]
fn quiet_runs_print_only_their_summary() {
    let ws = Workspace::new();
    chatty_import(&ws);
    // Without -q, the informational lines this test expects -q to silence.
    let loud = run(ws.cmd(&["run", "job.yaml"]));
    assert_eq!(loud.code, 1, "{}", loud.stderr);
    for line in ["guard max_rejected 5: ", "run directory: ", "sync: "] {
        assert!(loud.stderr.contains(line), "{line:?} in:\n{}", loud.stderr);
    }

    let quiet = run(ws.cmd(&["run", "-q", "job.yaml"]));
    only_the_summary(&quiet, 1);
    let dir = run_dir_of(&quiet.stdout);

    // resume of a finished run: its "nothing to do" line is informational too.
    let loud = run(ws.cmd(&["resume", &dir]));
    assert!(
        loud.stderr.contains("has already finished"),
        "{}",
        loud.stderr
    );
    only_the_summary(&run(ws.cmd(&["resume", "--quiet", &dir])), 1);

    // retry of its rejected row (still rejected: the job is unchanged).
    let loud = run(ws.cmd(&["retry", &dir]));
    assert!(loud.stderr.contains("run directory: "), "{}", loud.stderr);
    only_the_summary(&run(ws.cmd(&["retry", "-q", &dir])), 1);
}

#[test]
fn a_quiet_export_prints_only_its_summary() {
    let ws = Workspace::new();
    let job = read(&repo().join("jobs/export-customers.yaml"))
        .replace("../exports/", "exports/")
        .replace("root: ../runs", "root: runs");
    ws.write("export.yaml", job);
    let loud = run(ws.cmd(&["run", "export.yaml"]));
    assert_eq!(loud.code, 0, "{}", loud.stderr);
    assert!(loud.stderr.contains("run directory: "), "{}", loud.stderr);
    only_the_summary(&run(ws.cmd(&["run", "-q", "export.yaml"])), 0);
}

#[test]
fn quiet_keeps_errors() {
    let ws = Workspace::new();
    chatty_import(&ws);
    let out = run(ws.cmd(&["run", "-q", "missing.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("missing.yaml:1:1: cannot read the job file: "),
        "{}",
        out.stderr
    );
    // A run another one holds the lock of: refused (exit 3) with its error on stderr.
    let lock = ws.path("runs/t/.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let held = std::fs::File::create(&lock).unwrap();
    held.try_lock().unwrap();
    let out = run(ws.cmd(&["run", "-q", "job.yaml"]));
    drop(held);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
}
