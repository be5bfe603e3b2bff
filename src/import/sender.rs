//! Sending a batch: its intent journaled before the request, its outcome after, a
//! whole-request 12148 bisected until the culprit records are alone, and nothing sent once
//! the run is stopping. Every batch task of an import shares one [`Sender`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::batches::BatchUnit;
use crate::api::client::{CODE_AGENT_MISSING, Client};
use crate::api::payload::PayloadHash;
use crate::api::wire::BatchCreateEnvelope;
use crate::run_dir::events::{Answer, CreatedRow, Event, FailedRow, Part, now};
use crate::run_dir::journal::GroupJournal;
use crate::runner::Stop;

/// Everything the request tasks share.
pub struct Sender {
    pub journal: Arc<GroupJournal>,
    /// Outcomes already journaled (from before a crash), by part.
    known: Mutex<HashMap<Part, Answer>>,
    /// Payload hashes of journaled intents, to check a resume re-derived the same batch,
    /// and how many times each part was sent.
    intents: HashMap<Part, PayloadHash>,
    attempts: Mutex<HashMap<Part, u32>>,
    pub client: Arc<Client>,
    /// The run's request envelope (merge type, tenant, app key, strict_binding).
    envelope: BatchCreateEnvelope,
    pub requests: Arc<AtomicU64>,
    /// Request slots: `concurrency` of them. More batches than that are in progress, so a
    /// batch takes a slot only once its intent is durable, right before it is sent.
    pub slots: tokio::sync::Semaphore,
    /// Set when the run stops (a signal, a final error): a batch not sent yet is not sent.
    pub stopping: AtomicBool,
}

/// Created and failed rows of a part of a batch.
type Resolved = (Vec<CreatedRow>, Vec<FailedRow>);
/// The boxed future of a (recursive) resolution.
type Resolving<'a> =
    std::pin::Pin<Box<dyn Future<Output = std::result::Result<Resolved, Stop>> + Send + 'a>>;

fn io_stop(what: &str, e: std::io::Error) -> Stop {
    Stop::io(what, &e)
}

