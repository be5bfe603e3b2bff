//! What `events.jsonl` records. The journal is the run's memory: an intent is made durable
//! before its request is sent, an outcome after the answer, so that after a crash the
//! batches in doubt (an intent without an outcome) are known exactly. Both kinds of run
//! write here; the lifecycle's own events are `RunStarted`, `Resumed`, `Stopped` and
//! `RunFinished`.

use serde::{Deserialize, Serialize};

use jiff::Timestamp;

use crate::api::payload::PayloadHash;

/// A request's place: batch `seq`, customers `lo..hi` of it (bisection sends halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Part {
    pub seq: u64,
    pub lo: u32,
    pub hi: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRow {
    pub row: u64,
    pub customer_id: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub whats_app_phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRow {
    pub row: u64,
    pub error_code: i64,
    pub error_message: String,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    /// Per-record results.
    Answered {
        created: Vec<CreatedRow>,
        failed: Vec<FailedRow>,
    },
    /// The whole request failed because of a record in it (12148, strict_binding false).
    WholeFailed { code: i64, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        at: Timestamp,
    },
    Resumed {
        at: Timestamp,
    },
    /// About to send these customers; `payload` is the hash of the exact body, so a resume
    /// can tell it re-derived the same batch.
    Intent {
        part: Part,
        /// 1 the first time this part is sent, 2 when a resume sends it again, …
        #[serde(default)]
        attempt: u32,
        first_row: u64,
        last_row: u64,
        #[serde(flatten)]
        payload: PayloadHash,
        at: Timestamp,
    },
    Outcome {
        part: Part,
        answer: Answer,
        attempts: u32,
        at: Timestamp,
    },
    /// An intent whose request was never sent: the run was stopping when its turn came.
    Withdrawn {
        part: Part,
        at: Timestamp,
    },
    Retry {
        path: String,
        /// The retried body's hash, as its intent has it (the oldest journals lack it).
        #[serde(flatten)]
        payload: Option<PayloadHash>,
        attempt: u32,
        reason: String,
        delay_ms: u64,
        at: Timestamp,
    },
    Bisect {
        part: Part,
        code: i64,
        at: Timestamp,
    },
    Stopped {
        reason: String,
        /// The guard that stopped the run (`max_failed`, SPEC §7), if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guard: Option<String>,
        at: Timestamp,
    },
    /// The run's work is done and recorded (its counts are in the summary).
    RunFinished {
        at: Timestamp,
    },
    /// A page of an export, written and checkpointed.
    Page {
        /// The sub-window it belongs to, when the export has several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<usize>,
        page: u64,
        /// The cursor it was asked for (none for the first page).
        after: Option<i64>,
        customers: u64,
        /// Customers on the page that another sub-window had written (their ends overlap).
        #[serde(default, skip_serializing_if = "is_zero")]
        elsewhere: u64,
        next: Option<i64>,
        attempts: u32,
        at: Timestamp,
    },
    /// An export renamed its output into place (and recorded its state).
    ExportFinished {
        rows: u64,
        pages: u64,
        output: String,
        at: Timestamp,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

impl Event {
    /// The event as one journal line: JSON and a newline. An outcome's created rows (a
    /// hundred a batch, in every run) are written by hand, byte for byte what serde writes:
    /// through serde the line cost ~1,100 instructions a row (serde_json escapes each row's
    /// three key names again), by hand about half that: 1.4 % of the client's instructions.
    /// Everything else, and every string value, goes through serde.
    pub fn line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Event::Outcome {
                part,
                answer: Answer::Answered { created, failed },
                attempts,
                at,
            } => {
                let mut n = itoa::Buffer::new();
                out.reserve(160 + created.len() * 72);
                out.extend_from_slice(b"{\"event\":\"outcome\",\"part\":");
                json_into(&mut out, part);
                out.extend_from_slice(b",\"answer\":{\"result\":\"answered\",\"created\":[");
                for (i, c) in created.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"row\":");
                    out.extend_from_slice(n.format(c.row).as_bytes());
                    out.extend_from_slice(b",\"customer_id\":");
                    out.extend_from_slice(n.format(c.customer_id).as_bytes());
                    if let Some(phone) = &c.whats_app_phone {
                        out.extend_from_slice(b",\"whats_app_phone\":");
                        json_into(&mut out, phone);
                    }
                    out.push(b'}');
                }
                out.extend_from_slice(b"],\"failed\":");
                json_into(&mut out, failed);
                out.extend_from_slice(b"},\"attempts\":");
                out.extend_from_slice(n.format(*attempts).as_bytes());
                out.extend_from_slice(b",\"at\":");
                json_into(&mut out, at);
                out.push(b'}');
            }
            other => json_into(&mut out, other),
        }
        out.push(b'\n');
        out
    }

    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::RunStarted { at, .. }
            | Event::Resumed { at }
            | Event::Intent { at, .. }
            | Event::Outcome { at, .. }
            | Event::Withdrawn { at, .. }
            | Event::Retry { at, .. }
            | Event::Bisect { at, .. }
            | Event::Stopped { at, .. }
            | Event::RunFinished { at }
            | Event::Page { at, .. }
            | Event::ExportFinished { at, .. } => *at,
        }
    }
}

