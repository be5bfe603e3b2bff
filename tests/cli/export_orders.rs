//! Exports that assume no sort order (SPEC §11, §12 R16, R17): against a simulator that pages
//! ascending, descending or shuffled, one window or parallel sub-windows, every customer is
//! exported exactly once — across kills, failpoints and incremental runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

#[cfg(feature = "failpoints")]
use crate::common::crash_at;
use crate::common::{SimProcess, Workspace, read, run};
use crate::export::{
    cmd, csv_records, export, export_job, exported_ids, out_files, run_dirs, seed, sim_ids, summary,
};

const ORDERS: [&str; 3] = ["asc", "desc", "shuffled"];

/// A week of generated customers, `created_at` spread over it.
const WEEK: &str = "2024-01-01 00:00:00..2024-01-08 00:00:00";
const WEEK_QUERY: &str =
    "  start_time: \"2024-01-01 00:00:00\"\n  end_time: \"2024-01-08 00:00:00\"\n";

fn seeded_sim(order: &str, customers: u64, extra: &[&str]) -> SimProcess {
    let n = customers.to_string();
    let mut args = vec![
        "--order",
        order,
        "--seed-customers",
        &n,
        "--seed-window",
        WEEK,
    ];
    args.extend_from_slice(extra);
    SimProcess::start(&args)
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The sub-window (of `n` equal ones over the week) a `created_at` falls in.
fn window_of(created_at: &str, n: u32) -> u32 {
    let t: jiff::civil::DateTime = created_at.replace(" ", "T").parse().unwrap();
    let from = jiff::civil::date(2024, 1, 1).at(0, 0, 0, 0);
    let secs = from.until((jiff::Unit::Second, t)).unwrap().get_seconds();
    ((secs * i64::from(n)) / (7 * 86_400)) as u32
}

#[test]
fn one_window_follows_the_cursor_in_every_order() {
    for order in ORDERS {
        let sim = SimProcess::start(&["--order", order]);
        seed(&sim, 1, 260);
        let ws = Workspace::new();
        ws.write("job.yaml", export_job(&sim.url, "", "  columns: [id]\n"));
        let s = export(&ws, "job.yaml");
        assert_eq!(
            (s["status"].as_str(), s["rows"].as_u64()),
            (Some("finished"), Some(260)),
            "{order}"
        );
        let ids = exported_ids(Path::new(s["output"].as_str().unwrap()));
        assert_eq!(
            sorted(ids.clone()),
            sorted(sim_ids(&sim)),
            "{order}: each customer once"
        );
        let numbers: Vec<i64> = ids.iter().map(|i| i.parse().unwrap()).collect();
        let ascending = numbers.windows(2).all(|w| w[0] < w[1]);
        let descending = numbers.windows(2).all(|w| w[0] > w[1]);
        match order {
            "asc" => assert!(ascending, "{order}"),
            "desc" => assert!(descending, "{order}"),
            _ => assert!(!ascending && !descending, "shuffled really is"),
        }
        let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
        assert_eq!(state["rows"], 260, "{order}");
    }
}

#[test]
fn incremental_runs_cover_adjacent_windows_in_every_order() {
    for order in ["desc", "shuffled"] {
        let sim = SimProcess::start(&["--order", order]);
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
        for round in 0..3u64 {
            seed(&sim, round * 100 + 1, round * 100 + 60);
            // created_at has whole seconds: the run starts in a later second than the seeding.
            std::thread::sleep(Duration::from_millis(1100));
            let out = run(cmd(&ws, &["run", "job.yaml", "--json"]));
            assert_eq!(out.code, 0, "{order}: {}{}", out.stdout, out.stderr);
            let ids = exported_ids(Path::new(summary(&out.stdout)["output"].as_str().unwrap()));
            assert_eq!(ids.len(), 60, "{order} round {round}: only the new ones");
            all.extend(ids);
        }
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "{order}: no customer in two exports"
        );
        assert_eq!(sorted(all), sorted(sim_ids(&sim)), "{order}: no gap");
    }
}

#[test]
fn parallel_windows_export_each_customer_once_window_by_window() {
    for order in ORDERS {
        let sim = seeded_sim(order, 3_000, &[]);
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(
                &sim.url,
                &format!("{WEEK_QUERY}  parallel: 4\n"),
                "  columns: [id, created_at]\n",
            ),
        );
        let s = export(&ws, "job.yaml");
        assert_eq!(s["rows"], 3_000, "{order}: {s}");
        let path = Path::new(s["output"].as_str().unwrap());
        let ids = exported_ids(path);
        assert_eq!(sorted(ids), sorted(sim_ids(&sim)), "{order}");
        // 16 sub-windows, joined in time order: a row's window never goes back.
        let (_, records) = csv_records(path);
        let windows: Vec<u32> = records.iter().map(|r| window_of(&r[1], 16)).collect();
        assert!(
            windows.windows(2).all(|w| w[0] <= w[1]),
            "{order}: out of time order"
        );
        assert_eq!(out_files(&ws).len(), 1, "{order}: {:?}", out_files(&ws));
        let dir = run_dirs(&ws).pop().unwrap();
        assert!(
            !dir.join("windows").exists(),
            "the windows' files are cleaned up"
        );
        let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
        assert_eq!(
            state["last_end_time"], "2024-01-08 00:00:00",
            "the whole window's end"
        );
        // Four workers, so requests were in flight together.
        let stats = sim.get("/__sim/stats");
        assert!(stats["max_in_flight"].as_u64().unwrap() > 1, "{stats}");
    }
}

