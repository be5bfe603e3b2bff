//! `notify:`: the POST a run's end makes, received by a tiny HTTP server of the test's own
//! (std's TcpListener on loopback): its body for finished and failed runs, `on` filtering,
//! a stopped run and its resume, a webhook that is down, one that answers too late, and
//! the webhook URL (a secret) in no output and no file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{SimProcess, Workspace, read, run, sim_env, valid_leads, write_leads};

/// A secret token in the webhook's URL: it must appear nowhere a run writes.
const CANARY: &str = "hooktoken-7f3a9c";

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: String,
}

/// A webhook on a free loopback port, answering `status` after `delay`. It serves a few
/// connections and then stops (a test never needs more), so it never outlives its use.
struct Webhook {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Webhook {
    fn start(status: u16, delay: Duration) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook/{CANARY}?token={CANARY}",
            listener.local_addr().unwrap()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                seen.lock().unwrap().push(req);
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Webhook { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The one request received, as JSON.
    #[track_caller]
    fn the_body(&self) -> Value {
        let got = self.received();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].content_type, "application/json");
        assert!(got[0].path.starts_with("/hook/"), "{got:?}");
        serde_json::from_str(&got[0].body).unwrap_or_else(|e| panic!("{e}: {}", got[0].body))
    }
}

/// An HTTP/1.1 request: its path, content type and body (by its content-length).
fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let (mut len, mut content_type) = (0usize, String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        content_type,
        body: String::from_utf8(body).ok()?,
    })
}

/// A batch_create job `t` of `leads.csv` against `url`, with `notify` (YAML lines indented
/// under `notify:`).
fn job(url: &str, notify: &str) -> String {
    format!(
        "version: 1
name: t
kind: batch_create
api:
  base_url: \"{url}\"
  tenant_id: 123
  app_key: \"46oKF=os\"
  concurrency: 4
source: {{type: csv, path: leads.csv}}
filter: \"row.status != 'inactive'\"
mapping:
  full_name: \"{{{{ row.name }}}}\"
  whats_app_phone: \"{{{{ row.phone }}}}\"
batch_size: 100
notify:
{notify}"
    )
}

/// Leads that are all valid (no row rejected or skipped): the run exits 0.
fn write_valid_leads(path: &Path, rows: u64) {
    let mut text = String::from("name,phone,email,status,agent\n");
    for i in 1..=rows {
        text.push_str(&format!("Lead {i},86139{i:08},,active,agent-1\n"));
    }
    std::fs::write(path, text).unwrap();
}

const SLACK: &str = r#"  url_env: HOOK_URL
  body: '{"text": {{ (job ~ " " ~ event ~ ": " ~ summary.counts.created ~ " created, " ~ summary.counts.failed ~ " failed") | tojson }}}'
"#;

/// `cdpjob ARGS…` in `ws` against the simulator, with the webhook's URL in `HOOK_URL`.
fn run_with_hook(ws: &Workspace, args: &[&str], url: &str) -> crate::common::Exited {
    run_with_env(ws, args, &[("HOOK_URL", url)])
}

/// `cdpjob ARGS…` in `ws` against the simulator, with `extra` in the environment.
fn run_with_env(ws: &Workspace, args: &[&str], extra: &[(&str, &str)]) -> crate::common::Exited {
    let mut env: Vec<(String, String)> = sim_env(None)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ws.spawn(args, env).wait_within(Duration::from_secs(120))
}

/// The one run directory of `t`.
#[track_caller]
fn the_run(ws: &Workspace) -> std::path::PathBuf {
    let mut dirs = crate::common::run_dirs(&ws.path("runs/t"));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// The canary is in no output and no file under the workspace's run root.
#[track_caller]
fn assert_no_canary(ws: &Workspace, out: &crate::common::Exited) {
    let files = assert_nowhere(ws, out, CANARY);
    assert!(files > 5, "the run wrote its files ({files})");
}

/// `secret` is in no output and no file under the workspace's run root; the files read.
#[track_caller]
fn assert_nowhere(ws: &Workspace, out: &crate::common::Exited, secret: &str) -> usize {
    assert!(!out.stdout.contains(secret), "stdout: {}", out.stdout);
    assert!(!out.stderr.contains(secret), "stderr: {}", out.stderr);
    let mut files = 0;
    let mut stack = vec![ws.path("runs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(secret),
                    "{} holds a secret",
                    p.display()
                );
            }
        }
    }
    files
}