/// `value` as JSON, appended to `out`.
fn json_into(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *out, value).expect("an event serializes");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Event::line` writes an outcome's created rows by hand: byte for byte serde's line.
    #[test]
    fn every_event_s_line_is_serde_s_json_of_it() {
        let part = Part {
            seq: 7,
            lo: 0,
            hi: 3,
        };
        let created = vec![
            CreatedRow {
                row: 1,
                customer_id: 1_214_631_327_620_775_936,
                whats_app_phone: Some("8613900000001".into()),
            },
            CreatedRow {
                row: 2,
                customer_id: -1,
                whats_app_phone: None,
            },
            CreatedRow {
                row: u64::MAX,
                customer_id: i64::MIN,
                whats_app_phone: Some("\"牛\\\n\u{1}".into()),
            },
        ];
        let failed = vec![FailedRow {
            row: 3,
            error_code: 12148,
            error_message: "归属坐席 \"agent1\" 不存在".into(),
        }];
        let events = [
            Event::Outcome {
                part,
                answer: Answer::Answered {
                    created: created.clone(),
                    failed: failed.clone(),
                },
                attempts: 2,
                at: now(),
            },
            Event::Outcome {
                part,
                answer: Answer::Answered {
                    created: Vec::new(),
                    failed: Vec::new(),
                },
                attempts: 1,
                at: now(),
            },
            Event::Outcome {
                part,
                answer: Answer::Answered {
                    created,
                    failed: Vec::new(),
                },
                attempts: u32::MAX,
                at: now(),
            },
            Event::Outcome {
                part,
                answer: Answer::WholeFailed {
                    code: 12148,
                    message: "x".into(),
                },
                attempts: 1,
                at: now(),
            },
            Event::Withdrawn { part, at: now() },
        ];
        for event in events {
            let mut serde = serde_json::to_vec(&event).unwrap();
            serde.push(b'\n');
            assert_eq!(
                String::from_utf8(event.line()).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn an_intent_and_a_retry_read_back_with_their_payload_hash_old_or_new() {
        let intent = Event::Intent {
            part: Part {
                seq: 3,
                lo: 0,
                hi: 2,
            },
            attempt: 1,
            first_row: 7,
            last_row: 9,
            payload: PayloadHash::of(b"{}"),
            at: now(),
        };
        let line = serde_json::to_string(&intent).unwrap();
        assert!(line.contains(r#""payload_xxh3":""#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), intent);

        // As cdpjob 0.1.0 wrote it (tests/fixtures/run-0.1.0/run/events.jsonl).
        let old = r#"{"event":"intent","part":{"seq":0,"lo":0,"hi":2},"attempt":1,"first_row":1,"last_row":2,"payload_sha256":"a80284a3c3339fcc0a298db759e163fd3cfe0ace285fd16446944db6d420265e","at":"2026-12-01T16:12:38.364118152Z"}"#;
        match serde_json::from_str::<Event>(old).unwrap() {
            Event::Intent { payload, .. } => assert_eq!(
                payload,
                PayloadHash::Sha256(
                    "a80284a3c3339fcc0a298db759e163fd3cfe0ace285fd16446944db6d420265e".into()
                )
            ),
            other => panic!("{other:?}"),
        }

        for payload in [None, Some(PayloadHash::of(b"[]"))] {
            let retry = Event::Retry {
                path: "/x".into(),
                payload,
                attempt: 2,
                reason: "HTTP 503".into(),
                delay_ms: 10,
                at: now(),
            };
            let line = serde_json::to_string(&retry).unwrap();
            assert_eq!(
                line.contains("payload"),
                matches!(
                    retry,
                    Event::Retry {
                        payload: Some(_),
                        ..
                    }
                )
            );
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), retry);
        }
    }
}
