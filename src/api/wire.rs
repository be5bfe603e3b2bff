//! The API's request and response bodies as typed structs (CDP-API §3–§6), and which
//! fields a query answer carries (what an export may name as columns). Ids are 64-bit
//! integers all the way: serde_json keeps integers exact, never as floats.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::customer::Customer;
use crate::suggest;

pub const BATCH_CREATE_PATH: &str = "/saas/cdp/openapi/customers/batch_create";
pub const QUERY_PATH: &str = "/saas/cdp/openapi/customers/query";
pub const FIELDS_PATH: &str = "/saas/cdp/openapi/customers/fields";

/// The API's `yyyy-MM-dd HH:mm:ss` (query `start_time`/`end_time`), a real date and time.
pub fn is_api_datetime(s: &str) -> bool {
    s.len() == 19 && jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s).is_ok()
}

/// The customer fields of a query answer (CDP-API §5), in the order a default CSV uses.
/// `tags` (a list) and `customize_field` (JSON text) are not scalar and must be asked for.
pub const QUERY_SCALAR_FIELDS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "full_name",
    "whatsApp_phone",
    "sms_phone",
    "viber_phone",
    "line",
    "messenger",
    "instagram",
    "email",
    "country",
    "birthday",
    "remark",
    "gender",
    "weight",
    "source_type",
    "source_channel_key",
    "status",
    "whatApp_subscribe",
    "sms_subscribe",
    "tenant_id",
    "created_at",
    "updated_at",
];

/// Columns that are not in [`QUERY_SCALAR_FIELDS`] but may be chosen: the two nested ones, and
/// batch_create fields the query documentation does not list but an answer may carry.
const QUERY_OTHER_FIELDS: &[&str] = &[
    "tags",
    "customize_field",
    "zalo",
    "address",
    "time_zone",
    "belong_seat_user",
];

