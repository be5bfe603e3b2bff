//! The simulator's paging order and seeding as a user chooses them: `cdpjob sim --order …
//! --seed-customers N --seed-window START..END`, and `CDPJOB_SIM_ORDER` /
//! `CDPJOB_SIM_SEED_CUSTOMERS` / `CDPJOB_SIM_SEED_WINDOW` for the embedded simulator of
//! `base_url: sim`. The exports here fit in one page, so whatever paging an export does,
//! its file holds the customers in the order the simulator answered.

use std::path::Path;
use std::time::Duration;

use crate::common::{SimProcess, Workspace, run, with_sim_credentials};

const WINDOW: &str = "2026-01-01 00:00:00..2026-01-11 00:00:00";

/// A query_export job against `base_url`, 50 a page, selecting `query` (YAML lines).
fn export_job(base_url: &str, query: &str) -> String {
    format!(
        "version: 1\nname: e\nkind: query_export\napi:\n  base_url: \"{base_url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\nquery:\n  page_size: 50\n{query}output:\n  path: \"out/customers-{{{{ run.id }}}}.csv\"\n  columns: [id, full_name, created_at]\n"
    )
}

/// `cdpjob run job.yaml --json` in `ws` with the simulator variables `env`, every other
/// simulator variable unset (the caller's environment must not choose for the test).
fn run_export(ws: &Workspace, env: &[(&str, &str)]) -> crate::common::Output {
    let mut cmd = ws.cmd(&["run", "job.yaml", "--json"]);
    with_sim_credentials(&mut cmd);
    for var in [
        "CDPJOB_SIM_ORDER",
        "CDPJOB_SIM_SEED_CUSTOMERS",
        "CDPJOB_SIM_SEED_WINDOW",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd)
}

/// The exported (id, created_at) pairs, in file order, of a successful `run --json`.
#[track_caller]
fn exported(out: &crate::common::Output) -> Vec<(i64, String)> {
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let path = Path::new(summary["output"].as_str().unwrap());
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[2].to_string())
        })
        .collect()
}

fn ids(rows: &[(i64, String)]) -> Vec<i64> {
    rows.iter().map(|(id, _)| *id).collect()
}

fn ascending(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

fn descending(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] > w[1])
}

#[test]
fn the_embedded_simulator_pages_in_the_order_the_environment_names_and_seeds_once() {
    for order in ["asc", "desc", "shuffled"] {
        let ws = Workspace::new();
        ws.write("job.yaml", export_job("sim", ""));
        let env = [
            ("CDPJOB_SIM_ORDER", order),
            ("CDPJOB_SIM_SEED_CUSTOMERS", "30"),
            ("CDPJOB_SIM_SEED_WINDOW", WINDOW),
        ];
        let first = ids(&exported(&run_export(&ws, &env)));
        assert_eq!(first.len(), 30, "{order}: the seeded customers");
        match order {
            "asc" => assert!(ascending(&first), "{first:?}"),
            "desc" => assert!(descending(&first), "{first:?}"),
            _ => assert!(!ascending(&first) && !descending(&first), "{first:?}"),
        }
        // A second run starts another embedded simulator on the same state: it is not
        // seeded again, and it answers in the same order.
        let second = ids(&exported(&run_export(&ws, &env)));
        assert_eq!(second, first, "{order}: the same customers, the same order");
    }
    // Unset, the order is asc.
    let ws = Workspace::new();
    ws.write("job.yaml", export_job("sim", ""));
    let env = [
        ("CDPJOB_SIM_SEED_CUSTOMERS", "30"),
        ("CDPJOB_SIM_SEED_WINDOW", WINDOW),
    ];
    assert!(ascending(&ids(&exported(&run_export(&ws, &env)))));
}

