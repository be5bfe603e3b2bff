//! `cdpjob report RUN_DIR [-o FILE]` (SPEC §10): a run as one self-contained HTML page for
//! the people who watch scheduled runs without having been there — status and timings,
//! outcome counts, rejects and failures with example rows, and charts of the journal.
//! `data` gathers from the run directory, `svg` draws the charts, `html` writes the page.
//!
//! The page holds what `rejected.jsonl` and `failed.jsonl` say of a row — its number, the
//! field, rule or code and the message cut to 200 characters — and never the record, and
//! it is written readable by its owner only, as the run directory is (SPEC §12 R21).

pub mod data;
pub mod escape;
pub mod html;
pub mod svg;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::run_dir::atomic;
use crate::runner::Outcome;

/// The report's file name in the run directory when `-o` is not given.
pub const FILE_NAME: &str = "report.html";

/// Write the report of the run in `dir` to `output` (`-`: standard output; none: the run
/// directory's `report.html`).
pub fn write(dir: &Path, output: Option<&Path>) -> Result<Outcome> {
    let report = data::ReportData::read(dir)?;
    let page = html::page(&report, jiff::Timestamp::now());
    match output {
        Some(p) if p.as_os_str() == "-" => {
            // A closed pipe (`| head`) is not worth a message.
            let _ = std::io::stdout().lock().write_all(page.as_bytes());
        }
        _ => {
            let path = output.map_or_else(|| dir.join(FILE_NAME), PathBuf::from);
            atomic::write_atomic(&path, page.as_bytes())
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            println!("report: {}", path.display());
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use scraper::{Html, Selector};

    use super::data::*;
    use super::html;
    use crate::import::Counts;
    use crate::job::model::JobKind;
    use crate::runner::RunStatus;

    const EVIL: &str = "<script>alert('x')</script><img src=\"https://evil.example/x.png\">";

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn import_report() -> ReportData {
        ReportData {
            job_name: format!("leads {EVIL}"),
            job_file: "jobs/leads.yaml".into(),
            job_sha256: "ab".repeat(32),
            run_id: "20261201T020000Z-abcd".into(),
            run_dir: "runs/leads/20261201T020000Z-abcd".into(),
            kind: JobKind::BatchCreate,
            status: RunStatus::Finished,
            resumable: false,
            started_at: at("2026-12-01T02:00:00Z"),
            ended_at: Some(at("2026-12-01T02:00:07Z")),
            last_error: Some(format!("HTTP 503 {EVIL}")),
            resumes: 1,
            requests: 9,
            retries: 3,
            body: KindData::Import(ImportData {
                counts: Counts {
                    rows: 57,
                    created: 41,
                    failed: 2,
                    rejected: 8,
                    skipped: 3,
                    unchanged: 3,
                },
                batches_done: 3,
                batches_in_doubt: vec![],
                rejects: vec![Group {
                    field: "email".into(),
                    rule: "format".into(),
                    count: 8,
                    examples: vec![Example {
                        row: 12,
                        message: format!("email: {EVIL}"),
                    }],
                }],
                failures: vec![Group {
                    field: "12148".into(),
                    rule: String::new(),
                    count: 2,
                    examples: vec![Example {
                        row: 7,
                        message: "agent ghost does not exist".into(),
                    }],
                }],
            }),
            timeline: Timeline {
                span_ms: 7000,
                rows: vec![(100, 20), (3000, 20), (6900, 3)],
                retries: vec![(1000, "HTTP 503".into()), (1100, "HTTP 503".into())],
                bisections: vec![2000, 2100],
                resumes: vec![5000],
            },
        }
    }

    fn parse(page: &str) -> Html {
        Html::parse_document(page)
    }

    fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
        doc.select(&Selector::parse(css).unwrap()).collect()
    }

    fn text(e: &scraper::ElementRef<'_>) -> String {
        e.text().collect()
    }

    /// No element loads anything from elsewhere, nothing runs, and the CSS fetches nothing.
    #[track_caller]
    fn assert_self_contained(doc: &Html) {
        assert!(select(doc, "script, link, iframe, object, embed, img").is_empty());
        for e in select(doc, "*") {
            for (name, value) in e.value().attrs() {
                let v = value.to_ascii_lowercase();
                assert!(
                    !(v.contains("http:") || v.contains("https:") || v.contains("//")),
                    "<{} {name}={value:?}> names a resource",
                    e.value().name()
                );
                assert!(!name.starts_with("on"), "an event handler: {name}");
            }
        }
        for style in select(doc, "style") {
            let css = text(&style).to_ascii_lowercase();
            assert!(!css.contains("url(") && !css.contains("@import"), "{css}");
        }
    }

    #[test]
    fn the_page_is_self_contained_with_one_svg_per_chart_and_the_counts() {
        let page = html::page(&import_report(), at("2026-12-01T03:00:00Z"));
        let doc = parse(&page);
        assert_self_contained(&doc);
        let figures = select(&doc, "figure.chart");
        assert_eq!(
            figures
                .iter()
                .map(|f| f.value().id().unwrap())
                .collect::<Vec<_>>(),
            ["chart-throughput", "chart-retries", "chart-bisections"]
        );
        for f in &figures {
            let svgs: Vec<_> = f.select(&Selector::parse("svg").unwrap()).collect();
            assert_eq!(svgs.len(), 1, "{:?}", f.value().id());
            let svg = &svgs[0];
            // A text alternative, and both axes labelled.
            for part in ["title", "desc"] {
                let t: Vec<_> = svg.select(&Selector::parse(part).unwrap()).collect();
                assert_eq!(t.len(), 1, "{part}");
                assert!(!text(&t[0]).trim().is_empty());
            }
            let labels: Vec<String> = svg
                .select(&Selector::parse("text.axis").unwrap())
                .map(|t| text(&t))
                .collect();
            assert_eq!(labels.len(), 2, "{labels:?}");
            assert!(labels[0].starts_with("time since the run began"));
        }
        assert_eq!(select(&doc, "svg").len(), figures.len());
        // Bars drawn: 3 throughput buckets, 2 retries in one bucket, 2 bisections in one.
        let bars = |id: &str| select(&doc, &format!("#chart-{id} rect")).len();
        assert_eq!(
            (bars("throughput"), bars("retries"), bars("bisections")),
            (3, 1, 1)
        );
        let count = |o: &str| text(&select(&doc, &format!("#count-{o}"))[0]);
        assert_eq!(
            ["created", "failed", "rejected", "skipped", "unchanged"].map(count),
            ["41", "2", "8", "3", "3"]
        );
        // The stacked bar: one segment per outcome that has rows, widths adding up.
        let segments = select(&doc, ".bar span");
        assert_eq!(segments.len(), 5);
        let widths: f64 = segments
            .iter()
            .map(|s| {
                let style = s.value().attr("style").unwrap();
                style["width:".len()..style.len() - 1]
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert!((widths - 100.0).abs() < 0.01, "{widths}");
        let rejects = text(&select(&doc, "table.groups")[0]);
        assert!(
            rejects.contains("email") && rejects.contains("row 12: email: "),
            "{rejects}"
        );
        let failures = text(&select(&doc, "table.groups")[1]);
        assert!(failures.contains("12148") && failures.contains("row 7: agent ghost"));
    }

    #[test]
    fn markup_in_a_job_name_or_a_reason_comes_out_as_text() {
        let page = html::page(&import_report(), at("2026-12-01T03:00:00Z"));
        assert!(
            !page.contains("<script") && !page.contains("<img"),
            "{page}"
        );
        let doc = parse(&page);
        assert_self_contained(&doc);
        assert_eq!(text(&select(&doc, "#job-name")[0]), format!("leads {EVIL}"));
        assert!(text(&select(&doc, "title")[0]).contains(EVIL));
        let body = text(&select(&doc, "body")[0]);
        assert!(body.contains(&format!("HTTP 503 {EVIL}")), "the last error");
        assert!(
            body.contains(&format!("row 12: email: {EVIL}")),
            "the example"
        );
    }

    #[test]
    fn an_export_shows_pages_customers_and_windows_and_no_bisections() {
        let mut r = import_report();
        r.kind = JobKind::QueryExport;
        r.status = RunStatus::Interrupted;
        r.resumable = true;
        r.body = KindData::Export(ExportData {
            pages: 12,
            customers: 1150,
            all_pages_written: false,
            output: "exports/c.csv.partial".into(),
            windows: vec![
                WindowData {
                    start_time: "2026-11-01 00:00:00".into(),
                    end_time: "2026-11-15 00:00:00".into(),
                    pages: 7,
                    customers: 650,
                },
                WindowData {
                    start_time: "2026-11-15 00:00:00".into(),
                    end_time: "2026-12-01 00:00:00".into(),
                    pages: 5,
                    customers: 500,
                },
            ],
        });
        let doc = parse(&html::page(&r, at("2026-12-01T03:00:00Z")));
        assert_self_contained(&doc);
        let count = |o: &str| text(&select(&doc, &format!("#count-{o}"))[0]);
        assert_eq!(
            ["customers", "pages", "windows"].map(count),
            ["1150", "12", "2"]
        );
        assert_eq!(select(&doc, "table.windows tr").len(), 3);
        assert_eq!(select(&doc, "svg").len(), 2);
        assert!(select(&doc, "#chart-bisections").is_empty());
        assert!(text(&select(&doc, "#status")[0]).contains("interrupted"));
        assert!(text(&select(&doc, "body")[0]).contains("cdpjob resume runs/leads/"));
    }

    #[test]
    fn a_run_without_events_draws_empty_charts_saying_so() {
        let mut r = import_report();
        r.timeline = Timeline::default();
        r.status = RunStatus::Running;
        r.body = KindData::Import(ImportData {
            counts: Counts::default(),
            batches_done: 0,
            batches_in_doubt: vec![],
            rejects: vec![],
            failures: vec![],
        });
        let doc = parse(&html::page(&r, at("2026-12-01T03:00:00Z")));
        assert_self_contained(&doc);
        assert_eq!(select(&doc, "svg").len(), 3);
        assert!(select(&doc, "rect").is_empty());
        let empty: Vec<String> = select(&doc, "svg text.empty").iter().map(text).collect();
        assert_eq!(
            empty,
            ["no rows answered yet", "no retries", "no bisections"]
        );
        assert!(select(&doc, ".bar span").is_empty());
        assert!(text(&select(&doc, "body")[0]).contains("no row was rejected"));
    }
}
