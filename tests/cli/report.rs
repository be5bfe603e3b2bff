//! `cdpjob report`: the page of real runs — with rejects, a failure (an unknown agent: 12148,
//! isolated by bisection) and retries (a simulator failing 5xx, seeded) — rendered by a real
//! headless chromium: its screenshot is a PNG that is not blank, and its DOM holds the
//! counts. Without chromium the browser test is skipped with a notice, unless
//! `CDPJOB_REQUIRE_SERVICES=1` (`.ci/run`), where it fails (SPEC §12 R23).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{SimProcess, Workspace, read, run, with_sim_credentials};

/// A name only the source holds: a rejected row's record, which the report must not show.
const PRIVATE: &str = "Private Person";

fn cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

/// Markup in a source value that the API and the mapper quote in their messages: the
/// report must show it as text.
const MARKUP: &str = "<script>alert(1)</script>";

/// 60 leads in batches of 10: every 10th with a phone of markup (rejected), row 23's agent
/// unknown and of markup too (12148: its batch is bisected, the row fails).
fn write_job(ws: &Workspace, url: &str) {
    let mut csv = String::from("name,phone,agent\n");
    for i in 1..=60 {
        let phone = if i % 10 == 0 {
            MARKUP.to_string()
        } else {
            format!("86139{i:08}")
        };
        let agent = if i == 23 { MARKUP } else { "agent-1" };
        csv.push_str(&format!("{PRIVATE} {i},{phone},{agent}\n"));
    }
    ws.write("leads.csv", csv);
    ws.write(
        "job.yaml",
        format!(
            "version: 1\nname: leads\nkind: batch_create\napi:\n  base_url: \"{url}\"\n  tenant_id: 123\n  app_key: \"46oKF=os\"\n  max_retries: 10\n  timeout_secs: 5\n  concurrency: 2\nsource: {{type: csv, path: leads.csv}}\nmapping:\n  full_name: \"{{{{ row.name }}}}\"\n  whats_app_phone: \"{{{{ row.phone }}}}\"\n  belong_seat_user: \"{{{{ row.agent }}}}\"\nbatch_size: 10\n"
        ),
    );
}

fn the_run_dir(ws: &Workspace, job: &str) -> PathBuf {
    let root = ws.path(&format!("runs/{job}"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&read(&dir.join("summary.json"))).unwrap()
}

/// The page has no resource from elsewhere, no script, and none of the records' values.
#[track_caller]
fn assert_private_and_self_contained(page: &str) {
    for bad in [
        "<script", "http:", "https:", "url(", "@import", "<link", PRIVATE,
    ] {
        assert!(!page.contains(bad), "the report holds {bad:?}");
    }
}

/// The chromium to render with, if installed.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Run headless chromium on `page` with `args`; its stdout. A browser that hangs is killed
/// after a generous deadline and fails the test (it never hangs the suite).
#[track_caller]
fn headless(browser: &Path, profile: &Path, args: &[&str], page: &Path) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let out_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { out_pipe }, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    assert!(status.success(), "chromium {args:?}: {status}\n{stderr}");
    stdout
}

/// The screenshot's pixels as RGB.
fn pixels(png_file: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| match step {
            1 | 2 => [p[0]; 3],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, px)
}

#[test]
fn the_report_of_a_run_with_rejects_failures_and_retries_renders_in_a_real_browser() {
    let sim = SimProcess::start(&["--fail-5xx", "0.3", "--seed", "12"]);
    let ws = Workspace::new();
    write_job(&ws, &sim.url);
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws, "leads");
    let s = summary(&dir);
    assert_eq!(
        (
            &s["counts"]["created"],
            &s["counts"]["failed"],
            &s["counts"]["rejected"]
        ),
        (&53.into(), &1.into(), &6.into()),
        "{s}"
    );
    assert!(
        s["retries"].as_u64().unwrap() > 0,
        "the seed gives retries: {s}"
    );

    let out = run(cmd(&ws, &["report", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page_path = dir.join("report.html");
    assert_eq!(out.stdout, format!("report: {}\n", page_path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&page_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "R21: the report is its owner's only");
    }
    let page = read(&page_path);
    assert_private_and_self_contained(&page);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the messages quote the markup, as text"
    );
    assert!(page.contains("<li>row 23: "), "the failed row, by number");
    assert!(page.contains("<li>row 10: "), "a rejected row, by number");
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "throughput, retries, bisections"
    );

    let Some(browser) = chromium() else {
        return crate::servers::missing("chromium").unwrap_or(());
    };
    let profile = tempfile::tempdir().unwrap();
    let shot = ws.path("report.png");
    headless(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000",
        ],
        &page_path,
    );
    let (width, height, px) = pixels(&shot);
    assert_eq!((width, height), (1200, 2000));
    let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
    let inked = px.iter().filter(|p| p.iter().any(|c| *c < 235)).count();
    assert!(
        colours.len() >= 16,
        "{} colours: a blank page",
        colours.len()
    );
    assert!(
        inked * 100 >= px.len() * 3,
        "{inked} of {} pixels are not white: a blank page",
        px.len()
    );
    // The stacked bar's created segment and the throughput bars were drawn in their colours.
    for (what, rgb) in [
        ("created", [0x2e, 0x7d, 0x32]),
        ("throughput", [0x15, 0x65, 0xc0]),
    ] {
        let n = px.iter().filter(|p| **p == rgb).count();
        assert!(n >= 200, "{what}: only {n} pixels of {rgb:?}");
    }

    let dom = headless(&browser, profile.path(), &["--dump-dom"], &page_path);
    for (outcome, n) in [
        ("created", 53),
        ("failed", 1),
        ("rejected", 6),
        ("skipped", 0),
        ("unchanged", 0),
    ] {
        assert!(
            dom.contains(&format!("id=\"count-{outcome}\">{n}</td>")),
            "{outcome} {n} not in the DOM:\n{dom}"
        );
    }
    assert!(dom.contains(&format!(
        "id=\"retries\">{}</td>",
        s["retries"].as_u64().unwrap()
    )));
    assert!(!dom.contains("<script"));
}

