//! Reading the CDP back (SPEC §9, §12 R14–R15): `plan --remote` and `verify` against a real
//! `cdpjob sim` process over HTTP, seeded by imports, with customers changed behind the
//! run's back through `POST /__sim/customers/{id}`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    SimProcess, Workspace, jsonl, run, run_dirs, sim_env, with_sim_credentials, write_leads,
};

const QUERY: &str = "/saas/cdp/openapi/customers/query";

/// A batch_create job against `url` reading `source`, sending tags, two custom fields and
/// an address (which the query endpoint does not return).
fn job(url: &str, name: &str, merge: &str, source: &str, retries: u32) -> String {
    format!(
        "version: 1\nname: {name}\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: {retries}\n  concurrency: 4\nsource: {{type: csv, path: {source}}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\n  email: \"{{{{ row.email }}}}\"\n  address: \"{{{{ row.address }}}}\"\n  tagStr: [\"{{{{ row.tag }}}}\", \"imported\"]\n  customize_field:\n    customize_1_14: \"{{{{ row.seg }}}}\"\n    customize_2_3: \"{{{{ row.points }}}}\"\nmerge: {merge}\nbatch_size: 10\nrun:\n  root: runs\n"
    )
}

const SEED_CSV: &str = "name,phone,email,address,tag,seg,points\n\
Ann Lee,8613700000001,ann@example.com,1 Road,vip,gold,5\n\
Bob Wu,8613700000002,bob@example.com,2 Road,vip,gold,5\n\
Cy Ma,8613700000003,cy@example.com,3 Road,new,silver,7\n";

/// Row 1 as seeded, but for its address (not comparable); row 2 renamed with another tag
/// and segment and no points; row 3 not seeded; row 4 seeded as row 3, without its e-mail.
const NEXT_CSV: &str = "name,phone,email,address,tag,seg,points\n\
Ann Lee,8613700000001,ann@example.com,9 Lane,vip,gold,5\n\
Bob Li,8613700000002,bob@example.com,2 Road,b2b,silver,\n\
Dee Xu,8613700000009,dee@example.com,4 Road,new,gold,1\n\
Cy Ma,8613700000003,,3 Road,new,silver,7\n";

fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

/// POST a JSON body to one of the simulator's `/__sim/…` endpoints.
fn post(sim: &SimProcess, path: &str, body: &Value) -> Value {
    let url = format!("{}{path}", sim.url);
    let body = body.to_string();
    cdpjob::api::client::install_crypto_provider();
    let text = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.text().await.unwrap()
        })
    })
    .join()
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The query requests the simulator has answered so far, and those answered with code 0.
fn queries(sim: &SimProcess) -> u64 {
    sim.get("/__sim/stats")["by_path"][QUERY]
        .as_u64()
        .unwrap_or(0)
}

/// Run `job.yaml` and return its run directory.
#[track_caller]
fn import(ws: &Workspace, job: &str, expect: i32) -> PathBuf {
    let before = run_dirs(&ws.path("runs/t"));
    let out = run(cmd(ws, &["run", job]));
    assert_eq!(out.code, expect, "{}\n{}", out.stdout, out.stderr);
    let after = run_dirs(&ws.path("runs/t"));
    after
        .into_iter()
        .find(|d| !before.contains(d))
        .expect("a new run directory")
}

fn json_of(out: &crate::common::Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", out.stdout))
}

/// Pinned with the snapshot filters of tests/cli/snapshots.rs.
fn snapshot(name: &str, text: &str) {
    insta::with_settings!({filters => crate::snapshots::filters(), omit_expression => true}, {
        insta::assert_snapshot!(name, text);
    });
}

/// A change as (field, old, new).
type Change = (String, Value, Value);

