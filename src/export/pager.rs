//! Paging through a query: one page at a time (each page's cursor comes from the previous
//! answer), each written to the partial output and made durable before the checkpoint that
//! counts it. An answer that makes no sense stops the export (resumably) rather than ending
//! it early: ending would rename a short file and advance the state past customers never
//! written.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::checkpoint::ExportCheckpoint;
use super::format::{self, Encoder};
use crate::api::client::ApiError;
use crate::api::wire::QueryResult;
use crate::run_dir::events::{Event, now};
use crate::run_dir::{self, ExportRecord, atomic};
use crate::runner::{self, Context, Stop};

/// Write every page not yet written; `cp` follows the checkpoint on disk.
pub async fn page_through(
    ctx: &Context<'_>,
    rec: &ExportRecord,
    cp: &mut ExportCheckpoint,
) -> Result<(), Stop> {
    let durable = atomic::durable();
    let checkpoint_path = ctx.dir.file(run_dir::CHECKPOINT);
    *cp = runner::read_checkpoint(ctx.dir)?;
    let partial = PathBuf::from(&rec.partial);
    let encoder = Encoder::for_record(rec);
    let mut shutdown = ctx.shutdown.clone();
    let mut progress = ctx.progress(None, None);
    let rows_before = cp.rows;
    if !cp.complete {
        let mut out = atomic::open_at_length(&partial, cp.output_len)
            .map_err(|e| Stop::io("cannot open the partial output", &e))?;
        if cp.output_len == 0
            && let Some(d) = partial.parent()
        {
            // The new file's name must outlive a power cut as surely as its first page.
            atomic::sync_dir(d).map_err(|e| Stop::io("syncing the output directory", &e))?;
        }
        while !cp.complete {
            let mut body = rec.request.clone();
            if let Some(after) = cp.after {
                body["after"] = Value::from(after);
            }
            ctx.requests.fetch_add(1, Ordering::Relaxed);
            // A query only reads: one interrupted mid-flight is simply asked again.
            let reply = tokio::select! {
                biased;
                _ = shutdown.requested() => {
                    return Err(Stop::resumable("interrupted by a signal"));
                }
                r = ctx.client.query(&body) => r,
            };
            let reply = match reply {
                Ok(r) if r.code == 0 => r,
                Ok(r) => {
                    return Err(Stop::not_resumable(query_refused(
                        r.code,
                        &r.message.unwrap_or_default(),
                    )));
                }
                Err(ApiError::Refused { code, message, .. }) if code == 1002 => {
                    return Err(Stop::not_resumable(query_refused(code, &message)));
                }
                Err(e) => {
                    return Err(Stop::resumable(e.advice_for_a_run()));
                }
            };
            let attempts = reply.attempts;
            // An answer that makes no sense stops the export (resumable) rather than ending
            // it early: ending would rename a short file and advance the state past
            // customers never written.
            let Some(QueryResult {
                paging,
                mut customer_list,
            }) = reply.data
            else {
                return Err(Stop::resumable(
                    "the API answered the query without data; the export stopped and can be resumed",
                ));
            };
            let more = paging.next.is_some();
            if customer_list.is_empty() && more {
                return Err(Stop::resumable(
                    "the API answered an empty page that has a next page; the export stopped and can be resumed",
                ));
            }
            let room = rec
                .max_records
                .map_or(u64::MAX, |m| m.saturating_sub(cp.rows));
            // Reaching max_records ends the export; it cut the query short when the page
            // held more, or more pages were to come.
            let reached = customer_list.len() as u64 >= room;
            let dropped = customer_list.len() as u64 > room;
            if reached {
                customer_list.truncate(room as usize);
            }
            let complete = !more || reached;
            let asked = cp.after;
            let last_id = customer_list.last().and_then(format::id_of);
            let next_after = paging.after.or(last_id);
            let moves_forward = match (next_after, asked) {
                (Some(next), Some(asked)) => next > asked,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !complete && !moves_forward {
                // Ids ascend: a cursor that does not move forward would page forever, or
                // back over customers already written.
                return Err(Stop::resumable(format!(
                    "the API's paging cursor did not move forward (asked after {asked:?}, got {next_after:?}); the export stopped to avoid a loop"
                )));
            }
            let mut buf = if cp.output_len == 0 {
                encoder.header()
            } else {
                Vec::new()
            };
            encoder.encode(&customer_list, &mut buf);
            write_page(&mut out, &buf, durable)
                .map_err(|e| Stop::io(&format!("writing {}", partial.display()), &e))?;
            crate::failpoint!("export_before_checkpoint");
            cp.pages += 1;
            cp.rows += customer_list.len() as u64;
            cp.output_len += buf.len() as u64;
            cp.last_id = last_id.or(cp.last_id);
            cp.capped = reached && (dropped || more);
            cp.complete = complete;
            cp.after = next_after.or(cp.after);
            run_dir::write_versioned(&checkpoint_path, &*cp)
                .map_err(|e| Stop::io("writing the checkpoint", &e))?;
            ctx.journal
                .append(&Event::Page {
                    page: cp.pages,
                    after: asked,
                    customers: customer_list.len() as u64,
                    next: paging.next,
                    attempts,
                    at: now(),
                })
                .await
                .map_err(|e| Stop::io("writing the journal", &e))?;
            let rate = progress.rate(cp.rows - rows_before);
            progress.tick(|| {
                format!(
                    "{} customers, {} pages, {rate:.0} customers/s, {} retries",
                    cp.rows,
                    cp.pages,
                    ctx.retries()
                )
            });
        }
    }
    progress.finish();
    Ok(())
}

/// Append a page to the partial output and make it durable.
fn write_page(out: &mut std::fs::File, page: &[u8], durable: bool) -> std::io::Result<()> {
    crate::failpoint_io!("export_write");
    out.write_all(page)?;
    if durable {
        out.sync_data()?;
    }
    Ok(())
}

/// A refused query: the request was rendered when the run started and is kept in its
/// manifest, so resuming sends it again unchanged — a new run is what a fixed job needs.
fn query_refused(code: i64, message: &str) -> String {
    format!(
        "the API refused the query: code {code}: {message}; the query was rendered when this run started and a resume sends it unchanged: fix the job's query block and start a new run"
    )
}
