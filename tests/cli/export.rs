//! `cdpjob run`, `resume` and `status` of query_export jobs against a real `cdpjob sim`
//! process: every customer exported exactly once, ids exact, across kills and resumes, and
//! consecutive incremental runs covering adjacent windows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

#[cfg(feature = "failpoints")]
use crate::common::crash_at;
use crate::common::{SimProcess, Workspace, jsonl, read, run, with_sim_credentials};

const DEFAULT_COLUMNS: &str = "id,first_name,last_name,full_name,whatsApp_phone,sms_phone,viber_phone,line,messenger,instagram,email,country,birthday,remark,gender,weight,source_type,source_channel_key,status,whatApp_subscribe,sms_subscribe,tenant_id,created_at,updated_at";

fn phone(i: u64) -> String {
    format!("86139{i:08}")
}

/// Import customers `from..=to` into the simulator with `cdpjob run`: customer i has the
/// phone 86139<i>, the tag `even` when i is even and `third` when i is a multiple of 3, and
/// a custom field `customize_1_14` = `level-<i mod 4>`.
pub(crate) fn seed(sim: &SimProcess, from: u64, to: u64) {
    let ws = Workspace::new();
    let mut csv = String::from("n,phone,tags\n");
    for i in from..=to {
        let mut tags = Vec::new();
        if i.is_multiple_of(2) {
            tags.push("even");
        }
        if i.is_multiple_of(3) {
            tags.push("third");
        }
        csv.push_str(&format!("{i},{},\"{}\"\n", phone(i), tags.join(",")));
    }
    ws.write("seed.csv", csv);
    ws.write(
        "seed.yaml",
        format!(
            "version: 1\nname: seed\nkind: batch_create\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  concurrency: 4\n  max_retries: 8\nsource: {{type: csv, path: seed.csv}}\nmapping:\n  full_name: \"Customer {{{{ row.n }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\n  tagStr: \"{{{{ row.tags }}}}\"\n  customize_field:\n    customize_1_14: \"level-{{{{ row.n | int % 4 }}}}\"\n",
            sim.url
        ),
    );
    let out = run(cmd(&ws, &["run", "seed.yaml", "--json"]));
    assert_eq!(out.code, 0, "seeding failed: {}{}", out.stdout, out.stderr);
}

/// An export job against `url`: `query` and `output` lines are added as given.
pub(crate) fn export_job(url: &str, query: &str, output: &str) -> String {
    format!(
        "version: 1\nname: e\nkind: query_export\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 8\n  timeout_secs: 5\nquery:\n  page_size: 50\n{query}output:\n  path: \"out/customers-{{{{ run.id }}}}.{}\"\n{output}",
        if output.contains("jsonl") {
            "jsonl"
        } else {
            "csv"
        }
    )
}

pub(crate) fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