/// `plan --remote --json`'s remote part, each customer as (row, status, changes).
fn remote_of(doc: &Value) -> Vec<(u64, String, Vec<Change>)> {
    doc["remote"]["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let changes = c["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|ch| {
                    (
                        ch["field"].as_str().unwrap().to_string(),
                        ch["old"].clone(),
                        ch["new"].clone(),
                    )
                })
                .collect();
            (
                c["row"].as_u64().unwrap(),
                c["status"].as_str().unwrap().to_string(),
                changes,
            )
        })
        .collect()
}

fn ch(field: &str, old: Value, new: Value) -> Change {
    (field.to_string(), old, new)
}

#[test]
fn plan_remote_shows_what_each_merge_mode_would_change() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("seed.csv", SEED_CSV);
    ws.write("next.csv", NEXT_CSV);
    ws.write("seed.yaml", job(&sim.url, "seed", "update", "seed.csv", 0));
    let out = run(cmd(&ws, &["run", "seed.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stored = sim.customers();
    assert_eq!(stored.len(), 3);
    // CDP-API §5's fields, exactly: what batch_create takes and §5 does not list is absent.
    for key in ["address", "zalo", "time_zone", "belong_seat_user"] {
        assert!(stored[0].get(key).is_none(), "{key} in {}", stored[0]);
    }
    let mut keys: Vec<&str> = stored[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "birthday",
            "country",
            "created_at",
            "customize_field",
            "email",
            "first_name",
            "full_name",
            "gender",
            "id",
            "instagram",
            "last_name",
            "line",
            "messenger",
            "remark",
            "sms_phone",
            "sms_subscribe",
            "source_channel_key",
            "source_type",
            "status",
            "tags",
            "tenant_id",
            "updated_at",
            "viber_phone",
            "weight",
            "whatApp_subscribe",
            "whatsApp_phone",
        ]
    );
    let queries_before = queries(&sim);

    let null = Value::Null;
    let s = |t: &str| Value::from(t);
    let update = vec![
        (1, "unchanged".to_string(), vec![]),
        (
            2,
            "update".to_string(),
            vec![
                ch("full_name", s("Bob Wu"), s("Bob Li")),
                ch("tagStr", s("imported,vip"), s("b2b,imported,vip")),
                ch(
                    "customize_field.customize_1_14",
                    s("\"gold\""),
                    s("\"silver\""),
                ),
            ],
        ),
        (3, "new".to_string(), vec![]),
        (4, "unchanged".to_string(), vec![]),
    ];
    let replace = vec![
        (1, "unchanged".to_string(), vec![]),
        (
            2,
            "update".to_string(),
            vec![
                ch("full_name", s("Bob Wu"), s("Bob Li")),
                ch("tagStr", s("imported,vip"), s("b2b,imported")),
                ch(
                    "customize_field.customize_1_14",
                    s("\"gold\""),
                    s("\"silver\""),
                ),
                ch("customize_field.customize_2_3", s("\"5\""), null.clone()),
            ],
        ),
        (3, "new".to_string(), vec![]),
        (
            4,
            "update".to_string(),
            vec![ch("email", s("cy@example.com"), null)],
        ),
    ];
    let keep = vec![
        (1, "unchanged".to_string(), vec![]),
        (2, "unchanged".to_string(), vec![]),
        (3, "new".to_string(), vec![]),
        (4, "unchanged".to_string(), vec![]),
    ];
    for (merge, expected, counts) in [
        ("update", update, (1, 1, 2)),
        ("replace", replace, (1, 2, 1)),
        ("keep", keep, (1, 0, 3)),
    ] {
        ws.write("next.yaml", job(&sim.url, "t", merge, "next.csv", 0));
        let out = run(cmd(&ws, &["plan", "next.yaml", "--remote", "--json"]));
        assert_eq!(out.code, 0, "{merge}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(remote_of(&doc), expected, "{merge}");
        let r = &doc["remote"];
        assert_eq!(
            (
                r["new"].as_u64(),
                r["update"].as_u64(),
                r["unchanged"].as_u64()
            ),
            (Some(counts.0), Some(counts.1), Some(counts.2)),
            "{merge}"
        );
        assert_eq!(r["merge"], merge);
        // Beside the plan as it is without --remote.
        assert_eq!(doc["counts"]["valid"], 4);
        assert_eq!(doc["preview"].as_array().unwrap().len(), 4);
        if merge != "keep" {
            // The address differs from the stored one, which the API does not show: never
            // a change, always named.
            assert_eq!(r["customers"][0]["unverifiable"], json!(["address"]));
        }
        assert_eq!(r["customers"][2]["customer_id"], Value::Null);
        assert_eq!(
            r["customers"][1]["customer_id"], stored[1]["id"],
            "{merge}: the id of the customer found"
        );
        assert_eq!(r["customers"][1]["key"], "whats_app_phone:8613700000002");
        if merge == "replace" {
            snapshot("plan_remote_replace_json", &out.stdout);
            let text = run(cmd(&ws, &["plan", "next.yaml", "--remote"]));
            assert_eq!(text.code, 0, "{}", text.stderr);
            snapshot("plan_remote_replace", &text.stdout);
        }
    }
    // 5 queries a plan (rows 1, 2 and 4 found by their first key, row 3 tried by both it
    // has), four plans, and nothing written.
    assert_eq!(queries(&sim) - queries_before, 4 * 5);
    assert_eq!(sim.customers(), stored);
    // Without --remote, plan stays offline.
    let before = sim.requests();
    let out = run(cmd(&ws, &["plan", "next.yaml"]));
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no request was sent"), "{}", out.stdout);
    assert_eq!(sim.requests(), before, "no API request");
}

#[test]
fn plan_remote_of_an_unreachable_api_is_exit_3() {
    let ws = Workspace::new();
    ws.write("next.csv", NEXT_CSV);
    // A port nothing listens on: the simulator was started and stopped.
    let url = {
        let sim = SimProcess::start(&[]);
        sim.url.clone()
    };
    ws.write("next.yaml", job(&url, "t", "update", "next.csv", 0));
    let out = run(cmd(&ws, &["plan", "next.yaml", "--remote", "--json"]));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let doc = json_of(&out);
    assert_eq!(doc["exit_code"], 3);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("could not look row 1's customer up"),
        "{doc}"
    );
}

/// `verify --json`'s mismatches as (row, field, sent, stored), and the customer ids.
fn mismatches(doc: &Value) -> Vec<(u64, i64, String, Value, Value)> {
    doc["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["row"].as_u64().unwrap(),
                m["customer_id"].as_i64().unwrap(),
                m["field"].as_str().unwrap().to_string(),
                m["sent"].clone(),
                m["stored"].clone(),
            )
        })
        .collect()
}

