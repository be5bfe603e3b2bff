//! The report page itself: one HTML document with its CSS inline and its charts as inline
//! SVG, so it can be mailed, attached to a ticket or opened from a CI artifact as it is —
//! no external resource, no script (a viewer that blocks both still shows everything).
//! Every text from the run goes through [`escape`].

use std::fmt::Write as _;

use jiff::Timestamp;

use super::data::{ExportData, Group, ImportData, KindData, ReportData};
use super::escape::escape;
use super::svg::{Buckets, Chart, number, seconds};
use crate::job::model::JobKind;
use crate::runner::RunStatus;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#222;background:#fff;margin:0;padding:24px 32px;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:4px 0}th,td{text-align:left;padding:3px 12px 3px 0;vertical-align:top}
th{font-weight:600;color:#444}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,'DejaVu Sans Mono',monospace;background:#f4f4f4;padding:1px 4px;border-radius:3px;word-break:break-all}
.status{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.s-finished{background:#2e7d32}.s-interrupted{background:#ef6c00}.s-running{background:#1565c0}.s-stopped_by_guard{background:#c62828}
.bar{display:flex;height:28px;border-radius:4px;overflow:hidden;background:#eee;margin:8px 0;max-width:760px}
.bar span{display:block;height:100%}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.c-created{background:#2e7d32}.c-failed{background:#c62828}.c-rejected{background:#ef6c00}.c-skipped{background:#9e9e9e}.c-unchanged{background:#1565c0}
.examples{margin:0;padding-left:18px;color:#444}
.note{color:#666}
svg.chart{max-width:100%;height:auto;display:block;margin:4px 0 12px}
svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}svg .empty{font-size:14px;fill:#888}
figure{margin:0}figcaption{font-weight:600;margin-top:8px}
";

/// The outcomes in the order the bar stacks them, with their colour class.
const OUTCOMES: [&str; 5] = ["created", "failed", "rejected", "skipped", "unchanged"];
const COLOURS: [&str; 3] = ["#1565c0", "#ef6c00", "#6a1b9a"];

/// The whole page.
pub fn page(r: &ReportData, now: Timestamp) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{} — run {}</title><style>{STYLE}</style></head><body>\n",
        escape(&r.job_name),
        escape(&r.run_id)
    );
    head(&mut s, r);
    timing(&mut s, r);
    match &r.body {
        KindData::Import(d) => import(&mut s, d),
        KindData::Export(d) => export(&mut s, d),
    }
    charts(&mut s, r);
    let _ = write!(
        s,
        "<p class=\"note\">Written by cdpjob {} at {} from the files of the run directory{}.</p>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        time(now),
        if r.status == RunStatus::Running {
            "; the run was still going: write the report again for the rest"
        } else {
            ""
        }
    );
    s
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration in the unit a person reads it in.
pub fn duration(ms: i64) -> String {
    let secs = ms as f64 / 1000.0;
    match ms {
        ..60_000 => format!("{secs:.1} s"),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

fn head(s: &mut String, r: &ReportData) {
    let kind = match r.kind {
        JobKind::BatchCreate => "import (batch_create)",
        JobKind::QueryExport => "export (query_export)",
    };
    let _ = write!(
        s,
        "<h1>{}</h1>\n<p class=\"note\">{kind} · run <code>{}</code></p>\n<table class=\"job\">\
<tr><th>job</th><td id=\"job-name\">{}</td></tr>\
<tr><th>job file</th><td><code>{}</code></td></tr>\
<tr><th>job hash</th><td><code>{}</code></td></tr>\
<tr><th>run directory</th><td><code>{}</code></td></tr></table>\n",
        escape(&r.job_name),
        escape(&r.run_id),
        escape(&r.job_name),
        escape(&r.job_file),
        escape(&r.job_sha256),
        escape(&r.run_dir),
    );
}

fn timing(s: &mut String, r: &ReportData) {
    let (end, dur) = match r.ended_at {
        Some(end) => {
            let ms = end.as_millisecond() - r.started_at.as_millisecond();
            let label = match r.status {
                RunStatus::Finished => String::new(),
                RunStatus::Running => " (last activity; still running)".to_string(),
                _ => " (last activity)".to_string(),
            };
            (format!("{}{label}", time(end)), duration(ms.max(0)))
        }
        None => ("—".to_string(), "—".to_string()),
    };
    let _ = write!(
        s,
        "<h2>Status</h2>\n<table class=\"timing\">\
<tr><th>status</th><td><span id=\"status\" class=\"status s-{}\">{}</span>{}</td></tr>\
<tr><th>started</th><td>{}</td></tr><tr><th>ended</th><td>{}</td></tr>\
<tr><th>duration</th><td id=\"duration\">{}</td></tr>\
<tr><th>resumed</th><td>{} time{}</td></tr>\
<tr><th>requests</th><td id=\"requests\">{}</td></tr><tr><th>retries</th><td id=\"retries\">{}</td></tr>",
        r.status.as_str(),
        escape(&r.status.to_string()),
        if r.resumable {
            format!(
                " — continue it with <code>cdpjob resume {}</code>",
                escape(&r.run_dir)
            )
        } else {
            String::new()
        },
        time(r.started_at),
        escape(&end),
        dur,
        r.resumes,
        if r.resumes == 1 { "" } else { "s" },
        r.requests,
        r.retries,
    );
    if let Some(e) = &r.last_error {
        let _ = write!(s, "<tr><th>last error</th><td>{}</td></tr>", escape(e));
    }
    s.push_str("</table>\n");
}

fn import(s: &mut String, d: &ImportData) {
    let c = &d.counts;
    let values = [c.created, c.failed, c.rejected, c.skipped, c.unchanged];
    let total: u64 = values.iter().sum();
    let _ = write!(
        s,
        "<h2>Outcomes</h2>\n<p>{} row{} read; {} batch{} done{}.</p>\n",
        c.rows,
        if c.rows == 1 { "" } else { "s" },
        d.batches_done,
        if d.batches_done == 1 { "" } else { "es" },
        if d.batches_in_doubt.is_empty() {
            String::new()
        } else {
            format!(
                ", {} in doubt (sent, not answered: a resume sends them again)",
                d.batches_in_doubt.len()
            )
        }
    );
    // The stacked bar: CSS widths, its numbers written out in the table below it.
    s.push_str("<div class=\"bar\" role=\"img\" aria-label=\"");
    let label: Vec<String> = OUTCOMES
        .iter()
        .zip(values)
        .map(|(o, v)| format!("{o} {v}"))
        .collect();
    s.push_str(&escape(&label.join(", ")));
    s.push_str("\">");
    for (o, v) in OUTCOMES.iter().zip(values) {
        if v > 0 {
            let _ = write!(
                s,
                "<span class=\"c-{o}\" style=\"width:{:.3}%\" title=\"{o} {v}\"></span>",
                v as f64 * 100.0 / total as f64
            );
        }
    }
    s.push_str("</div>\n<table class=\"counts\">");
    for (o, v) in OUTCOMES.iter().zip(values) {
        let share = if total == 0 {
            String::new()
        } else {
            format!("{:.1}%", v as f64 * 100.0 / total as f64)
        };
        let _ = write!(
            s,
            "<tr><th><span class=\"swatch c-{o}\"></span>{o}</th><td class=\"n\" id=\"count-{o}\">{v}</td><td class=\"n note\">{share}</td></tr>"
        );
    }
    s.push_str("</table>\n");
    groups(
        s,
        "Rejected rows, by field and rule",
        "no row was rejected",
        ["field", "rule"],
        &d.rejects,
    );
    groups(
        s,
        "Failed rows, by error code",
        "no row failed",
        ["code", ""],
        &d.failures,
    );
}

/// A table of groups, with each group's example rows (row number and message only).
fn groups(s: &mut String, title: &str, none: &str, heads: [&str; 2], groups: &[Group]) {
    let _ = writeln!(s, "<h2>{}</h2>", escape(title));
    if groups.is_empty() {
        let _ = writeln!(s, "<p class=\"note\">{}.</p>", escape(none));
        return;
    }
    let _ = write!(s, "<table class=\"groups\"><tr><th>{}</th>", heads[0]);
    if !heads[1].is_empty() {
        let _ = write!(s, "<th>{}</th>", heads[1]);
    }
    s.push_str("<th>rows</th><th>examples</th></tr>");
    for g in groups {
        let _ = write!(s, "<tr><td><code>{}</code></td>", escape(&g.field));
        if !heads[1].is_empty() {
            let _ = write!(s, "<td>{}</td>", escape(&g.rule));
        }
        let _ = write!(
            s,
            "<td class=\"n\">{}</td><td><ul class=\"examples\">",
            g.count
        );
        for e in &g.examples {
            let _ = write!(s, "<li>row {}: {}</li>", e.row, escape(&e.message));
        }
        if g.count > g.examples.len() as u64 {
            let _ = write!(
                s,
                "<li class=\"note\">… and {} more (<code>cdpjob rows</code> lists them)</li>",
                g.count - g.examples.len() as u64
            );
        }
        s.push_str("</ul></td></tr>");
    }
    s.push_str("</table>\n");
}

fn export(s: &mut String, d: &ExportData) {
    let _ = write!(
        s,
        "<h2>Export</h2>\n<table class=\"export\"><tr><th>customers</th><td class=\"n\" id=\"count-customers\">{}</td></tr>\
<tr><th>pages</th><td class=\"n\" id=\"count-pages\">{}</td></tr>\
<tr><th>windows</th><td class=\"n\" id=\"count-windows\">{}</td></tr>\
<tr><th>output</th><td><code>{}</code>{}</td></tr></table>\n",
        d.customers,
        d.pages,
        d.windows.len(),
        escape(&d.output),
        if d.all_pages_written {
            ""
        } else {
            " <span class=\"note\">(partial: not every page written yet)</span>"
        }
    );
    s.push_str("<table class=\"windows\"><tr><th>window</th><th>start</th><th>end</th><th>pages</th><th>customers</th></tr>");
    for (i, w) in d.windows.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            escape(&w.start_time),
            escape(&w.end_time),
            w.pages,
            w.customers
        );
    }
    s.push_str("</table>\n");
}

fn charts(s: &mut String, r: &ReportData) {
    let t = &r.timeline;
    let what = match r.kind {
        JobKind::BatchCreate => "rows answered",
        JobKind::QueryExport => "customers exported",
    };
    s.push_str("<h2>Over time</h2>\n");
    let rows: u64 = t.rows.iter().map(|(_, n)| n).sum();
    let throughput =
        Buckets::of(t.span_ms, t.rows.iter().map(|(at, n)| (*at, *n as f64))).per_second();
    let desc = format!(
        "{rows} {what} over {}; at most {} per second.",
        seconds(t.span_ms),
        number(throughput.peak())
    );
    figure(
        s,
        &Chart {
            id: "throughput",
            title: &format!("Throughput: {what} per second"),
            desc: &desc,
            y_label: &format!("{what} / s"),
            buckets: &throughput,
            marks: &t.resumes,
            empty: &format!("no {what} yet"),
            colour: COLOURS[0],
        },
    );
    let retries = Buckets::of(t.span_ms, t.retries.iter().map(|(at, _)| (*at, 1.0)));
    let desc = if t.retries.is_empty() {
        format!("No retries over {}.", seconds(t.span_ms))
    } else {
        format!(
            "{} retr{} over {}; at most {} in one bar.",
            t.retries.len(),
            if t.retries.len() == 1 { "y" } else { "ies" },
            seconds(t.span_ms),
            number(retries.peak())
        )
    };
    figure(
        s,
        &Chart {
            id: "retries",
            title: "Retries",
            desc: &desc,
            y_label: "retries",
            buckets: &retries,
            marks: &t.resumes,
            empty: "no retries",
            colour: COLOURS[1],
        },
    );
    let reasons = t.retry_reasons();
    if !reasons.is_empty() {
        s.push_str("<table class=\"reasons\"><tr><th>retried because</th><th>times</th></tr>");
        for (reason, n) in reasons {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
                escape(&reason)
            );
        }
        s.push_str("</table>\n");
    }
    if r.kind == JobKind::BatchCreate {
        let bisections = Buckets::of(t.span_ms, t.bisections.iter().map(|at| (*at, 1.0)));
        let desc = format!(
            "{} bisection{} over {}: a batch failed as a whole for one record (12148) and was split in halves to find it.",
            t.bisections.len(),
            if t.bisections.len() == 1 { "" } else { "s" },
            seconds(t.span_ms)
        );
        figure(
            s,
            &Chart {
                id: "bisections",
                title: "Bisections",
                desc: &desc,
                y_label: "bisections",
                buckets: &bisections,
                marks: &t.resumes,
                empty: "no bisections",
                colour: COLOURS[2],
            },
        );
    }
}

/// A chart in a `<figure>`, its description also written as the caption's text.
fn figure(s: &mut String, chart: &Chart<'_>) {
    let _ = writeln!(
        s,
        "<figure class=\"chart\" id=\"chart-{}\"><figcaption>{}</figcaption><p class=\"note\">{}</p>{}</figure>",
        escape(chart.id),
        escape(chart.title),
        escape(chart.desc),
        chart.render()
    );
}