/// The summary `--json` printed.
#[track_caller]
pub(crate) fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `cdpjob run JOB --json`, which must exit 0: its summary.
#[track_caller]
pub(crate) fn export(ws: &Workspace, job: &str) -> Value {
    let out = run(cmd(ws, &["run", job, "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    summary(&out.stdout)
}

/// A CSV file as its header and records.
pub(crate) fn csv_records(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let records = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, records)
}

/// The simulator's customer ids, as their exact decimal text.
pub(crate) fn sim_ids(sim: &SimProcess) -> Vec<String> {
    sim.customers()
        .iter()
        .map(|c| c["id"].to_string())
        .collect()
}

/// The first column of a CSV export, checked to hold no id twice.
#[track_caller]
pub(crate) fn exported_ids(path: &Path) -> Vec<String> {
    let (header, records) = csv_records(path);
    assert_eq!(header[0], "id");
    let ids: Vec<String> = records.iter().map(|r| r[0].clone()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id twice in {}", path.display());
    ids
}

pub(crate) fn run_dirs(ws: &Workspace) -> Vec<PathBuf> {
    crate::common::run_dirs(&ws.path("runs/e"))
}

/// The files in the output directory, without the sidecars of ids beside a partial output
/// (R17: they go with the partial file, and once the export is in place they are gone).
pub(crate) fn out_files(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ws.path("out"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".partial.seen"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn exports_2500_customers_exactly_once_to_csv_and_to_jsonl() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 2500);
    let all = sim.customers();
    assert_eq!(all.len(), 2500);

    let ws = Workspace::new();
    ws.write("csv.yaml", export_job(&sim.url, "", ""));
    let s = export(&ws, "csv.yaml");
    assert_eq!(
        (
            s["status"].as_str(),
            s["rows"].as_u64(),
            s["pages"].as_u64()
        ),
        (Some("finished"), Some(2500), Some(50))
    );
    let csv_path = PathBuf::from(s["output"].as_str().unwrap());
    // Ids exact (they are all far above 2^53), in the API's order, each once.
    assert_eq!(exported_ids(&csv_path), sim_ids(&sim));
    let (header, records) = csv_records(&csv_path);
    assert_eq!(header.join(","), DEFAULT_COLUMNS);
    let phone_col = header.iter().position(|h| h == "whatsApp_phone").unwrap();
    let phones: BTreeSet<String> = records.iter().map(|r| r[phone_col].clone()).collect();
    assert_eq!(phones, (1..=2500).map(phone).collect());
    // Only the finished file is left, readable by its owner only.
    assert_eq!(out_files(&ws).len(), 1, "{:?}", out_files(&ws));
    let leftovers: Vec<_> = std::fs::read_dir(ws.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".seen"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the sidecar is removed: {leftovers:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&csv_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // JSON Lines: each customer exactly as the API holds it.
    ws.write(
        "jsonl.yaml",
        export_job(&sim.url, "", "  format: jsonl\n").replace("name: e", "name: j"),
    );
    let s = export(&ws, "jsonl.yaml");
    let lines = jsonl(Path::new(s["output"].as_str().unwrap()));
    assert_eq!(lines, all);
    let text = read(Path::new(s["output"].as_str().unwrap()));
    for c in all.iter().take(50) {
        assert!(
            text.contains(&format!("{{\"id\":{},", c["id"])),
            "id text kept exactly"
        );
    }

    // status reports pages and rows; resuming the finished export sends nothing.
    let dir = ws.dir.path().join(s["run_dir"].as_str().unwrap());
    let out = run(cmd(&ws, &["status", dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let st = summary(&out.stdout);
    assert_eq!(
        (
            st["status"].as_str(),
            st["pages"].as_u64(),
            st["rows"].as_u64()
        ),
        (Some("finished"), Some(50), Some(2500))
    );
    let out = run(cmd(&ws, &["status", dir.to_str().unwrap()]));
    assert!(
        out.stdout.contains("exported 2500 customers in 50 pages"),
        "{}",
        out.stdout
    );
    let before = read(Path::new(s["output"].as_str().unwrap()));
    let requests_before = sim.get("/__sim/stats")["requests"].clone();
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("already finished"), "{}", out.stderr);
    assert_eq!(read(Path::new(s["output"].as_str().unwrap())), before);
    assert_eq!(sim.get("/__sim/stats")["requests"], requests_before);
}

#[test]
fn columns_choose_and_order_the_csv_and_flatten_tags_and_custom_fields() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 12);
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(
            &sim.url,
            "",
            "  columns: [whatsApp_phone, id, tags, customize_1_14, full_name, customize_field]\n",
        ),
    );
    let out = run(cmd(&ws, &["run", "job.yaml", "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let path = PathBuf::from(summary(&out.stdout)["output"].as_str().unwrap());
    let (header, records) = csv_records(&path);
    assert_eq!(
        header,
        [
            "whatsApp_phone",
            "id",
            "tags",
            "customize_1_14",
            "full_name",
            "customize_field"
        ]
    );
    assert_eq!(records.len(), 12);
    let ids = sim_ids(&sim);
    for (k, r) in records.iter().enumerate() {
        let i = k as u64 + 1;
        assert_eq!(r[0], phone(i));
        assert_eq!(r[1], ids[k]);
        let mut tags: Vec<&str> = r[2].split(',').filter(|t| !t.is_empty()).collect();
        tags.sort();
        let mut want = Vec::new();
        if i.is_multiple_of(2) {
            want.push("even");
        }
        if i.is_multiple_of(3) {
            want.push("third");
        }
        assert_eq!(tags, want, "row {i}: {r:?}");
        assert_eq!(r[3], format!("level-{}", i % 4));
        assert_eq!(r[4], format!("Customer {i}"));
        let custom: Value = serde_json::from_str(&r[5]).unwrap();
        assert_eq!(custom["customize_1_14"], format!("level-{}", i % 4));
    }
}

#[test]
fn tag_filters_combine_with_and_and_with_or() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 60);
    // Tag ids as the API shows them on customers.
    let mut tag_ids = BTreeMap::new();
    for c in sim.customers() {
        for t in c["tags"].as_array().unwrap() {
            tag_ids.insert(
                t["tag_name"].as_str().unwrap().to_string(),
                t["id"].as_i64().unwrap(),
            );
        }
    }
    let (even, third) = (tag_ids["even"], tag_ids["third"]);
    let ws = Workspace::new();
    for (logic, keep) in [
        ("and", (|i: u64| i.is_multiple_of(6)) as fn(u64) -> bool),
        ("or", |i: u64| i.is_multiple_of(2) || i.is_multiple_of(3)),
    ] {
        let name = format!("tags-{logic}");
        ws.write(
            &format!("{name}.yaml"),
            export_job(
                &sim.url,
                &format!("  tags: [{{id: {even}, tag_name: even}}, {{id: \"{{{{ vars.third }}}}\", tag_name: third}}]\n  tags_logic_type: {logic}\n"),
                "  columns: [whatsApp_phone, tags]\n",
            )
            .replace("name: e", &format!("name: {name}"))
            .replace("query:", &format!("vars: {{third: \"{third}\"}}\nquery:")),
        );
        let out = run(cmd(&ws, &["run", &format!("{name}.yaml"), "--json"]));
        assert_eq!(out.code, 0, "{logic}: {}{}", out.stdout, out.stderr);
        let (_, records) = csv_records(Path::new(summary(&out.stdout)["output"].as_str().unwrap()));
        let phones: BTreeSet<String> = records.iter().map(|r| r[0].clone()).collect();
        let want: BTreeSet<String> = (1..=60).filter(|i| keep(*i)).map(phone).collect();
        assert_eq!(phones, want, "tags_logic_type {logic}");
    }
}

/// Two scheduled runs with customers added in between: the second exports exactly the new
/// ones, and together they hold every customer once.
#[test]
fn consecutive_incremental_runs_cover_adjacent_windows() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 120);
    // created_at has whole seconds and windows are half-open [start, end): the first run
    // must start in a later second than the seeding for its window to hold all of it.
    std::thread::sleep(Duration::from_millis(1100));
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(
            &sim.url,
            "  start_time: \"{{ state.last_end_time | default('2024-01-01 00:00:00') }}\"\n  end_time: \"{{ run.started_at | datetime }}\"\n",
            "  columns: [id, whatsApp_phone]\n",
        ),
    );
    let first = export(&ws, "job.yaml");
    assert_eq!(first["rows"], 120);
    let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
    let manifest: Value = serde_json::from_str(&read(
        &ws.dir
            .path()
            .join(first["run_dir"].as_str().unwrap())
            .join("manifest.json"),
    ))
    .unwrap();
    assert_eq!(
        manifest["kind"]["query_export"]["request"]["start_time"],
        "2024-01-01 00:00:00"
    );
    assert_eq!(
        state["last_end_time"],
        manifest["kind"]["query_export"]["request"]["end_time"]
    );
    assert_eq!(state["last_id"].to_string(), *sim_ids(&sim).last().unwrap());

    // plan shows the state it read and the window the next run would ask for.
    let out = run(cmd(&ws, &["plan", "job.yaml", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = summary(&out.stdout);
    assert_eq!(plan["state"]["last_end_time"], state["last_end_time"]);
    assert_eq!(plan["first_request"]["start_time"], state["last_end_time"]);

    seed(&sim, 1001, 1080);
    std::thread::sleep(Duration::from_millis(1100));
    let second = export(&ws, "job.yaml");
    let (_, records) = csv_records(Path::new(second["output"].as_str().unwrap()));
    let phones: BTreeSet<String> = records.iter().map(|r| r[1].clone()).collect();
    assert_eq!(phones, (1001..=1080).map(phone).collect());

    let mut both = exported_ids(Path::new(first["output"].as_str().unwrap()));
    both.extend(exported_ids(Path::new(second["output"].as_str().unwrap())));
    assert_eq!(both, sim_ids(&sim), "no gap, no overlap");

    // Nothing new: a header and no customers.
    std::thread::sleep(Duration::from_millis(1100));
    let third = export(&ws, "job.yaml");
    assert_eq!(third["rows"], 0);
    assert_eq!(
        read(Path::new(third["output"].as_str().unwrap())),
        "id,whatsApp_phone\n"
    );
}

/// SIGKILL the real export at random moments (and sometimes its resume), then resume to
/// the end: every customer is in the output exactly once.
#[test]
fn the_export_kill_test() {
    let trials = 12;
    // Half the trials against a simulator paging in descending order (SPEC §11).
    let sims: Vec<SimProcess> = ["asc", "desc"]
        .iter()
        .map(|order| {
            let sim = SimProcess::start(&[
                "--latency-ms",
                "15",
                "--drop",
                "0.03",
                "--seed",
                "7",
                "--order",
                order,
            ]);
            seed(&sim, 1, 1000);
            sim
        })
        .collect();
    let wants: Vec<Vec<String>> = sims
        .iter()
        .map(|sim| {
            let mut ids = sim_ids(sim);
            ids.sort();
            ids
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(2027);
    let mut interrupted = 0;
    for trial in 0..trials {
        let (sim, want) = (&sims[trial % 2], &wants[trial % 2]);
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(&sim.url, "", "  columns: [id, whatsApp_phone]\n"),
        );
        let spawn = |args: &[&str]| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"));
            c.current_dir(ws.dir.path())
                .args(args)
                .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
                .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().unwrap()
        };
        let mut child = spawn(&["run", "job.yaml"]);
        std::thread::sleep(Duration::from_millis(rng.u64(30..900)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let Some(dir) = run_dirs(&ws).pop() else {
            continue; // killed before the run directory existed: nothing to resume
        };
        if status.success() {
            continue; // it finished before the kill
        }
        interrupted += 1;
        let d = dir.to_str().unwrap().to_string();
        if rng.bool() {
            let mut child = spawn(&["resume", &d]);
            std::thread::sleep(Duration::from_millis(rng.u64(0..600)));
            let _ = child.kill();
            let _ = child.wait();
        }
        let out = run(cmd(&ws, &["resume", &d, "--json"]));
        assert_eq!(out.code, 0, "trial {trial}: {}{}", out.stdout, out.stderr);
        let s = summary(&out.stdout);
        assert_eq!(s["rows"], 1000, "trial {trial}");
        let mut got = exported_ids(Path::new(s["output"].as_str().unwrap()));
        let last_written = got.last().cloned();
        got.sort();
        assert_eq!(&got, want, "trial {trial}");
        assert_eq!(
            out_files(&ws).len(),
            1,
            "trial {trial}: {:?}",
            out_files(&ws)
        );
        let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
        assert_eq!(state["rows"], 1000, "trial {trial}");
        assert_eq!(
            Some(state["last_id"].to_string()),
            last_written,
            "trial {trial}"
        );
    }
    assert!(
        interrupted >= 8,
        "only {interrupted} trials were killed mid-export"
    );
}

/// Crash at each boundary of an export's write path, then resume: the same file as if
/// nothing had happened, and the state written once the file is in place.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_every_export_boundary_is_followed_by_a_correct_resume() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 230);
    let want = sim_ids(&sim);
    for (point, nth) in [
        ("export_before_checkpoint", "1"),
        ("export_before_checkpoint", "3"),
        // The first atomic write is the manifest; the next ones are checkpoints.
        ("atomic_before_rename", "3"),
        ("export_before_rename", "1"),
        ("export_after_link", "1"),
        ("export_before_state", "1"),
    ] {
        let ws = Workspace::new();
        ws.write("job.yaml", export_job(&sim.url, "", "  columns: [id]\n"));
        crash_at(cmd(&ws, &["run", "job.yaml"]), point, nth);
        assert!(
            !ws.path("runs/e/state.json").exists(),
            "{point}:{nth}: state before the end"
        );
        let dir = run_dirs(&ws).pop().unwrap();
        let out = run(cmd(&ws, &["resume", dir.to_str().unwrap(), "--json"]));
        assert_eq!(out.code, 0, "{point}:{nth}: {}{}", out.stdout, out.stderr);
        let s = summary(&out.stdout);
        assert_eq!(
            exported_ids(Path::new(s["output"].as_str().unwrap())),
            want,
            "{point}:{nth}"
        );
        assert_eq!(out_files(&ws).len(), 1, "{point}:{nth}");
        let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
        assert_eq!(state["rows"], 230, "{point}:{nth}");
    }
}

#[test]
fn an_existing_output_is_never_overwritten_and_max_records_leaves_the_state_alone() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 30);
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(&sim.url, "  max_records: 12\n", "  columns: [id]\n")
            .replace("customers-{{ run.id }}", "fixed"),
    );
    let s = export(&ws, "job.yaml");
    assert_eq!(s["rows"], 12);
    assert_eq!(exported_ids(&ws.path("out/fixed.csv")), sim_ids(&sim)[..12]);
    assert!(
        !ws.path("runs/e/state.json").exists(),
        "a capped export does not advance the state"
    );

    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("already exists") && out.stderr.contains("run.id"),
        "{}",
        out.stderr
    );
    assert_eq!(exported_ids(&ws.path("out/fixed.csv")).len(), 12);
}

#[test]
fn unknown_columns_are_reported_where_they_are() {
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job("sim", "", "  columns: [id, whats_app_phone, full_nme]\n"),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("job.yaml:14:")
            && out.stderr.contains("did you mean `whatsApp_phone`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `full_name`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 problems found"), "{}", out.stderr);
}

#[test]
fn a_refused_query_stops_the_export_resumably() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url, "", ""));
    let mut c = ws.cmd(&["run", "job.yaml"]);
    c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "wrong");
    let out = run(c);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("1003") && out.stdout.contains("cdpjob resume"),
        "{}",
        out.stdout
    );
    let dir = run_dirs(&ws).pop().unwrap();
    let out = run(cmd(&ws, &["status", dir.to_str().unwrap()]));
    assert!(
        out.stdout.contains("interrupted") && out.stdout.contains("1003"),
        "{}",
        out.stdout
    );
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("exported 0 customers"),
        "{}",
        out.stdout
    );
}