/// A finished run (exit 0) posts the rendered template; a run with rejected rows (exit 1)
/// posts the default body, the JSON summary itself.
#[test]
fn finished_and_failed_runs_post_their_bodies() {
    let sim = SimProcess::start(&[]);
    let hook = Webhook::start(200, Duration::ZERO);
    let ws = Workspace::new();
    write_valid_leads(&ws.path("leads.csv"), 250);
    ws.write("job.yaml", job(&sim.url, SLACK));
    let out = run_with_hook(&ws, &["run", "job.yaml"], &hook.url);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        hook.the_body(),
        serde_json::json!({"text": "t finished: 250 created, 0 failed"})
    );
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert_no_canary(&ws, &out);
    let first = the_run(&ws);

    let hook = Webhook::start(200, Duration::ZERO);
    write_leads(&ws.path("leads.csv"), 100);
    ws.write("job.yaml", job(&sim.url, "  url_env: HOOK_URL\n"));
    let out = run_with_hook(&ws, &["run", "job.yaml"], &hook.url);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let body = hook.the_body();
    let second = crate::common::run_dirs(&ws.path("runs/t"))
        .into_iter()
        .find(|d| *d != first)
        .unwrap();
    let summary: Value = serde_json::from_str(&read(&second.join("summary.json"))).unwrap();
    assert_eq!(body, summary, "the default body is the JSON summary");
    assert_eq!(body["counts"]["created"], valid_leads(100).len() as u64);
    assert_no_canary(&ws, &out);
}

/// `on: [failed]`: a run that exits 0 posts nothing; one that exits 1 posts once.
#[test]
fn on_chooses_the_ends_that_notify() {
    let sim = SimProcess::start(&[]);
    let hook = Webhook::start(200, Duration::ZERO);
    let ws = Workspace::new();
    let notify =
        "  url_env: HOOK_URL\n  on: [failed]\n  body: '{\"event\": {{ event | tojson }}}'\n";
    ws.write("job.yaml", job(&sim.url, notify));
    write_valid_leads(&ws.path("leads.csv"), 20);
    let out = run_with_hook(&ws, &["run", "job.yaml"], &hook.url);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    write_leads(&ws.path("leads.csv"), 20);
    let out = run_with_hook(&ws, &["run", "job.yaml"], &hook.url);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    // Only the second run's end was posted.
    assert_eq!(hook.the_body(), serde_json::json!({"event": "failed"}));
}

/// SIGTERM: the stopped run posts `stopped` (exit 3 kept). A changed `notify` block does
/// not stop the resume (it is not in the send hash), whose end posts with the new body.
#[test]
fn a_stopped_run_notifies_and_a_changed_notify_block_does_not_stop_its_resume() {
    let sim = SimProcess::start(&["--latency-ms", "50"]);
    let hook = Webhook::start(200, Duration::ZERO);
    let ws = Workspace::new();
    const ROWS: u64 = 40_000;
    write_leads(&ws.path("leads.csv"), ROWS);
    ws.write("job.yaml", job(&sim.url, SLACK));
    let mut env: Vec<(String, String)> = sim_env(None)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("HOOK_URL".into(), hook.url.clone()));
    let mut child = ws.spawn(&["run", "job.yaml"], env);
    child.wait_for("a first commit", Duration::from_secs(30), || {
        crate::common::run_dirs(&ws.path("runs/t"))
            .first()
            .and_then(|d| std::fs::metadata(d.join("created.jsonl")).ok())
            .is_some_and(|m| m.len() > 0)
    });
    child.signal("TERM");
    let out = child.wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}{}", out.stdout, out.stderr);
    let text = hook.the_body()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("t stopped: "), "{text}");
    assert_no_canary(&ws, &out);

    let hook = Webhook::start(200, Duration::ZERO);
    let notify = "  url_env: HOOK_URL\n  body: '{\"event\": {{ event | tojson }}, \"status\": {{ summary.status | tojson }}}'\n";
    ws.write("job.yaml", job(&sim.url, notify));
    let dir = the_run(&ws);
    let out = run_with_hook(&ws, &["resume", dir.to_str().unwrap()], &hook.url);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        hook.the_body(),
        serde_json::json!({"event": "failed", "status": "finished"})
    );
}

/// A webhook that is down, one that answers 500 and one slower than `timeout_secs`: each
/// a warning on stderr that names the variable (never the URL), the exit code unchanged.
#[test]
fn a_failed_notification_is_a_warning_and_never_changes_the_exit_code() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 30);
    ws.write(
        "job.yaml",
        job(&sim.url, "  url_env: HOOK_URL\n  timeout_secs: 1\n"),
    );

    // Down: a port that was free a moment ago, with nothing listening.
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://{}/hook/{CANARY}?token={CANARY}",
            l.local_addr().unwrap()
        )
    };
    let out = run_with_hook(&ws, &["run", "job.yaml"], &down);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "warning: the failed notification ($HOOK_URL) was not delivered: could not connect"
        ),
        "{}",
        out.stderr
    );
    assert_no_canary(&ws, &out);

    let refusing = Webhook::start(500, Duration::ZERO);
    let out = run_with_hook(&ws, &["run", "job.yaml"], &refusing.url);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("($HOOK_URL) was not delivered: the webhook answered HTTP 500"),
        "{}",
        out.stderr
    );
    assert_eq!(refusing.received().len(), 1);
    assert_no_canary(&ws, &out);

    // Answers after 8 s; the job gives it 1 s.
    let slow = Webhook::start(200, Duration::from_secs(8));
    let out = run_with_hook(&ws, &["run", "job.yaml"], &slow.url);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("($HOOK_URL) was not delivered: no answer within 1 s"),
        "{}",
        out.stderr
    );
    assert_eq!(slow.received().len(), 1, "it was sent, and given up");
    assert_no_canary(&ws, &out);

    // Unset: a warning too.
    let out = ws
        .spawn(&["run", "job.yaml"], sim_env(None))
        .wait_within(Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("($HOOK_URL) was not delivered: the variable is not set")
    );
}