#[test]
fn verify_passes_a_clean_run_and_reports_what_changed_behind_its_back() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    ws.write("seed.csv", SEED_CSV);
    ws.write("job.yaml", job(&sim.url, "t", "update", "seed.csv", 0));
    let dir = import(&ws, "job.yaml", 0);
    let d = dir.to_str().unwrap();
    let created = jsonl(&dir.join("created.jsonl"));
    let id = |row: usize| created[row - 1]["customer_id"].as_i64().unwrap();
    assert_eq!(
        created[0]["customer"]["customize_field"],
        r#"{"customize_1_14":"gold","customize_2_3":"5"}"#,
        "a created line carries what was sent"
    );

    let out = run(cmd(&ws, &["verify", d]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("checked 3: 3 match, 0 mismatch"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not compared: address"),
        "{}",
        out.stdout
    );

    // Behind the run's back: a name and the tags of row 1, a custom field of row 2, and
    // row 3's WhatsApp number (it is then found by its e-mail, the next key).
    post(
        &sim,
        &format!("/__sim/customers/{}", id(1)),
        &json!({"full_name": "Ann L.", "tagStr": "vip,other"}),
    );
    post(
        &sim,
        &format!("/__sim/customers/{}", id(2)),
        &json!({"customize_field": "{\"customize_1_14\":\"gold\",\"customize_2_3\":5}"}),
    );
    post(
        &sim,
        &format!("/__sim/customers/{}", id(3)),
        &json!({"whats_app_phone": "8613999999999"}),
    );
    let out = run(cmd(&ws, &["verify", d, "--json"]));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let doc = json_of(&out);
    let s = |t: &str| Value::from(t);
    assert_eq!(
        mismatches(&doc),
        [
            (1, id(1), "full_name".into(), s("Ann Lee"), s("Ann L.")),
            (1, id(1), "tagStr".into(), s("imported,vip"), s("other,vip")),
            (
                2,
                id(2),
                "customize_field.customize_2_3".into(),
                s("\"5\""),
                s("5")
            ),
            (
                3,
                id(3),
                "whats_app_phone".into(),
                s("8613700000003"),
                s("8613999999999")
            ),
        ]
    );
    assert_eq!(
        (&doc["checked"], &doc["matched"], &doc["mismatched"]),
        (&json!(3), &json!(0), &json!(3))
    );
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["resumable"], false);
    snapshot("verify_mismatches_json", &out.stdout);
    let out = run(cmd(&ws, &["verify", d]));
    assert_eq!(out.code, 1);
    snapshot("verify_mismatches", &out.stdout);

    // A customer nobody holds any of the keys of any more is not found.
    post(
        &sim,
        &format!("/__sim/customers/{}", id(3)),
        &json!({"whats_app_phone": null, "email": "gone@example.com"}),
    );
    let out = run(cmd(&ws, &["verify", d, "--json"]));
    assert_eq!(out.code, 1);
    let found = mismatches(&json_of(&out));
    assert!(
        found.contains(&(
            3,
            id(3),
            "customer_id".into(),
            s(&id(3).to_string()),
            Value::Null
        )),
        "{found:?}"
    );

    // Secrets: a wrong one is exit 3 and appears nowhere; the right one neither.
    let canary = "wrong-canary-5Tq1";
    let mut c = ws.cmd(&["verify", d]);
    c.env("NXCLOUD_ACCESS_KEY", "cdpjob-sim")
        .env("NXCLOUD_ACCESS_SECRET", canary);
    let out = run(c);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("1003"), "{}", out.stderr);
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains(canary) && !text.contains("cdpjob-sim-secret"),
            "{}",
            f.display()
        );
    }
    assert!(!out.stdout.contains(canary) && !out.stderr.contains(canary));
}