/// A run killed mid-way: the report says so, with what its files hold, and how to go on.
#[cfg(feature = "failpoints")]
#[test]
fn the_report_of_a_killed_run_shows_what_was_committed_and_how_to_resume() {
    let sim = SimProcess::start(&[]);
    let ws = Workspace::new();
    write_job(&ws, &sim.url);
    let mut c = cmd(&ws, &["run", "job.yaml"]);
    c.env("CDPJOB_FAILPOINT", "before_checkpoint:3");
    assert_ne!(run(c).code, 0);
    let dir = the_run_dir(&ws, "leads");
    let d = dir.to_str().unwrap();
    let out = run(cmd(&ws, &["report", d, "-o", "-"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = out.stdout;
    assert_private_and_self_contained(&page);
    assert!(page.contains("class=\"status s-interrupted\""), "{page}");
    assert!(page.contains(&format!("cdpjob resume {d}")), "{page}");
    let status: Value =
        serde_json::from_str(&run(cmd(&ws, &["status", "--json", d])).stdout).unwrap();
    let created = status["counts"]["created"].as_u64().unwrap();
    assert!(created < 53, "{status}");
    assert!(page.contains(&format!("id=\"count-created\">{created}</td>")));
    assert!(!dir.join("report.html").exists(), "-o - writes no file");

    // Resumed to the end, the report shows the resume on the time axis.
    assert_eq!(run(cmd(&ws, &["resume", d])).code, 1);
    let page_path = ws.path("out/report.html");
    std::fs::create_dir_all(page_path.parent().unwrap()).unwrap();
    let out = run(cmd(&ws, &["report", d, "-o", page_path.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = read(&page_path);
    assert!(page.contains("class=\"status s-finished\""));
    assert!(page.contains("<td>1 time</td>") && page.contains(">resumed</text>"));
    assert!(page.contains("id=\"count-created\">53</td>"));
}

/// An export's report: its pages, customers and window, its retries counted once (an
/// export journals each retry and counts it in its page too), and no bisection chart.
#[test]
fn the_report_of_an_export_shows_pages_customers_and_windows() {
    let sim = SimProcess::start(&["--fail-5xx", "0.3", "--seed", "3"]);
    crate::export::seed(&sim, 1, 120);
    let ws = Workspace::new();
    ws.write("job.yaml", crate::export::export_job(&sim.url, "", ""));
    let out = run(cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dir = the_run_dir(&ws, "e");
    let out = run(cmd(&ws, &["report", dir.to_str().unwrap(), "-o", "-"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = out.stdout;
    assert_private_and_self_contained(&page);
    for (what, n) in [("customers", 120), ("pages", 3), ("windows", 1)] {
        assert!(
            page.contains(&format!("id=\"count-{what}\">{n}</td>")),
            "{what} {n}: {page}"
        );
    }
    let status: Value =
        serde_json::from_str(&run(cmd(&ws, &["status", "--json", dir.to_str().unwrap()])).stdout)
            .unwrap();
    let retries = status["retries"].as_u64().unwrap();
    assert!(retries > 0, "the seed gives retries: {status}");
    assert!(page.contains(&format!("id=\"retries\">{retries}</td>")));
    let one = if retries == 1 { "retry" } else { "retries" };
    assert!(
        page.contains(&format!("<desc id=\"retries-desc\">{retries} {one} over ")),
        "{page}"
    );
    assert_eq!(page.matches("<svg").count(), 2, "throughput and retries");
    assert!(!page.contains("chart-bisections"));
}