/// SIGKILL a parallel export (and sometimes its resume) at random moments, in descending and
/// shuffled order; the resume writes every customer exactly once.
#[test]
fn the_parallel_export_kill_test() {
    let mut rng = fastrand::Rng::with_seed(2028);
    let mut interrupted = 0;
    for (trial, order) in ["desc", "shuffled"].iter().cycle().take(8).enumerate() {
        // One customer every 600 s, so some sit exactly on the sub-windows' ends, and a
        // simulator that counts a window's end inside it: those come back from two windows.
        let sim = seeded_sim(
            order,
            1_008,
            &["--latency-ms", "15", "--drop", "0.02", "--inclusive-end"],
        );
        let want = sorted(sim_ids(&sim));
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(
                &sim.url,
                &format!("{WEEK_QUERY}  parallel: 4\n"),
                "  columns: [id]\n",
            ),
        );
        let spawn = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_cdpjob"))
                .current_dir(ws.dir.path())
                .args(args)
                .env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
                .env("NXCLOUD_ACCESS_SECRET", "cdpjob-sim-secret")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut child = spawn(&["run", "job.yaml"]);
        // The kill lands a random moment after the run has begun (its manifest written), not
        // after a fixed time from the start: on a loaded machine the start alone can take
        // longer than the pause, and the kill would find no run to interrupt.
        let began = std::time::Instant::now();
        while run_dirs(&ws).is_empty()
            && began.elapsed() < Duration::from_secs(20)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..200)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let Some(dir) = run_dirs(&ws).pop() else {
            continue;
        };
        if status.success() {
            continue;
        }
        interrupted += 1;
        let d = dir.to_str().unwrap().to_string();
        if rng.bool() {
            let mut child = spawn(&["resume", &d]);
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
            let _ = child.kill();
            let _ = child.wait();
        }
        let out = run(cmd(&ws, &["resume", &d, "--json"]));
        assert_eq!(
            out.code, 0,
            "trial {trial} ({order}): {}{}",
            out.stdout, out.stderr
        );
        let s = summary(&out.stdout);
        assert_eq!(s["rows"], 1_008, "trial {trial} ({order})");
        let got = sorted(exported_ids(Path::new(s["output"].as_str().unwrap())));
        assert_eq!(got, want, "trial {trial} ({order})");
    }
    assert!(
        interrupted >= 4,
        "only {interrupted} trials were killed mid-export"
    );
}

/// Crash at each boundary of a parallel export's write path, then resume.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_every_parallel_export_boundary_is_followed_by_a_correct_resume() {
    let sim = seeded_sim("desc", 800, &[]);
    let want = sorted(sim_ids(&sim));
    for (point, nth) in [
        ("export_before_checkpoint", "1"),
        ("export_before_checkpoint", "9"),
        ("atomic_before_rename", "5"),
        ("export_before_rename", "1"),
        ("export_after_link", "1"),
        ("export_before_state", "1"),
    ] {
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(
                &sim.url,
                &format!("{WEEK_QUERY}  parallel: 4\n"),
                "  columns: [id]\n",
            ),
        );
        crash_at(cmd(&ws, &["run", "job.yaml"]), point, nth);
        let dir = run_dirs(&ws).pop().unwrap();
        let out = run(cmd(&ws, &["resume", dir.to_str().unwrap(), "--json"]));
        assert_eq!(out.code, 0, "{point}:{nth}: {}{}", out.stdout, out.stderr);
        let s = summary(&out.stdout);
        let got = sorted(exported_ids(Path::new(s["output"].as_str().unwrap())));
        assert_eq!(got, want, "{point}:{nth}");
        assert_eq!(
            out_files(&ws).len(),
            1,
            "{point}:{nth}: {:?}",
            out_files(&ws)
        );
        let state: Value = serde_json::from_str(&read(&ws.path("runs/e/state.json"))).unwrap();
        assert_eq!(state["rows"], 800, "{point}:{nth}");
    }
}