/// The rows a verify checked, from its progress file.
fn checked_rows(dir: &Path) -> Vec<u64> {
    jsonl(&dir.join("verify.jsonl"))
        .iter()
        .filter(|l| l["event"] == "checked")
        .map(|l| l["row"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_sample_of_20_makes_20_lookups_and_its_seed_draws_it_again() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 300);
    ws.write(
        "job.yaml",
        format!(
            "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\nsource: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\nbatch_size: 50\nrun:\n  root: runs\n",
            sim.url
        ),
    );
    let dir = import(&ws, "job.yaml", 1);
    let d = dir.to_str().unwrap();
    let before = queries(&sim);
    let out = run(cmd(&ws, &["verify", d, "--sample", "20"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(queries(&sim) - before, 20, "one lookup a customer");
    let seed = out
        .stdout
        .split("(seed ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no seed printed: {}", out.stdout))
        .to_string();
    assert!(
        out.stdout.contains("checked 20: 20 match"),
        "{}",
        out.stdout
    );
    let first = checked_rows(&dir);
    assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), 20);
    let out = run(cmd(&ws, &["verify", d, "--sample", "20", "--seed", &seed]));
    assert_eq!(out.code, 0);
    let mut again = checked_rows(&dir);
    let mut first = first;
    first.sort_unstable();
    again.sort_unstable();
    assert_eq!(first, again, "the same seed draws the same sample");
    // Spread over the run, not its first 20 rows.
    assert!(*again.last().unwrap() > 100, "{again:?}");
}

#[test]
fn a_failing_api_stops_verify_with_3_and_the_next_verify_continues() {
    let ws = Workspace::new();
    let state = ws.path("sim-state.jsonl");
    let state_arg = state.to_str().unwrap().to_string();
    let sim = SimProcess::start(&["--state", &state_arg]);
    let addr = sim.addr().to_string();
    write_leads(&ws.path("leads.csv"), 60);
    ws.write(
        "job.yaml",
        format!(
            "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 0\n  concurrency: 4\nsource: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\nbatch_size: 10\nrun:\n  root: runs\n",
            sim.url
        ),
    );
    let dir = import(&ws, "job.yaml", 1);
    let d = dir.to_str().unwrap();
    let created = jsonl(&dir.join("created.jsonl")).len() as u64;
    drop(sim);

    // Every answer a 503: nothing checked, exit 3, the way on said.
    let sim = SimProcess::start_at(&addr, &["--state", &state_arg, "--fail-5xx", "1.0"]);
    let out = run(cmd(&ws, &["verify", d, "--json"]));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let doc = json_of(&out);
    assert_eq!(
        (&doc["exit_code"], &doc["format_version"]),
        (&json!(3), &json!(1))
    );
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 503")
            && error.contains(&format!("0 of {created} customer(s) checked so far")),
        "{error}"
    );
    drop(sim);

    // Half the answers a 503: each verify checks some, stops, and the next goes on.
    let sim = SimProcess::start_at(
        &addr,
        &["--state", &state_arg, "--fail-5xx", "0.5", "--seed", "4"],
    );
    let mut stops = 0;
    let last = loop {
        let out = run(cmd(&ws, &["verify", d]));
        match out.code {
            3 => {
                stops += 1;
                assert!(
                    out.stderr.contains("again continues after them"),
                    "{}",
                    out.stderr
                );
                assert!(stops < 200, "verify never finished: {}", out.stderr);
            }
            0 => break out,
            other => panic!("exit {other}: {}\n{}", out.stdout, out.stderr),
        }
    };
    assert!(stops > 0, "the faults stopped no verify");
    assert!(
        last.stdout.contains(&format!("checked {created} ("))
            && last.stdout.contains(&format!("{created} match")),
        "{}",
        last.stdout
    );
    // No customer looked up twice: the successful queries are one a customer, and the
    // progress holds each row once.
    let answered = sim.get("/__sim/stats")["codes"]["0"].as_u64().unwrap();
    assert_eq!(answered, created);
    let rows = checked_rows(&dir);
    assert_eq!(rows.len() as u64, created);
    assert_eq!(rows.iter().collect::<BTreeSet<_>>().len() as u64, created);
}

