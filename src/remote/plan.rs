//! `plan --remote`: the plan's first N valid customers looked up in the CDP by match key,
//! each classified as `new` (nobody holds its keys), `unchanged` (the merge would change
//! nothing) or `update`, with each field that would change, `old → new` — under `replace`
//! also the fields it would clear; `keep` changes nothing on an existing customer. Reads
//! the API only: no lock, nothing written.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::compare::{self, Difference};
use super::lookup::{Lookup, Lookups};
use super::table;
use crate::api::client::ApiError;
use crate::connection;
use crate::error::{Again, Error, Result};
use crate::job::Job;
use crate::job::model::Merge;
use crate::plan::PreviewCustomer;

/// What a run would do to one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Update,
    Unchanged,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Update => "update",
            Status::Unchanged => "unchanged",
        }
    }
}

/// One field a run would change: what is stored, and what it would hold (none: cleared).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl From<Difference> for Change {
    fn from(d: Difference) -> Change {
        Change {
            field: d.field,
            old: d.stored,
            new: d.expected,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteCustomer {
    pub row: u64,
    /// The match key that found the customer (`whats_app_phone:8613…`); for a new one the
    /// key it would be created under; none when it has no match key.
    pub key: Option<String>,
    pub status: Status,
    /// The stored customer's id (none when new).
    pub customer_id: Option<i64>,
    pub changes: Vec<Change>,
    /// Fields it sends that the query endpoint does not return (R14): not compared.
    pub unverifiable: Vec<&'static str>,
}

/// What `plan --remote` adds to a plan (`remote` in its `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RemotePlan {
    pub merge: &'static str,
    pub new: u64,
    pub update: u64,
    pub unchanged: u64,
    /// The query requests the lookups took.
    pub requests: u64,
    pub customers: Vec<RemoteCustomer>,
}

/// Look the preview's customers up through the job's API, at most `api.concurrency` at a
/// time, and classify each under the job's merge mode.
pub fn look_up(job: &Job, preview: &[PreviewCustomer]) -> Result<RemotePlan> {
    let merge = job.spec.merge;
    let lookups: Vec<std::result::Result<Lookup, ApiError>> = crate::runner::begin::runtime()?
        .block_on(async {
            let conn = connection::connect(job).await?;
            let lookups = Lookups {
                client: &conn.client,
                tenant_id: job.spec.api.tenant_id,
                app_key: &job.spec.api.app_key,
            };
            let found = futures_util::stream::iter(preview)
                .map(|p| lookups.find(&p.customer))
                .buffered(job.spec.api.concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            if let Some(sim) = conn.sim {
                sim.stop().await;
            }
            Ok::<_, Error>(found)
        })?;
    let mut plan = RemotePlan {
        merge: merge.as_str(),
        new: 0,
        update: 0,
        unchanged: 0,
        requests: 0,
        customers: Vec::with_capacity(preview.len()),
    };
    for (p, lookup) in preview.iter().zip(lookups) {
        let lookup = lookup.map_err(|e| match e {
            ApiError::Config(m) => Error::Usage(m),
            other => Error::stopped(
                format!(
                    "plan --remote could not look row {}'s customer up: {other}",
                    p.row
                ),
                Again::RunAgain,
            ),
        })?;
        plan.requests += u64::from(lookup.requests);
        let customer = classify(merge, p, &lookup);
        match customer.status {
            Status::New => plan.new += 1,
            Status::Update => plan.update += 1,
            Status::Unchanged => plan.unchanged += 1,
        }
        plan.customers.push(customer);
    }
    Ok(plan)
}

fn classify(merge: Merge, p: &PreviewCustomer, lookup: &Lookup) -> RemoteCustomer {
    let key = lookup.key.as_ref().map(ToString::to_string);
    let Some(stored) = lookup.customer(None) else {
        return RemoteCustomer {
            row: p.row,
            key,
            status: Status::New,
            customer_id: None,
            changes: Vec::new(),
            unverifiable: Vec::new(),
        };
    };
    let comparison = compare::compare(merge, &p.customer, stored);
    let changes: Vec<Change> = comparison
        .differences
        .into_iter()
        .map(Change::from)
        .collect();
    RemoteCustomer {
        row: p.row,
        key,
        status: if changes.is_empty() {
            Status::Unchanged
        } else {
            Status::Update
        },
        customer_id: stored.get("id").and_then(serde_json::Value::as_i64),
        changes,
        unverifiable: comparison.unverifiable,
    }
}

/// A value in a change: what it is, or what its absence means there.
fn shown(v: Option<&str>, absent: &'static str) -> String {
    v.map_or_else(|| absent.to_string(), str::to_string)
}

impl RemotePlan {
    /// The section `plan --remote` prints after the plan, and its last line.
    pub fn render(&self) -> String {
        let mut o = format!(
            "\nremote: {} customer(s) looked up by match key (whats_app_phone, then sms_phone, then email), merge {}:\n",
            self.customers.len(),
            self.merge
        );
        let mut rows = vec![vec![
            "row".to_string(),
            "match key".to_string(),
            "status".to_string(),
            "field".to_string(),
            "old → new".to_string(),
        ]];
        for c in &self.customers {
            let mut first = vec![
                c.row.to_string(),
                c.key.clone().unwrap_or_else(|| "(no match key)".into()),
                c.status.as_str().to_string(),
            ];
            if c.changes.is_empty() {
                rows.push(first);
                continue;
            }
            for (i, change) in c.changes.iter().enumerate() {
                let cells = [
                    change.field.clone(),
                    format!(
                        "{} → {}",
                        shown(change.old.as_deref(), "(empty)"),
                        shown(change.new.as_deref(), "(cleared)")
                    ),
                ];
                if i == 0 {
                    first.extend(cells);
                    rows.push(std::mem::take(&mut first));
                } else {
                    rows.push(
                        [String::new(), String::new(), String::new()]
                            .into_iter()
                            .chain(cells)
                            .collect(),
                    );
                }
            }
        }
        o.push_str(&table::render(&rows));
        let _ = writeln!(
            o,
            "new {}, update {}, unchanged {}",
            self.new, self.update, self.unchanged
        );
        match self.merge {
            "replace" => o.push_str(
                "merge replace: a field not sent is cleared, tags and custom fields become exactly the ones sent\n",
            ),
            "keep" => o.push_str(
                "merge keep: an existing customer is left as it is; only new ones are created\n",
            ),
            _ => o.push_str(
                "merge update: sent fields and custom field keys overwrite, sent tags are added, the rest stays\n",
            ),
        }
        let unverifiable: BTreeSet<&str> = self
            .customers
            .iter()
            .flat_map(|c| c.unverifiable.iter().copied())
            .collect();
        if !unverifiable.is_empty() {
            let _ = writeln!(
                o,
                "not compared: {} (the query endpoint does not return them)",
                unverifiable.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        let _ = writeln!(
            o,
            "{} query request(s) sent; nothing was created or changed",
            self.requests
        );
        o
    }
}