#[test]
fn sigterm_stops_the_export_resumably_and_resume_finishes_it() {
    let sim = SimProcess::start(&["--latency-ms", "40"]);
    seed(&sim, 1, 600);
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url, "", "  columns: [id]\n"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"))
        .current_dir(ws.dir.path())
        .args(["run", "job.yaml", "--json"])
        .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // 12 pages of 40 ms and more: stop it in the middle, once the first page is in (not
    // by the clock alone: on a loaded machine the process may not be up after 250 ms).
    let started = std::time::Instant::now();
    while !run_dirs(&ws)
        .first()
        .is_some_and(|d| d.join("checkpoint.json").exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no page came in"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(60));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["status"], "interrupted");
    assert_eq!(s["stopped_reason"], "interrupted by a signal");
    assert!(s["rows"].as_u64().unwrap() < 600, "{s}");
    assert!(!ws.path("runs/e/state.json").exists());
    let dir = run_dirs(&ws).pop().unwrap();
    let status = run(cmd(&ws, &["status", dir.to_str().unwrap(), "--json"]));
    assert_eq!(summary(&status.stdout)["status"], "interrupted");
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap(), "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let s = summary(&out.stdout);
    assert_eq!(
        exported_ids(Path::new(s["output"].as_str().unwrap())),
        sim_ids(&sim)
    );
}

/// A partial output cut short behind the runner's back is refused, not padded.
#[cfg(feature = "failpoints")]
#[test]
fn a_partial_output_shorter_than_its_checkpoint_is_refused() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 200);
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url, "", "  columns: [id]\n"));
    let mut c = cmd(&ws, &["run", "job.yaml"]);
    c.env("CDPJOB_FAILPOINT", "export_before_checkpoint:3");
    assert_ne!(run(c).code, 0);
    let dir = run_dirs(&ws).pop().unwrap();
    let partial = std::fs::read_dir(ws.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".partial"))
        .unwrap();
    std::fs::write(&partial, "id\n").unwrap();
    let out = run(cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("can be resumed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("fewer than the") && out.stderr.contains("start a new run"),
        "{}",
        out.stderr
    );
    assert_eq!(read(&partial), "id\n", "left as it was");
}