/// Whether an export column names something a query answer has: one of its fields, or one
/// custom field (`customize_<type>_<n>`, read out of `customize_field`).
pub fn check_query_column(name: &str) -> Result<(), String> {
    if QUERY_SCALAR_FIELDS.contains(&name)
        || QUERY_OTHER_FIELDS.contains(&name)
        || is_custom_field(name)
    {
        return Ok(());
    }
    if name.starts_with("customize_") {
        return Err(format!(
            "unknown column `{name}`: a custom field is named customize_<type>_<n>, e.g. customize_1_14 (`cdpjob fields JOB` lists them)"
        ));
    }
    let known = QUERY_SCALAR_FIELDS.iter().chain(QUERY_OTHER_FIELDS);
    // batch_create's spelling `whats_app_phone` is the usual slip: case and one `_` away.
    Err(match suggest::closest(name, known.clone().copied()) {
        Some(s) => format!("unknown column `{name}`; did you mean `{s}`?"),
        None => format!(
            "unknown column `{name}`; a column is one of {}, or a custom field such as customize_1_14",
            known.copied().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// `customize_<type>_<n>`: one custom field, which an answer carries inside `customize_field`.
pub fn is_custom_field(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("customize_") else {
        return false;
    };
    let mut parts = rest.split('_');
    let digits =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
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

/// Customers serialized once, back to back (`c0,c1,…`): the request for any run of them is
/// the envelope around one slice of these bytes, and a result line carries a customer as
/// it was sent without serializing it again. The bytes are exactly what serde_json writes
/// for `BatchCreateRequest::customers`.
#[derive(Debug, Clone, Default)]
pub struct SerializedCustomers {
    json: Vec<u8>,
    /// Where each customer's JSON starts; it ends at the comma before the next one.
    starts: Vec<usize>,
}

impl SerializedCustomers {
    /// Room for `customers` customers of `bytes` bytes in all, so that filling a batch
    /// copies no customer twice.
    pub fn with_capacity(customers: usize, bytes: usize) -> SerializedCustomers {
        SerializedCustomers {
            json: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(customers),
        }
    }

    /// Bytes of JSON held (commas between customers included).
    pub fn bytes(&self) -> usize {
        self.json.len()
    }

    pub fn push(&mut self, customer: &Customer) {
        self.next();
        crate::customer_json::write(customer, &mut self.json);
    }

    /// A customer written already (by [`crate::customer_json::write`]).
    pub fn push_json(&mut self, json: &[u8]) {
        self.next();
        self.json.extend_from_slice(json);
    }

    /// Where the next customer starts: after a comma, unless it is the first.
    fn next(&mut self) {
        if !self.starts.is_empty() {
            self.json.push(b',');
        }
        self.starts.push(self.json.len());
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Customers `range`, as the inside of a JSON array.
    pub fn slice(&self, range: std::ops::Range<usize>) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        let end = self
            .starts
            .get(range.end)
            .map_or(self.json.len(), |next| next - 1);
        &self.json[self.starts[range.start]..end]
    }

    /// Customer `i`'s JSON object.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.len()).then(|| self.slice(i..i + 1))
    }
}

/// A batch_create body's envelope, serialized once for a run: a body is its prefix, the
/// customers' JSON, and `]}` — byte for byte what serializing a [`BatchCreateRequest`]
/// gives.
#[derive(Debug, Clone)]
pub struct BatchCreateEnvelope {
    prefix: Vec<u8>,
}

impl BatchCreateEnvelope {
    pub fn new(merge_type: u8, tenant_id: i64, app_key: &str, strict_binding: bool) -> Self {
        let mut prefix = serde_json::to_vec(&BatchCreateRequest {
            merge_type,
            tenant_id,
            app_key,
            strict_binding,
            customers: &[],
        })
        .expect("a request serializes");
        // `customers` is the last field: `…,"customers":[]}` loses its `]}`.
        assert!(prefix.ends_with(b"[]}"), "customers is the last field");
        prefix.truncate(prefix.len() - 2);
        BatchCreateEnvelope { prefix }
    }

    /// The body of a request for customers `range`.
    pub fn body(&self, customers: &SerializedCustomers, range: std::ops::Range<usize>) -> Vec<u8> {
        let inside = customers.slice(range);
        let mut body = Vec::with_capacity(self.prefix.len() + inside.len() + 2);
        body.extend_from_slice(&self.prefix);
        body.extend_from_slice(inside);
        body.extend_from_slice(b"]}");
        body
    }
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

    #[test]
    fn columns_are_checked_with_a_suggestion() {
        assert!(check_query_column("whatsApp_phone").is_ok());
        assert!(check_query_column("customize_4_52").is_ok());
        assert!(check_query_column("tags").is_ok());
        assert_eq!(
            check_query_column("whats_app_phone").unwrap_err(),
            "unknown column `whats_app_phone`; did you mean `whatsApp_phone`?"
        );
        assert!(
            check_query_column("full_nme")
                .unwrap_err()
                .contains("`full_name`")
        );
        assert!(
            check_query_column("customize_x")
                .unwrap_err()
                .contains("custom field")
        );
    }

    #[test]
    fn a_body_from_serialized_customers_is_the_serialized_request_byte_for_byte() {
        use crate::customer::Field;
        let names = ["Ann", "B\"o\\b", "张三 \u{1F600}", "tab\there", "</script>"];
        let customers: Vec<Customer> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Customer::from_rendered([
                    (Field::FullName, name.to_string()),
                    (Field::Email, format!("p{i}@example.com")),
                    (Field::Gender, (i % 2).to_string()),
                    (
                        Field::CustomizeField,
                        r#"{"customize_1_1":"x\"y"}"#.to_string(),
                    ),
                ])
                .unwrap()
            })
            .collect();
        let mut serialized = SerializedCustomers::default();
        for c in &customers {
            serialized.push(c);
        }
        for (merge_type, strict) in [(1, false), (3, true)] {
            let envelope = BatchCreateEnvelope::new(merge_type, 123, "k\"ey", strict);
            for lo in 0..customers.len() {
                for hi in lo + 1..=customers.len() {
                    let expected = serde_json::to_vec(&BatchCreateRequest {
                        merge_type,
                        tenant_id: 123,
                        app_key: "k\"ey",
                        strict_binding: strict,
                        customers: &customers[lo..hi],
                    })
                    .unwrap();
                    assert_eq!(envelope.body(&serialized, lo..hi), expected, "{lo}..{hi}");
                }
            }
        }
        for (i, c) in customers.iter().enumerate() {
            assert_eq!(serialized.get(i).unwrap(), serde_json::to_vec(c).unwrap());
        }
        assert_eq!(serialized.get(customers.len()), None);
    }
}