#[test]
fn a_window_query_of_half_the_seeded_window_exports_about_half_the_customers() {
    let ws = Workspace::new();
    ws.write(
        "job.yaml",
        export_job(
            "sim",
            "  start_time: \"2026-01-01 00:00:00\"\n  end_time: \"2026-01-06 00:00:00\"\n",
        ),
    );
    let env = [
        ("CDPJOB_SIM_SEED_CUSTOMERS", "200"),
        ("CDPJOB_SIM_SEED_WINDOW", WINDOW),
    ];
    let rows = exported(&run_export(&ws, &env));
    assert!((90..=110).contains(&rows.len()), "{} customers", rows.len());
    for (id, at) in &rows {
        assert!(
            at.as_str() >= "2026-01-01T00:00:00" && at.as_str() < "2026-01-06T00:00:00",
            "{id} created at {at}, outside the window"
        );
    }
    // The other half holds the rest.
    ws.write(
        "job.yaml",
        export_job(
            "sim",
            "  start_time: \"2026-01-06 00:00:00\"\n  end_time: \"2026-01-11 00:00:00\"\n",
        ),
    );
    let rest = exported(&run_export(&ws, &env));
    assert_eq!(rows.len() + rest.len(), 200);
    assert!(
        rest.iter()
            .all(|(_, at)| at.as_str() >= "2026-01-06T00:00:00")
    );
}

#[test]
fn a_wrong_simulator_variable_is_exit_2_naming_what_it_takes() {
    let ws = Workspace::new();
    ws.write("job.yaml", export_job("sim", ""));
    /// Variables set, and what the message must name.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            &[("CDPJOB_SIM_ORDER", "sideways")],
            &["CDPJOB_SIM_ORDER", "\"sideways\"", "asc, desc or shuffled"],
        ),
        (
            &[
                ("CDPJOB_SIM_SEED_CUSTOMERS", "10"),
                ("CDPJOB_SIM_SEED_WINDOW", "2026-01-01..2026-01-11"),
            ],
            &["CDPJOB_SIM_SEED_WINDOW", "yyyy-MM-dd HH:mm:ss"],
        ),
        (
            &[("CDPJOB_SIM_SEED_CUSTOMERS", "10")],
            &["without CDPJOB_SIM_SEED_WINDOW"],
        ),
    ];
    for (env, says) in cases {
        let out = run_export(&ws, env);
        assert_eq!(out.code, 2, "{env:?}: {}{}", out.stdout, out.stderr);
        for s in says {
            assert!(
                out.stderr.contains(s),
                "{env:?}: no {s:?} in {}",
                out.stderr
            );
        }
    }
    // Nothing was seeded by the refused runs.
    let out = run_export(&ws, &[]);
    assert_eq!(exported(&out), Vec::new());
}

#[test]
fn cdpjob_sim_takes_the_order_and_seeding_flags() {
    let sim = SimProcess::start(&[
        "--order",
        "desc",
        "--seed-customers",
        "40",
        "--seed-window",
        WINDOW,
    ]);
    let customers = sim.customers();
    assert_eq!(customers.len(), 40);
    assert!(customers.iter().all(|c| {
        let at = c["created_at"].as_str().unwrap();
        ("2026-01-01T00:00:00".."2026-01-11T00:00:00").contains(&at)
    }));
    let ws = Workspace::new();
    ws.write("job.yaml", export_job(&sim.url, ""));
    let rows = ids(&exported(&run_export(&ws, &[])));
    assert_eq!(rows.len(), 40);
    assert!(descending(&rows), "{rows:?}");
    // A --state simulator restarted with the same flags keeps its customers: no seeding twice.
    let state = ws.path("sim.jsonl");
    let state = state.to_str().unwrap();
    let args = [
        "--state",
        state,
        "--seed-customers",
        "25",
        "--seed-window",
        WINDOW,
    ];
    drop(SimProcess::start(&args));
    let again = SimProcess::start(&args);
    assert_eq!(again.customers().len(), 25);
}

#[test]
fn cdpjob_sim_refuses_a_wrong_order_or_half_a_seeding() {
    let ws = Workspace::new();
    let no_env: Vec<(&str, &str)> = Vec::new();
    for (args, says) in [
        (&["--order", "random"][..], "asc, desc or shuffled"),
        (&["--seed-customers", "5"][..], "--seed-window"),
        (
            &[
                "--seed-customers",
                "5",
                "--seed-window",
                "2026-01-11 00:00:00..2026-01-01 00:00:00",
            ][..],
            "end must be after",
        ),
        (
            &["--seed-customers", "0", "--seed-window", WINDOW][..],
            "between 1 and",
        ),
    ] {
        let mut all = vec!["sim", "--listen", "127.0.0.1:0"];
        all.extend(args);
        // Waited for with a deadline: a simulator that started anyway would listen forever.
        let out = ws
            .spawn(&all, no_env.clone())
            .wait_within(Duration::from_secs(20));
        assert_eq!(out.code, Some(2), "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}