/// `validate` refuses a body that does not compile and an unknown end, at their lines.
#[test]
fn validate_checks_the_body_template_and_the_ends() {
    let ws = Workspace::new();
    write_leads(&ws.path("leads.csv"), 5);
    ws.write(
        "job.yaml",
        job(
            "sim",
            "  url_env: HOOK_URL\n  on: [finished, crashed]\n  body: '{{ summary.counts'\n",
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("job.yaml:17:"), "{all}");
    assert!(all.contains("crashed"), "{all}");
    assert!(all.contains("`notify.body`"), "{all}");
    assert!(all.contains("job.yaml:18:"), "{all}");

    ws.write("job.yaml", job("sim", SLACK));
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// A bot's signing secret: like the URL, it must appear nowhere.
const SIGN_SECRET: &str = "SECsigncanary-51d0";

/// `cdpjob run` with the webhook's URL and the signing secret in the environment.
fn run_signed(ws: &Workspace, url: &str) -> crate::common::Exited {
    run_with_env(
        ws,
        &["run", "job.yaml"],
        &[("HOOK_URL", url), ("BOT_SECRET", SIGN_SECRET)],
    )
}

/// `sign: dingtalk`: the POST's query carries the time and its signature (the signature
/// of that time with the secret, as the unit tests pin the algorithm with reference values).
#[test]
fn a_dingtalk_bot_gets_its_signature_in_the_query() {
    let sim = SimProcess::start(&[]);
    let hook = Webhook::start(200, Duration::ZERO);
    let ws = Workspace::new();
    write_valid_leads(&ws.path("leads.csv"), 20);
    ws.write(
        "job.yaml",
        job(
            &sim.url,
            "  url_env: HOOK_URL\n  sign: dingtalk\n  secret_env: BOT_SECRET\n  body: '{\"msgtype\": \"text\", \"text\": {\"content\": {{ event | tojson }}}}'\n",
        ),
    );
    let out = run_signed(&ws, &hook.url);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let query = got[0].path.split_once('?').unwrap().1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {query}"))
            .to_string()
    };
    assert_eq!(param("token"), CANARY, "the URL's own query is kept");
    let ts: i64 = param("timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - ts).abs() < 120_000, "a time in milliseconds: {ts}");
    let expected = cdpjob::notify_sign::Signer::Dingtalk
        .sign("u", "{}".into(), SIGN_SECRET, ts)
        .unwrap();
    assert!(
        expected.url.ends_with(&format!("&sign={}", param("sign"))),
        "{} vs {query}",
        expected.url
    );
    assert_eq!(
        serde_json::from_str::<Value>(&got[0].body).unwrap(),
        serde_json::json!({"msgtype": "text", "text": {"content": "finished"}})
    );
    assert_nowhere(&ws, &out, SIGN_SECRET);
}

/// `sign: feishu`: the body gains `timestamp` (seconds) and `sign`; a missing secret is a
/// warning naming its variable, and the run's exit code stays.
#[test]
fn a_feishu_bot_gets_its_signature_in_the_body_and_a_missing_secret_only_warns() {
    let sim = SimProcess::start(&[]);
    let hook = Webhook::start(200, Duration::ZERO);
    let ws = Workspace::new();
    write_valid_leads(&ws.path("leads.csv"), 20);
    ws.write(
        "job.yaml",
        job(
            &sim.url,
            "  url_env: HOOK_URL\n  sign: feishu\n  secret_env: BOT_SECRET\n  body: '{\"msg_type\": \"text\", \"content\": {\"text\": {{ event | tojson }}}}'\n",
        ),
    );
    let out = run_signed(&ws, &hook.url);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let body = hook.the_body();
    assert_eq!(body["content"]["text"], "finished");
    let ts: i64 = body["timestamp"].as_str().unwrap().parse().unwrap();
    let expected = cdpjob::notify_sign::Signer::Feishu
        .sign("u", "{}".into(), SIGN_SECRET, ts * 1000)
        .unwrap();
    let expected: Value = serde_json::from_str(&expected.body).unwrap();
    assert_eq!(body["sign"], expected["sign"]);
    assert_nowhere(&ws, &out, SIGN_SECRET);

    // Without the secret: no POST, one warning that names the variable.
    let hook = Webhook::start(200, Duration::ZERO);
    let out = run_with_hook(&ws, &["run", "job.yaml"], &hook.url);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("was not delivered: its signing secret ($BOT_SECRET) is not set"),
        "{}",
        out.stderr
    );
    assert!(hook.received().is_empty());
}
