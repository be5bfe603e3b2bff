//! Paging through one window of a query: one page at a time (each page's cursor comes from
//! the previous answer), each page's new customers written to the window's partial output
//! and their ids to its sidecar, both made durable before the checkpoint that counts them.
//! Nothing assumes an order: the cursor is followed whichever way the ids run, the export
//! ends when `next` is null, and only a real loop stops it (a cursor asked for before, a
//! page whose ids this window all wrote before). An answer that makes no sense stops the
//! export (resumably) rather than ending it early: ending would move a short file into
//! place and advance the state past customers never written.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

use super::checkpoint::ExportCheckpoint;
use super::format::{self, Encoder};
use super::seen::{self, Claim, Seen};
use super::window::Window;
use crate::api::client::ApiError;
use crate::api::client::Reply as ApiReply;
use crate::api::wire::QueryResult;
use crate::run_dir::events::{Event, now};
use crate::run_dir::{self, ExportRecord, atomic};
use crate::runner::progress::Progress;
use crate::runner::{self, Context, Stop};

/// What every window of one export shares.
pub struct Pager<'a> {
    pub ctx: &'a Context<'a>,
    pub rec: &'a ExportRecord,
    pub seen: Seen,
    pub encoder: Encoder,
    /// Set when one window stopped: the others stop at once (their requests in flight are
    /// dropped: a query only reads) — `halt` wakes them.
    stopping: AtomicBool,
    halt: tokio::sync::Notify,
    /// The first window's own reason to stop: the one the export reports.
    first_stop: Mutex<Option<Stop>>,
    /// Each window's checkpoint as last committed: what a stopped export reports.
    latest: Mutex<Vec<Option<ExportCheckpoint>>>,
    /// Customers and pages written by this invocation, over all windows (for progress).
    rows: AtomicU64,
    pages: AtomicU64,
    progress: Mutex<Progress>,
    /// Whether the export has sub-windows (their pages are journaled with their index).
    windowed: bool,
}

/// A window as its files said when the export (re)started.
pub struct Opened {
    pub cp: ExportCheckpoint,
    asked: HashSet<i64>,
}

