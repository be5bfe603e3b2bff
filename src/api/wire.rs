//! The API's request and response bodies as typed structs (CDP-API §3–§6). Ids are 64-bit
//! integers all the way: serde_json keeps integers exact, never as floats.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::customer::Customer;

pub const BATCH_CREATE_PATH: &str = "/saas/cdp/openapi/customers/batch_create";
pub const QUERY_PATH: &str = "/saas/cdp/openapi/customers/query";
pub const FIELDS_PATH: &str = "/saas/cdp/openapi/customers/fields";

/// The API's `yyyy-MM-dd HH:mm:ss` (query `start_time`/`end_time`), a real date and time.
pub fn is_api_datetime(s: &str) -> bool {
    s.len() == 19 && jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s).is_ok()
}

/// Every response: `{"code", "message", "traceId", "data"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(rename = "traceId", default)]
    pub trace_id: Option<String>,
    #[serde(default = "Option::default")]
    pub data: Option<T>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchCreateRequest<'a> {
    #[serde(rename = "type")]
    pub merge_type: u8,
    pub tenant_id: i64,
    pub app_key: &'a str,
    pub strict_binding: bool,
    pub customers: &'a [Customer],
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateResult {
    pub total_count: u64,
    pub success_count: u64,
    pub fail_count: u64,
    #[serde(default)]
    pub fail_items: Vec<FailItem>,
    #[serde(default)]
    pub success_items: Vec<SuccessItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailItem {
    pub index: usize,
    pub error_code: i64,
    #[serde(default)]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SuccessItem {
    pub index: usize,
    pub customer_id: i64,
    #[serde(default)]
    pub whats_app_phone: Option<String>,
}

/// Query paging cursors; `next` is null on the last page, `previous` on the first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Paging {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub previous: Option<i64>,
    pub next: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QueryResult {
    pub paging: Paging,
    /// Customers as received (ids stay exact inside `serde_json::Value`).
    #[serde(default)]
    pub customer_list: Vec<Value>,
}

/// One of the tenant's customer fields (CDP-API §6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FieldDef {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub display_en_name: Option<String>,
    pub field_type: i64,
    #[serde(default)]
    pub field_type_info: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub is_preset: bool,
    #[serde(default)]
    pub sequence: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_beyond_2_pow_53_stay_exact() {
        for id in [1214631327620775936_i64, 9007199254740993] {
            let text = format!(
                r#"{{"code":0,"data":{{"totalCount":1,"successCount":1,"failCount":0,"successItems":[{{"index":0,"customerId":{id},"whatsAppPhone":"86"}}]}}}}"#
            );
            let env: Envelope<BatchCreateResult> = serde_json::from_str(&text).unwrap();
            assert_eq!(env.data.unwrap().success_items[0].customer_id, id);
            let q: QueryResult = serde_json::from_str(&format!(
                r#"{{"paging":{{"after":{id},"before":{id},"previous":null,"next":null}},"customer_list":[{{"id":{id}}}]}}"#
            ))
            .unwrap();
            assert_eq!(q.paging.after, Some(id));
            assert_eq!(q.customer_list[0]["id"].as_i64(), Some(id));
            assert!(serde_json::to_string(&q).unwrap().contains(&id.to_string()));
        }
    }
}