/// A parallel export in every format: the sub-windows are joined first, then the JSONL is
/// projected and the workbook written from the joined pages; the same customers each time.
#[test]
fn parallel_windows_in_every_format_hold_the_same_customers() {
    let sim = seeded_sim("shuffled", 600, &[]);
    let want = sorted(sim_ids(&sim));
    let ws = Workspace::new();
    let query = format!("{WEEK_QUERY}  parallel: 3\n");
    ws.write(
        "csv.yaml",
        export_job(
            &sim.url,
            &query,
            "  columns: [id, full_name]\n  bom: true\n",
        )
        .replace("name: e", "name: c"),
    );
    ws.write(
        "jsonl.yaml",
        export_job(
            &sim.url,
            &query,
            "  format: jsonl\n  columns: [id, full_name]\n",
        )
        .replace("name: e", "name: j"),
    );
    ws.write(
        "xlsx.yaml",
        export_job(
            &sim.url,
            &query,
            "  format: xlsx\n  columns: [id, full_name]\n",
        )
        .replace("name: e", "name: x")
        .replace(".csv\"", ".xlsx\""),
    );
    let csv = export(&ws, "csv.yaml");
    let text = read(Path::new(csv["output"].as_str().unwrap()));
    assert!(
        text.starts_with("\u{feff}id,full_name\n"),
        "one BOM, then the header"
    );
    assert_eq!(text.matches('\u{feff}').count(), 1);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, want, "csv");

    let jsonl = export(&ws, "jsonl.yaml");
    let objects = crate::common::jsonl(Path::new(jsonl["output"].as_str().unwrap()));
    let mut ids: Vec<String> = objects
        .iter()
        .map(|o| {
            let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["id", "full_name"], "exactly the columns, in order");
            o["id"].to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, want, "jsonl");

    let xlsx = export(&ws, "xlsx.yaml");
    let sheets = crate::formats::sheets(Path::new(xlsx["output"].as_str().unwrap()));
    assert_eq!(sheets.len(), 1);
    let rows = &sheets[0].1;
    assert_eq!(rows[0], ["id", "full_name"]);
    let mut ids: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    ids.sort();
    assert_eq!(ids, want, "xlsx");
}

/// Whether a window's end is inside it, the vendor does not say: against a simulator that
/// counts it in, the customers on the sub-windows' boundaries come back from two windows and
/// are written once.
#[test]
fn customers_on_a_boundary_of_two_sub_windows_are_written_once() {
    // 1,008 customers over the week: one every 600 s; the 16 sub-windows of parallel 4 are
    // 37,800 s long, a multiple of 600, so 15 customers sit on inner boundaries.
    let sim = seeded_sim("asc", 1_008, &["--inclusive-end"]);
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(
            &sim.url,
            &format!("{WEEK_QUERY}  parallel: 4\n"),
            "  columns: [id, created_at]\n",
        ),
    );
    let s = export(&ws, "job.yaml");
    assert_eq!(s["rows"], 1_008, "{s}");
    let ids = exported_ids(Path::new(s["output"].as_str().unwrap()));
    assert_eq!(sorted(ids), sorted(sim_ids(&sim)));
    // The simulator really did answer those twice: the journal counts, per page, the
    // customers another window had written already.
    let dir = run_dirs(&ws).pop().unwrap();
    let pages: Vec<Value> = read(&dir.join("events.jsonl"))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "page")
        .collect();
    let written: u64 = pages.iter().map(|e| e["customers"].as_u64().unwrap()).sum();
    let twice: u64 = pages.iter().filter_map(|e| e["elsewhere"].as_u64()).sum();
    assert_eq!(written, 1_008);
    assert_eq!(twice, 15, "one customer on each inner boundary");
}

/// A stopped export reports what its windows committed: the summary's customers and pages
/// are the checkpoints' (as `status` reads them), with one window or several.
#[test]
fn a_stopped_export_reports_what_its_windows_committed() {
    for parallel in [1, 4] {
        let sim = seeded_sim("desc", 5_000, &["--latency-ms", "40"]);
        let ws = Workspace::new();
        ws.write(
            "job.yaml",
            export_job(
                &sim.url,
                &format!("{WEEK_QUERY}  parallel: {parallel}\n"),
                "  columns: [id]\n",
            ),
        );
        let running = ws.spawn(&["run", "job.yaml", "--json"], crate::common::sim_env(None));
        let root = ws.path("runs/e");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let pages: u64 = run_dirs(&ws)
                .last()
                .and_then(|d| std::fs::read_to_string(d.join("events.jsonl")).ok())
                .map_or(0, |t| t.matches("\"event\":\"page\"").count() as u64);
            if pages >= 6 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no pages at {}",
                root.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        running.signal("TERM");
        let out = running.wait_within(Duration::from_secs(20));
        assert_eq!(out.code, Some(3), "{}", out.stderr);
        let summary = summary(&out.stdout);
        let dir = run_dirs(&ws).pop().unwrap();
        let status = run(cmd(&ws, &["status", dir.to_str().unwrap(), "--json"]));
        let status = crate::export::summary(&status.stdout);
        assert!(
            summary["rows"].as_u64().unwrap() > 0,
            "parallel {parallel}: {summary}"
        );
        assert_eq!(summary["rows"], status["rows"], "parallel {parallel}");
        assert_eq!(summary["pages"], status["pages"], "parallel {parallel}");
    }
}