/// A run interrupted, then overtaken by a newer run that finished: resuming the old one
/// neither replaces the newer file nor moves the state's window backwards.
#[cfg(feature = "failpoints")]
#[test]
fn a_late_resume_never_overwrites_a_newer_export_nor_moves_the_state_back() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 150);
    std::thread::sleep(Duration::from_millis(1100));
    for fixed in [true, false] {
        let ws = Workspace::new();
        let mut job = export_job(
            &sim.url,
            "  start_time: \"{{ state.last_end_time | default('2024-01-01 00:00:00') }}\"\n  end_time: \"{{ run.started_at | datetime }}\"\n",
            "  columns: [id]\n",
        );
        if fixed {
            job = job.replace("customers-{{ run.id }}", "fixed");
        }
        ws.write("job.yaml", job);
        let mut c = cmd(&ws, &["run", "job.yaml"]);
        c.env("CDPJOB_FAILPOINT", "export_before_checkpoint:2");
        assert_ne!(run(c).code, 0);
        let old = run_dirs(&ws).pop().unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let newer = run(cmd(&ws, &["run", "job.yaml", "--json"]));
        assert_eq!(newer.code, 0, "{}{}", newer.stdout, newer.stderr);
        assert!(
            newer.stderr.contains(&format!(
                "warning: the export {} did not finish",
                old.strip_prefix(ws.dir.path()).unwrap().display()
            )),
            "{}",
            newer.stderr
        );
        let newer = summary(&newer.stdout);
        let state_after_newer = read(&ws.path("runs/e/state.json"));
        let newer_file = read(Path::new(newer["output"].as_str().unwrap()));

        let out = run(cmd(&ws, &["resume", old.to_str().unwrap()]));
        if fixed {
            // Stopped, resumable once one of the two files is moved (exit 3, SPEC §12 R1).
            assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
            assert!(
                out.stdout.contains("appeared since this export started")
                    && out.stdout.contains("resume with: cdpjob resume"),
                "{}",
                out.stdout
            );
            assert_eq!(
                out_files(&ws).len(),
                2,
                "the partial file is kept: {:?}",
                out_files(&ws)
            );
        } else {
            assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains("changed since this export started"),
                "{}",
                out.stderr
            );
        }
        assert_eq!(
            read(Path::new(newer["output"].as_str().unwrap())),
            newer_file
        );
        assert_eq!(
            read(&ws.path("runs/e/state.json")),
            state_after_newer,
            "fixed={fixed}"
        );
    }
}