impl<'a> Pager<'a> {
    pub fn new(ctx: &'a Context<'a>, rec: &'a ExportRecord) -> Pager<'a> {
        Pager {
            ctx,
            rec,
            seen: Seen::default(),
            encoder: Encoder::for_record(rec),
            stopping: AtomicBool::new(false),
            halt: tokio::sync::Notify::new(),
            first_stop: Mutex::new(None),
            latest: Mutex::new(vec![None; rec.windows.len().max(1)]),
            rows: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            progress: Mutex::new(ctx.progress(None, None)),
            windowed: !rec.windows.is_empty(),
        }
    }

    /// Stop every window: `stop` is the export's reason unless another came first (one no
    /// resume mends wins over one it does).
    pub fn halt(&self, stop: Stop) {
        {
            let mut first = self.first_stop.lock().expect("stop lock");
            match &*first {
                None => *first = Some(stop),
                Some(f) if f.resumable && !stop.resumable => *first = Some(stop),
                Some(_) => {}
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.halt.notify_waiters();
    }

    /// Why the export stopped, if a window did.
    pub fn stopped(&self) -> Option<Stop> {
        self.first_stop.lock().expect("stop lock").clone()
    }

    /// The export's checkpoint as its windows last committed them, summed.
    pub fn committed(&self) -> ExportCheckpoint {
        let latest = self.latest.lock().expect("latest lock");
        let mut sum = ExportCheckpoint::default();
        for cp in latest.iter().flatten() {
            sum.pages += cp.pages;
            sum.rows += cp.rows;
        }
        sum
    }

    fn record(&self, w: &Window, cp: &ExportCheckpoint) {
        self.latest.lock().expect("latest lock")[w.index] = Some(cp.clone());
    }

    /// Resolves once the export is stopping (at once if it is).
    async fn halted(&self) {
        let notified = self.halt.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }

    /// Read a window's checkpoint and sidecar (its ids join the export's). Every window is
    /// opened before any is paged, so that no id written before is taken for a new one.
    pub fn open(&self, w: &Window) -> Result<Opened, Stop> {
        let cp: ExportCheckpoint = runner::read_checkpoint_at(&w.checkpoint)?;
        self.record(w, &cp);
        if cp.complete && !self.windowed {
            // The only window, all written (its sidecar may be cleaned up already). A
            // complete sub-window's ids still count: a neighbour must not write them again.
            return Ok(Opened {
                cp,
                asked: HashSet::new(),
            });
        }
        let loaded = self
            .seen
            .load(w.index, &seen::sidecar_of(&w.partial), cp.seen_len)
            .map_err(|e| Stop::io("cannot read the ids written so far", &e))?;
        Ok(Opened {
            asked: loaded.cursors.into_iter().collect(),
            cp,
        })
    }

    /// Write every page of `w` not yet written; returns its checkpoint once complete.
    pub async fn page(&self, w: &Window, opened: Opened) -> Result<ExportCheckpoint, Stop> {
        let Opened { mut cp, mut asked } = opened;
        if cp.complete {
            return Ok(cp);
        }
        let durable = atomic::durable();
        let sidecar = seen::sidecar_of(&w.partial);
        if let Some(d) = w.partial.parent() {
            run_dir::create_private_dir(d)
                .map_err(|e| Stop::io(&format!("cannot create {}", d.display()), &e))?;
        }
        let mut files = Some((
            atomic::open_at_length(&w.partial, cp.output_len)
                .map_err(|e| Stop::io("cannot open the partial output", &e))?,
            atomic::open_at_length(&sidecar, cp.seen_len)
                .map_err(|e| Stop::io("cannot open the ids written so far", &e))?,
        ));
        if cp.output_len == 0
            && let Some(d) = w.partial.parent()
        {
            // The new file's name must outlive a power cut as surely as its first page.
            atomic::sync_dir(d).map_err(|e| Stop::io("syncing the output directory", &e))?;
        }
        // The next page is asked for while this one is made durable: its cursor is known
        // as soon as this page's answer is in, and nothing of it is written before this
        // page's checkpoint is.
        let mut prefetched: Option<Result<ApiReply<QueryResult>, Stop>> = None;
        while !cp.complete {
            if self.stopping.load(Ordering::SeqCst) {
                return Err(Stop::resumable(STOPPING));
            }
            let reply = match prefetched.take() {
                Some(r) => r?,
                None => self.fetch(w, cp.after).await?,
            };
            let attempts = reply.attempts;
            let Some(QueryResult {
                paging,
                customer_list,
            }) = reply.data
            else {
                return Err(Stop::resumable("the API answered the query without data"));
            };
            let more = paging.next.is_some();
            if customer_list.is_empty() && more {
                return Err(Stop::resumable(
                    "the API answered an empty page that has a next page",
                ));
            }
            // Which customers are new: an id another window wrote is left out (their
            // boundaries overlap); ids this window wrote before, counted.
            let on_page = customer_list.len();
            let last_on_page = customer_list.last().and_then(format::id_of);
            // Each new customer with its id (none when the answer has none: it cannot be
            // de-duplicated, and is written).
            let mut fresh: Vec<(Value, Option<i64>)> = Vec::with_capacity(on_page);
            let mut again = 0usize;
            let mut elsewhere = 0u64;
            for c in customer_list {
                match format::id_of(&c) {
                    Some(id) => match self.seen.claim(id, w.index) {
                        Claim::Fresh => fresh.push((c, Some(id))),
                        Claim::Again => again += 1,
                        Claim::Elsewhere => elsewhere += 1,
                    },
                    None => fresh.push((c, None)),
                }
            }
            let room = self
                .rec
                .max_records
                .map_or(u64::MAX, |m| m.saturating_sub(cp.rows));
            // Reaching max_records ends the export; it cut the query short when the page
            // held more, or more pages were to come.
            let reached = fresh.len() as u64 >= room;
            let dropped = fresh.len() as u64 > room;
            if dropped {
                let cut: Vec<i64> = fresh
                    .split_off(room as usize)
                    .into_iter()
                    .filter_map(|(_, id)| id)
                    .collect();
                self.seen.release(&cut);
            }
            let fresh_ids: Vec<i64> = fresh.iter().filter_map(|(_, id)| *id).collect();
            let fresh: Vec<Value> = fresh.into_iter().map(|(c, _)| c).collect();
            let complete = !more || reached;
            let asked_now = cp.after;
            let next_after = paging.after.or(last_on_page);
            if !complete {
                let looped = if again == on_page {
                    Some("a page of customers it had all written already".to_string())
                } else {
                    match next_after {
                        None => Some("a next page without a cursor".to_string()),
                        Some(n) if asked.contains(&n) || Some(n) == asked_now => {
                            Some(format!("the cursor {n} again, asked for before"))
                        }
                        Some(_) => None,
                    }
                };
                if let Some(what) = looped {
                    self.seen.release(&fresh_ids);
                    return Err(Stop::resumable(format!(
                        "the API's paging went round in a loop ({what}; asked after {asked_now:?}); the export stopped"
                    )));
                }
            }
            let mut page = if w.with_header && cp.output_len == 0 {
                self.encoder.header()
            } else {
                Vec::new()
            };
            self.encoder.encode(&fresh, &mut page);
            let records = seen::records(asked_now, &fresh_ids);
            let (out, side) = files.take().expect("the files are home between pages");
            let checkpoint_path = w.checkpoint.clone();
            let mut next_cp = cp.clone();
            let fresh_count = fresh.len() as u64;
            let last_fresh = fresh_ids.last().copied();
            // The page, its ids and the checkpoint that counts them, in that order, on one
            // blocking thread.
            let partial = w.partial.clone();
            let commit = async move {
                tokio::task::spawn_blocking(move || {
                    let (out, side, written) = write_page(out, side, &page, &records, durable);
                    let committed = match written {
                        Ok((page_len, records_len)) => {
                            crate::failpoint!("export_before_checkpoint");
                            next_cp.pages += 1;
                            next_cp.rows += fresh_count;
                            next_cp.output_len += page_len;
                            next_cp.seen_len += records_len;
                            next_cp.last_id = last_fresh.or(next_cp.last_id);
                            next_cp.capped = reached && (dropped || more);
                            next_cp.complete = complete;
                            next_cp.after = next_after.or(next_cp.after);
                            run_dir::write_versioned(&checkpoint_path, &next_cp)
                                .map(|()| next_cp)
                                .map_err(|e| Stop::io("writing the checkpoint", &e))
                        }
                        Err(e) => Err(Stop::io(&format!("writing {}", partial.display()), &e)),
                    };
                    (out, side, committed)
                })
                .await
                .expect("a page commit does not panic")
            };
            let ((out, side, committed), next) = if complete {
                (commit.await, None)
            } else {
                let (c, n) = tokio::join!(commit, self.fetch(w, next_after));
                (c, Some(n))
            };
            files = Some((out, side));
            cp = committed?;
            self.record(w, &cp);
            prefetched = next;
            if let Some(a) = asked_now {
                asked.insert(a);
            }
            self.ctx
                .journal
                .append(&Event::Page {
                    window: self.windowed.then_some(w.index),
                    page: cp.pages,
                    after: asked_now,
                    customers: fresh_count,
                    elsewhere,
                    next: paging.next,
                    attempts,
                    at: now(),
                })
                .await
                .map_err(|e| Stop::io("writing the journal", &e))?;
            self.tick(fresh_count);
        }
        Ok(cp)
    }

    /// Ask for the page after `after` of window `w`; a signal stops the asking.
    async fn fetch(&self, w: &Window, after: Option<i64>) -> Result<ApiReply<QueryResult>, Stop> {
        let mut body = w.request.clone();
        if let Some(after) = after {
            body["after"] = Value::from(after);
        }
        self.ctx.requests.fetch_add(1, Ordering::Relaxed);
        let mut shutdown = self.ctx.shutdown.clone();
        // A query only reads: one interrupted mid-flight is simply asked again.
        let reply = tokio::select! {
            biased;
            _ = shutdown.requested() => {
                return Err(Stop::resumable("interrupted by a signal"));
            }
            _ = self.halted() => return Err(Stop::resumable(STOPPING)),
            r = self.ctx.client.query(&body) => r,
        };
        match reply {
            Ok(r) if r.code == 0 => Ok(r),
            Ok(r) => Err(Stop::not_resumable(query_refused(
                r.code,
                &r.message.unwrap_or_default(),
            ))),
            Err(ApiError::Refused { code, message, .. }) if code == 1002 => {
                Err(Stop::not_resumable(query_refused(code, &message)))
            }
            Err(e) => Err(Stop::resumable(e.advice_for_a_run())),
        }
    }

    fn tick(&self, customers: u64) {
        let rows = self.rows.fetch_add(customers, Ordering::Relaxed) + customers;
        let pages = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        let mut progress = self.progress.lock().expect("progress lock");
        let rate = progress.rate(rows);
        let retries = self.ctx.retries();
        progress.tick(|| {
            format!("{rows} customers, {pages} pages, {rate:.0} customers/s, {retries} retries")
        });
    }
}

/// Why a window stopped because another one did.
const STOPPING: &str = "the export is stopping";

/// Append a page to the partial output and its ids to the sidecar, and make both durable;
/// the files come back with how many bytes went into each.
fn write_page(
    mut out: File,
    mut side: File,
    page: &[u8],
    records: &[u8],
    durable: bool,
) -> (File, File, std::io::Result<(u64, u64)>) {
    let result = (|| {
        crate::failpoint_io!("export_write");
        out.write_all(page)?;
        seen::append(&mut side, records, durable)?;
        if durable {
            out.sync_data()?;
        }
        Ok((page.len() as u64, records.len() as u64))
    })();
    (out, side, result)
}

/// A refused query: the request was rendered when the run started and is kept in its
/// manifest, so resuming sends it again unchanged — a new run is what a fixed job needs.
fn query_refused(code: i64, message: &str) -> String {
    format!(
        "the API refused the query: code {code}: {message}; the query was rendered when this run started and a resume sends it unchanged: fix the job's query block and start a new run"
    )
}
