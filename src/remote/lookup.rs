//! Looking a customer up by its match key with the query endpoint's filters (CDP-API §5):
//! its `whats_app_phone`, then its `sms_phone`, then its `email`, the first hit wins — the
//! order the server matches a record to a customer in (SPEC §12 R14; inferred, the vendor
//! does not say). Each query goes through the API client, so its retries, rate limit and
//! requests in flight (`api.concurrency`) are the same as a run's.

use serde_json::{Value, json};

use crate::api::client::{ApiError, Client};
use crate::customer::{Customer, Field};

/// The query filter of each match key, which is also its name in an answer
/// (`whatsApp_phone`, where batch_create says `whats_app_phone`).
fn filter_name(field: Field) -> &'static str {
    match field {
        Field::WhatsAppPhone => "whatsApp_phone",
        other => other.name(),
    }
}

/// One of a customer's match keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchKey {
    pub field: Field,
    pub value: String,
}

impl std::fmt::Display for MatchKey {
    /// `<field>:<value>`, as the sync state writes a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.field.name(), self.value)
    }
}

/// A customer's match keys in the order they are tried.
pub fn keys(customer: &Customer) -> Vec<MatchKey> {
    Field::MATCH_KEYS
        .iter()
        .filter_map(|&field| {
            let value = customer.text(field).filter(|v| !v.is_empty())?;
            Some(MatchKey {
                field,
                value: value.to_string(),
            })
        })
        .collect()
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The key that found the customer, or the first key when none did (none: the customer
    /// has no match key, so the server would create it anew and nothing was asked).
    pub key: Option<MatchKey>,
    /// The customers holding that key, as the query endpoint returned them (more than one
    /// when the tenant holds duplicates); empty when no key found anyone.
    pub found: Vec<Value>,
    /// The query requests it took.
    pub requests: u32,
}

impl Lookup {
    /// The customer the server would match: the one with `id` when it holds the key too
    /// (a run's created customer), else the first returned.
    pub fn customer(&self, id: Option<i64>) -> Option<&Value> {
        id.and_then(|id| {
            self.found
                .iter()
                .find(|c| c.get("id").and_then(Value::as_i64) == Some(id))
        })
        .or_else(|| self.found.first())
    }
}

/// Queries the tenant's customers by match key.
#[derive(Debug, Clone, Copy)]
pub struct Lookups<'a> {
    pub client: &'a Client,
    pub tenant_id: i64,
    pub app_key: &'a str,
}

impl Lookups<'_> {
    /// Look `customer` up: each of its keys in turn until one finds someone.
    pub async fn find(&self, customer: &Customer) -> Result<Lookup, ApiError> {
        let keys = keys(customer);
        let mut requests = 0;
        for key in &keys {
            let body = json!({
                "tenant_id": self.tenant_id,
                "app_key": self.app_key,
                filter_name(key.field): key.value,
                "limit": 50,
            });
            requests += 1;
            let reply = self.client.query(&body).await?;
            let found = reply.data.map(|d| d.customer_list).unwrap_or_default();
            // The filter is exact on the server's side; checked again, in case a server
            // reads it otherwise (a prefix, case folded): a customer that does not hold
            // the key is not the one the server matches.
            let holds = |c: &Value| {
                c.get(filter_name(key.field)).and_then(Value::as_str) == Some(key.value.as_str())
            };
            let found: Vec<Value> = found.into_iter().filter(holds).collect();
            if !found.is_empty() {
                return Ok(Lookup {
                    key: Some(key.clone()),
                    found,
                    requests,
                });
            }
        }
        Ok(Lookup {
            key: keys.into_iter().next(),
            found: Vec::new(),
            requests,
        })
    }
}