impl Sender {
    /// A sender for `job`, knowing what the journal recorded before (a resume's).
    pub fn new(
        job: &crate::job::Job,
        events: Vec<Event>,
        journal: Arc<GroupJournal>,
        client: Arc<Client>,
        requests: Arc<AtomicU64>,
    ) -> Sender {
        let mut known = HashMap::new();
        let mut intents = HashMap::new();
        let mut attempts: HashMap<Part, u32> = HashMap::new();
        for e in events {
            match e {
                Event::Intent { part, payload, .. } => {
                    intents.insert(part, payload);
                    *attempts.entry(part).or_insert(0) += 1;
                }
                Event::Outcome { part, answer, .. } => {
                    known.insert(part, answer);
                }
                Event::Withdrawn { part, .. } => {
                    // That intent was never sent: its attempt number is free again.
                    if let Some(n) = attempts.get_mut(&part) {
                        *n = n.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
        Sender {
            journal,
            known: Mutex::new(known),
            intents,
            attempts: Mutex::new(attempts),
            client,
            envelope: BatchCreateEnvelope::new(
                job.spec.merge.wire_type(),
                job.spec.api.tenant_id,
                &job.spec.api.app_key,
                job.spec.strict_binding,
            ),
            requests,
            slots: tokio::sync::Semaphore::new(job.spec.api.concurrency.max(1)),
            stopping: AtomicBool::new(false),
        }
    }

    /// Requests being sent right now.
    pub fn sending(&self, concurrency: usize) -> usize {
        concurrency - self.slots.available_permits()
    }

    /// Append to the journal; returns once the event is durable.
    pub async fn log(&self, event: &Event) -> std::result::Result<(), Stop> {
        self.journal
            .append_line(event.line())
            .await
            .map_err(|e| io_stop("writing the journal", e))
    }

    /// Resolve customers `lo..hi` of `unit`: from the journal if answered before, else by
    /// sending them; a whole-request 12148 is bisected until the culprits are alone.
    pub fn resolve<'a>(
        self: &'a Arc<Self>,
        unit: &'a BatchUnit,
        lo: u32,
        hi: u32,
    ) -> Resolving<'a> {
        Box::pin(async move {
            let part = Part {
                seq: unit.seq,
                lo,
                hi,
            };
            let known = self.known.lock().expect("known lock").get(&part).cloned();
            let answer = match known {
                Some(a) => a,
                None => self.send(unit, part).await?,
            };
            match answer {
                Answer::Answered { created, failed } => Ok((created, failed)),
                Answer::WholeFailed { code, .. } if hi - lo > 1 => {
                    self.log(&Event::Bisect {
                        part,
                        code,
                        at: now(),
                    })
                    .await?;
                    let mid = lo + (hi - lo) / 2;
                    let (mut c1, mut f1) = self.resolve(unit, lo, mid).await?;
                    let (c2, f2) = self.resolve(unit, mid, hi).await?;
                    c1.extend(c2);
                    f1.extend(f2);
                    Ok((c1, f1))
                }
                Answer::WholeFailed { code, message } => Ok((
                    Vec::new(),
                    vec![FailedRow {
                        row: unit.customer_rows[lo as usize],
                        error_code: code,
                        error_message: message,
                    }],
                )),
            }
        })
    }

    async fn send(&self, unit: &BatchUnit, part: Part) -> std::result::Result<Answer, Stop> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Stop::resumable("the run is stopping"));
        }
        let range = part.lo as usize..part.hi as usize;
        let rows = &unit.customer_rows[range.clone()];
        let body = self.envelope.body(&unit.customers, range);
        if let Some(previous) = self.intents.get(&part)
            && !previous.is_of(&body)
        {
            return Err(Stop::not_resumable(format!(
                "batch {} is not the batch the journal recorded (its customers differ): the source or the job changed; start a new run",
                part.seq
            )));
        }
        let attempt = {
            let mut a = self.attempts.lock().expect("attempts lock");
            let n = a.entry(part).or_insert(0);
            *n += 1;
            *n
        };
        crate::failpoint!("before_intent");
        self.log(&Event::Intent {
            part,
            attempt,
            first_row: rows.first().copied().unwrap_or(0),
            last_row: rows.last().copied().unwrap_or(0),
            payload: PayloadHash::of(&body),
            at: now(),
        })
        .await?;
        crate::failpoint!("after_intent");
        let body = self.client.sign_ahead(body);
        let slot = self.slots.acquire().await.expect("never closed");
        if self.stopping.load(Ordering::SeqCst) {
            // Journaled, never sent: not in doubt.
            self.log(&Event::Withdrawn { part, at: now() }).await?;
            return Err(Stop::resumable("the run is stopping"));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let reply = self
            .client
            .call_signed::<crate::api::wire::BatchCreateResult>(
                reqwest::Method::POST,
                crate::api::wire::BATCH_CREATE_PATH,
                "",
                body,
            )
            .await
            .map_err(|e| {
                // Before this request's slot is freed: no other batch may take it and send.
                self.stopping.store(true, Ordering::SeqCst);
                Stop::resumable(e.advice_for_a_run())
            })?;
        // The request is answered: its slot is free while the outcome is journaled.
        drop(slot);
        crate::failpoint!("after_send");
        let answer = if reply.code == CODE_AGENT_MISSING {
            Answer::WholeFailed {
                code: reply.code,
                message: reply.message.unwrap_or_default(),
            }
        } else {
            let data = reply.data.unwrap_or_default();
            let mut created = Vec::new();
            let mut failed = Vec::new();
            let mut seen = vec![false; rows.len()];
            for s in data.success_items {
                if let Some(row) = rows.get(s.index) {
                    seen[s.index] = true;
                    created.push(CreatedRow {
                        row: *row,
                        customer_id: s.customer_id,
                        whats_app_phone: s.whats_app_phone,
                    });
                }
            }
            for f in data.fail_items {
                if let Some(row) = rows.get(f.index) {
                    seen[f.index] = true;
                    failed.push(FailedRow {
                        row: *row,
                        error_code: f.error_code,
                        error_message: f.error_message.unwrap_or_default(),
                    });
                }
            }
            // A record the answer does not mention did not make it: say so, never lose it.
            for (i, s) in seen.iter().enumerate() {
                if !s {
                    failed.push(FailedRow {
                        row: rows[i],
                        error_code: -1,
                        error_message: "the API's answer did not mention this record".into(),
                    });
                }
            }
            Answer::Answered { created, failed }
        };
        crate::failpoint!("before_outcome");
        // Journaled, then taken back out of the event (no copy of a hundred rows).
        let event = Event::Outcome {
            part,
            answer,
            attempts: reply.attempts,
            at: now(),
        };
        self.log(&event).await?;
        match event {
            Event::Outcome { answer, .. } => Ok(answer),
            _ => unreachable!("built as an outcome above"),
        }
    }
}