#[test]
fn plan_remote_and_verify_take_no_lock() {
    let sim = SimProcess::start(&["--latency-ms", "300"]);
    let ws = Workspace::new();
    ws.write("seed.csv", SEED_CSV);
    ws.write("job.yaml", job(&sim.url, "t", "update", "seed.csv", 0));
    let dir = import(&ws, "job.yaml", 0);
    // Another run of the job, slow: it holds the job's lock while the two read.
    write_leads(&ws.path("leads.csv"), 400);
    ws.write(
        "slow.yaml",
        format!(
            "version: 1\nname: t\nkind: batch_create\napi:\n  base_url: \"{}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  concurrency: 2\nsource: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\nbatch_size: 1\nrun:\n  root: runs\n",
            sim.url
        ),
    );
    let mut slow = ws.spawn(&["run", "slow.yaml"], sim_env(None));
    let lock = ws.path("runs/t/.lock");
    slow.wait_for(
        "the slow run to hold the lock",
        Duration::from_secs(30),
        || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&lock)
                .is_ok_and(|f| f.try_lock().is_err())
        },
    );
    let out = run(cmd(&ws, &["verify", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(cmd(&ws, &["plan", "job.yaml", "--remote"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!slow.has_exited(), "the slow run still runs");
    slow.signal("TERM");
    slow.wait_within(Duration::from_secs(30));
}