/// A query without end_time has no end: it exports everything there is, and records no
/// last_end_time it could not vouch for.
#[test]
fn a_query_without_end_time_records_no_window_end() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 10);
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url, "", "  columns: [id]\n"));
    let s = export(&ws, "job.yaml");
    assert_eq!(
        exported_ids(Path::new(s["output"].as_str().unwrap())),
        sim_ids(&sim)
    );
    let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
    assert!(state.get("last_end_time").is_none(), "{state}");
    assert_eq!(&state["last_id"].to_string(), sim_ids(&sim).last().unwrap());
}

/// max_records: a cap on a page boundary with more to come leaves the state alone; a cap
/// that reaches everything there is is a complete export.
#[test]
fn max_records_on_a_page_boundary() {
    let sim = SimProcess::start(&[]);
    seed(&sim, 1, 120);
    let ids = sim_ids(&sim);
    for (cap, advances) in [(100, false), (120, true), (500, true)] {
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(
                &sim.url,
                &format!("  max_records: {cap}\n"),
                "  columns: [id]\n",
            ),
        );
        let s = export(&ws, "job.yaml");
        let n = cap.min(120);
        assert_eq!(
            exported_ids(Path::new(s["output"].as_str().unwrap())),
            ids[..n],
            "cap {cap}"
        );
        assert_eq!(ws.path("runs/e/state.json").exists(), advances, "cap {cap}");
    }
}

