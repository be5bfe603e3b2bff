//! Change detection for scheduled syncs (SPEC §7, §12 R5–R8): a job with `sync: changed`
//! sends only the customers that are new or changed since the runs that finished before it.
//!
//! The pieces, in the order a run meets them: [`tag`] gives each mapped customer its match
//! key and a hash of exactly what would be sent; [`snapshot`] is the state as the run found
//! it, kept in the run directory so a resume compares with the same thing; [`Classifier`]
//! decides per row (unchanged, to send, duplicate key); [`store`] is the state itself,
//! which takes a run's confirmed customers in one commit when the run finishes.

pub mod snapshot;
pub mod store;
pub mod tag;

use std::fmt;

pub use snapshot::{Seen, Snapshot};
pub use store::{Confirmed, StateError};
pub use tag::{SyncTag, tag_of};

use crate::customer::{Customer, Field, FieldError, Rule};

/// The API a state belongs to (R6): the same job pointed at another API has other customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub base_url: String,
    pub tenant_id: i64,
    pub app_key: String,
}

impl Target {
    pub fn of(api: &crate::job::model::ApiSpec) -> Target {
        Target {
            base_url: api.base_url.trim_end_matches('/').to_string(),
            tenant_id: api.tenant_id,
            app_key: api.app_key.clone(),
        }
    }

    /// A short, stable name for the target's state file.
    pub fn digest(&self) -> String {
        crate::run_dir::sha256_hex(self.to_string().as_bytes())[..16].to_string()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tenant {} app {}",
            self.base_url, self.tenant_id, self.app_key
        )
    }
}

/// What change detection makes of one valid customer.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The state holds it exactly so: not sent.
    Unchanged,
    /// New or changed: sent, and recorded once confirmed (no tag: no match key, never
    /// recorded).
    Send(Option<SyncTag>),
}

/// A valid customer's match key: the field it came from, its digest, and where the
/// snapshot has it (if it does), for the duplicate check in row order.
#[derive(Debug, Clone, Copy)]
pub struct MatchKey {
    pub field: Field,
    pub digest: u128,
    slot: Option<u32>,
}

/// What the mapping threads decide about one valid customer.
#[derive(Debug, Clone)]
pub struct Classified {
    pub verdict: Verdict,
    /// None: the customer has no match key.
    pub key: Option<MatchKey>,
}

/// The per-row decisions of one run, made on the mapping threads (`classify`) and then in
/// row order (`settle`).
#[derive(Debug)]
pub struct Classifier {
    snapshot: Snapshot,
    /// `run --full`: send every valid row (the state is only refreshed).
    full: bool,
    merge_type: u8,
    strict_binding: bool,
}

impl Classifier {
    pub fn new(snapshot: Snapshot, full: bool, merge_type: u8, strict_binding: bool) -> Self {
        Classifier {
            snapshot,
            full,
            merge_type,
            strict_binding,
        }
    }

    /// The verdict on a valid customer, with its match key. Parallel: it reads the
    /// snapshot only.
    pub fn classify(&self, customer: &Customer) -> Classified {
        self.classify_probe(tag::probe(customer, self.merge_type, self.strict_binding))
    }

    /// [`Classifier::classify`], given the customer's JSON written already.
    pub fn classify_written(&self, customer: &Customer, json: &[u8]) -> Classified {
        self.classify_probe(tag::probe_written(
            customer,
            json,
            self.merge_type,
            self.strict_binding,
        ))
    }

    fn classify_probe(&self, probe: Option<tag::Probe<'_>>) -> Classified {
        let Some(probe) = probe else {
            return Classified {
                verdict: Verdict::Send(None),
                key: None,
            };
        };
        let found = self.snapshot.find(probe.key_digest);
        let key = Some(MatchKey {
            field: probe.field,
            digest: probe.key_digest,
            slot: found.map(|(slot, _)| slot),
        });
        let same = found.is_some_and(|(_, hash)| hash == tag::short(&probe.hash));
        let verdict = if !self.full && same {
            Verdict::Unchanged
        } else {
            Verdict::Send(Some(probe.into_tag()))
        };
        Classified { verdict, key }
    }

    /// In row order, the verdict made final: a match key an earlier row of the source had
    /// rejects this row instead (R7).
    pub fn settle(
        seen: &mut Seen,
        classified: Classified,
        row: u64,
    ) -> Result<Verdict, FieldError> {
        match classified
            .key
            .and_then(|k| Self::check_duplicate(seen, k, row))
        {
            Some(duplicate) => Err(duplicate),
            None => Ok(classified.verdict),
        }
    }

    fn check_duplicate(seen: &mut Seen, key: MatchKey, row: u64) -> Option<FieldError> {
        let earlier = seen.note(key.digest, key.slot, row)?;
        let field = key.field.name();
        Some(FieldError::new(
            field,
            Rule::DuplicateKey,
            format!(
                "{field} is the match key of row {earlier} too: one source may hold each customer once (the sync state would flip between them)"
            ),
        ))
    }

    /// The keys a run's source has had, for [`Classifier::check_duplicate`].
    pub fn seen(&self) -> Seen {
        Seen::for_snapshot(&self.snapshot)
    }

    /// Customers of the state this run's source did not have.
    pub fn missing(&self, seen: &Seen) -> u64 {
        self.snapshot.missing_from(seen)
    }
}
