//! `cdpjob explain` as text: one section per stage the row goes through, in the order a run
//! takes them, each a table lined up by terminal columns (values are often Chinese).

use std::fmt::Write as _;

use unicode_width::UnicodeWidthStr;

use super::{Explanation, SlotView};
use crate::job::Job;

/// Lines of cells, every column but the last padded to the widest, each line indented.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.saturating_sub(1))
        .map(|i| {
            rows.iter()
                .filter(|r| r.len() > i + 1)
                .map(|r| r[i].width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - cell.width() + 2));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// A value exactly: text quoted (spaces, empty text and `null` show), anything else as JSON.
fn shown(v: &serde_json::Value) -> String {
    v.to_string()
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

pub fn text(e: &Explanation, job: &Job) -> String {
    let mut o = String::new();
    let place = match (e.line, e.sheet_row) {
        (Some(line), _) => format!(", line {line}"),
        (None, Some(sheet_row)) => format!(", sheet row {sheet_row}"),
        (None, None) => String::new(),
    };
    let _ = writeln!(
        o,
        "explain: {} (batch_create) from {}",
        e.job,
        job.path.display()
    );
    let _ = writeln!(o, "row {} of {}{place}", e.row, e.source);

    o.push_str("\nrecord (as read):\n");
    match &e.record {
        serde_json::Value::Object(columns) if !columns.is_empty() => {
            let rows: Vec<Vec<String>> = columns
                .iter()
                .map(|(k, v)| vec![k.clone(), shown(v)])
                .collect();
            o.push_str(&table(&rows, "  "));
        }
        serde_json::Value::Object(_) => o.push_str("  (no columns)\n"),
        _ => {
            let _ = writeln!(
                o,
                "  not readable: {}",
                e.unreadable.as_deref().unwrap_or("")
            );
            let _ = writeln!(o, "  raw  {}", quoted(e.raw.as_deref().unwrap_or("")));
        }
    }

    if let Some(f) = &e.filter {
        let _ = writeln!(o, "\nfilter  {}", f.template);
        let verdict = |keep: bool| {
            if keep {
                "keeps the row"
            } else {
                "skips the row"
            }
        };
        let line = match (&f.minijinja, &f.minijinja_error, f.native) {
            (_, Some(err), _) => format!("fails: {err} (the row is rejected)"),
            (Some(keep), _, Some(native)) if native == *keep => {
                format!("{} (native = minijinja)", verdict(*keep))
            }
            (Some(keep), _, Some(native)) => format!(
                "NATIVE ≠ MINIJINJA: native {}, minijinja {}",
                verdict(native),
                verdict(*keep)
            ),
            (Some(keep), _, None) if f.native_path == "stepped_aside" => {
                format!("{} (minijinja; native stepped aside)", verdict(*keep))
            }
            (Some(keep), _, None) => format!("{} (minijinja only)", verdict(*keep)),
            (None, None, _) => String::new(),
        };
        let _ = writeln!(o, "  {line}");
    }

    if !e.mapping.is_empty() {
        o.push_str("\nmapping:\n");
        if e.outcome == "skipped" {
            o.push_str("  (rendered here to show it: a run does not map a row its filter skips)\n");
        }
        let mut rows = vec![vec![
            "field".to_string(),
            "rendered".to_string(),
            "path".to_string(),
            "template".to_string(),
        ]];
        let mut notes: Vec<(usize, String)> = Vec::new();
        for s in &e.mapping {
            rows.push(vec![
                s.field.clone(),
                s.minijinja
                    .as_deref()
                    .map_or_else(|| "error".to_string(), quoted),
                path(s).to_string(),
                s.template.clone(),
            ]);
            if let Some(err) = &s.minijinja_error {
                notes.push((rows.len() - 1, format!("↳ {err}")));
            }
            if !s.agree {
                notes.push((
                    rows.len() - 1,
                    format!(
                        "↳ native {} but minijinja {}",
                        s.native.as_deref().map_or_else(String::new, quoted),
                        s.minijinja
                            .as_deref()
                            .map_or_else(|| "fails".to_string(), quoted)
                    ),
                ));
            }
        }
        let lines = table(&rows, "  ");
        let pad = rows.iter().map(|r| r[0].width()).max().unwrap_or(0) + 4;
        for (i, line) in lines.lines().enumerate() {
            let _ = writeln!(o, "{line}");
            for (_, note) in notes.iter().filter(|(n, _)| *n == i) {
                let _ = writeln!(o, "{}{note}", " ".repeat(pad));
            }
        }
    }

    if let Some(c) = &e.customer {
        let _ = writeln!(
            o,
            "\ncustomer as the API would receive it:\n  {}",
            serde_json::to_string(c).unwrap_or_default()
        );
    }

    if !e.rules.is_empty() {
        o.push_str("\nrules:\n");
        let rows: Vec<Vec<String>> = e
            .rules
            .iter()
            .map(|r| {
                let verdict = match (&r.message, r.verdict) {
                    (Some(m), "broken") => format!("broken: {m}"),
                    (Some(m), v) => format!("{}: {m}", v.replace('_', " ")),
                    (None, v) => v.replace('_', " "),
                };
                vec![r.field.clone(), r.rule.clone(), verdict]
            })
            .collect();
        o.push_str(&table(&rows, "  "));
    }

    if let Some(s) = &e.sync {
        let _ = writeln!(
            o,
            "\nsync: compared with {}{}",
            s.compared_with,
            s.match_key
                .as_ref()
                .map_or_else(String::new, |k| format!("; match key {k}"))
        );
        if let Some(note) = &s.note {
            let _ = writeln!(o, "  note: {note}");
        }
    }

    let _ = writeln!(o, "\noutcome: {}", outcome(e));
    let b = &e.batch;
    let owns = format!(
        "batch {} (rows {}–{}: {} row(s), {} customer(s) sent)",
        b.seq, b.first_row, b.last_row, b.rows, b.customers
    );
    match b.position {
        Some(p) => {
            let _ = writeln!(
                o,
                "{owns}: position {p} of {} in its batch_create request",
                b.customers
            );
        }
        None => {
            let _ = writeln!(o, "{owns}: the row takes no place in a request");
        }
    }

    if let Some(r) = &e.run {
        let _ = writeln!(o, "\nrun {} ({}): {}", r.run_id, r.status, r.run_dir);
        let t = &r.row;
        let what = match t.outcome {
            "created" => format!(
                "created, customer id {}",
                t.customer_id.map_or_else(String::new, |id| id.to_string())
            ),
            "failed" => format!(
                "failed: error {} {}",
                t.error_code.map_or_else(String::new, |c| c.to_string()),
                t.error_message.as_deref().unwrap_or("")
            ),
            "rejected" => {
                let reasons: Vec<String> = t
                    .errors
                    .as_ref()
                    .and_then(|v| v.as_array())
                    .map(|errors| {
                        errors
                            .iter()
                            .map(|e| e["message"].as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                format!("rejected: {}", reasons.join("; "))
            }
            "not_done" => "not done yet".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(o, "  outcome  {what}");
        if let Some(note) = &t.note {
            let _ = writeln!(o, "  note: {note}");
        }
        if t.events.is_empty() {
            let _ = writeln!(o, "  journal of batch {}: no request", b.seq);
        } else {
            let _ = writeln!(
                o,
                "  journal of batch {} (* marks the parts that hold row {}):",
                b.seq, e.row
            );
            let rows: Vec<Vec<String>> = t
                .events
                .iter()
                .map(|ev| {
                    vec![
                        // One width for every time, so the columns after it line up.
                        ev.journal["at"]
                            .as_str()
                            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
                            .map_or_else(String::new, |at| {
                                at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
                            }),
                        if ev.holds_row { "*" } else { " " }.to_string(),
                        ev.event.to_string(),
                        ev.summary.clone(),
                    ]
                })
                .collect();
            o.push_str(&table(&rows, "    "));
        }
    }

    o.push('\n');
    if e.paths_agree {
        o.push_str(
            "the native fast path and minijinja agree on every template and on the outcome\n",
        );
    } else {
        let _ = writeln!(
            o,
            "THE NATIVE FAST PATH AND MINIJINJA DISAGREE (a bug in cdpjob: please report it):"
        );
        for d in &e.disagreements {
            let _ = writeln!(o, "  {d}");
        }
    }
    o.push_str("no request was sent (explain never touches the network)\n");
    o
}

/// How a template was rendered, in a few words.
fn path(s: &SlotView) -> &'static str {
    match (s.native_path, s.agree) {
        ("rendered", true) => "native = minijinja",
        ("rendered", false) => "NATIVE ≠ MINIJINJA",
        ("stepped_aside", _) => "minijinja (native stepped aside)",
        _ => "minijinja only",
    }
}

/// The row's verdict, with its reasons.
fn outcome(e: &Explanation) -> String {
    match e.outcome {
        "valid" => "valid: sent".to_string(),
        "skipped" => "skipped by the filter: not sent".to_string(),
        "unchanged" => {
            "unchanged: the sync state holds this customer exactly so: not sent".to_string()
        }
        _ => {
            let reasons: Vec<String> = e
                .errors
                .iter()
                .map(|err| format!("{} / {}: {}", err.field, err.rule, err.message))
                .collect();
            format!("rejected: not sent ({})", reasons.join("; "))
        }
    }
}