/// Runs back to back, customers created between them with no pause: whatever second each
/// customer lands in, it is in exactly one export.
#[test]
fn back_to_back_incremental_runs_export_each_customer_once() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(
            &sim.url,
            "  start_time: \"{{ state.last_end_time | default('2024-01-01 00:00:00') }}\"\n  end_time: \"{{ run.started_at | datetime }}\"\n",
            "  columns: [id]\n",
        ),
    );
    let mut all = Vec::new();
    for round in 0..4u64 {
        seed(&sim, round * 100 + 1, round * 100 + 40);
        let out = run(cmd(&ws, &["run", "job.yaml", "--json"]));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        all.extend(exported_ids(Path::new(
            summary(&out.stdout)["output"].as_str().unwrap(),
        )));
    }
    std::thread::sleep(Duration::from_millis(1100));
    let out = run(cmd(&ws, &["run", "job.yaml", "--json"]));
    all.extend(exported_ids(Path::new(
        summary(&out.stdout)["output"].as_str().unwrap(),
    )));
    assert_eq!(
        all,
        sim_ids(&sim),
        "each customer in exactly one export, in order"
    );
}

/// `query.parallel` needs both ends of the window and refuses `max_records`; `plan` shows
/// the sub-windows a run would page.
#[test]
fn parallel_windows_are_checked_and_planned() {
    let ws = Workspace::new();
    let job = |query: &str| {
        format!(
            "version: 1\nname: p\nkind: query_export\napi: {{base_url: sim, tenant_id: 123, app_key: k}}\nquery:\n{query}output: {{path: out.csv}}\n"
        )
    };
    ws.write(
        "a.yaml",
        job("  start_time: \"2024-01-01 00:00:00\"\n  parallel: 2\n  max_records: 10\n"),
    );
    let out = run(ws.cmd(&["validate", "a.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("`query.max_records` cannot be used with `query.parallel` > 1")
            && out.stderr.contains("so `query.end_time` is needed"),
        "{}",
        out.stderr
    );
    ws.write(
        "b.yaml",
        job("  start_time: \"2024-01-01 00:00:00\"\n  end_time: \"2024-01-02 00:00:00\"\n  parallel: 2\n"),
    );
    let out = run(ws.cmd(&["plan", "b.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("parallel 2: 8 sub-windows")
            && out
                .stdout
                .contains("  2024-01-01 00:00:00 .. 2024-01-01 03:00:00")
            && out
                .stdout
                .contains("  2024-01-01 21:00:00 .. 2024-01-02 00:00:00"),
        "{}",
        out.stdout
    );
    let out = run(ws.cmd(&["plan", "b.yaml", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["windows"].as_array().unwrap().len(), 8);
}
