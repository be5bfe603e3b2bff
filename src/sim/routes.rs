//! The simulator's HTTP routes: the three API endpoints behind one gate (faults, headers,
//! signature, timestamp), and `/__sim/…` views for tests and demos (one of them writes: a
//! stored customer changed behind the API's back).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::SimConfig;
use super::faults::{Fault, Faults};
use super::fields::Fields;
use super::records::{self, Record, Records, Val};
use super::store::{Incoming, MergeMode, QuerySpec, Store};
use crate::api::sign::{self, ACTION, BIZ_TYPE, SignAlgorithm, SignedHeaders};
use crate::api::wire::{BATCH_CREATE_PATH, FIELDS_PATH, QUERY_PATH, is_api_datetime};
use crate::customer::Customer;

pub struct App {
    pub cfg: SimConfig,
    pub store: Arc<Store>,
    pub faults: Faults,
    pub stats: Mutex<Stats>,
    /// Times the injected latency.
    pub timer: super::timer::Timer,
}

/// Request counters, served at `/__sim/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub by_path: BTreeMap<String, u64>,
    /// Envelope codes answered, by code.
    pub codes: BTreeMap<i64, u64>,
    pub injected_5xx: u64,
    pub injected_429: u64,
    pub dropped: u64,
    pub customers_written: u64,
    /// Requests being handled right now, and the most at any moment.
    pub in_flight: u64,
    pub max_in_flight: u64,
    /// Time spent handling requests (the injected latency excluded), in microseconds.
    pub busy_us: u64,
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Mutex<Stats>);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Mutex<Stats>) -> InFlight<'a> {
        let mut s = stats.lock().expect("stats lock");
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("stats lock").in_flight -= 1;
    }
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    BatchCreate,
    Query,
    Fields,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(BATCH_CREATE_PATH, post(batch_create))
        .route(QUERY_PATH, post(query))
        .route(FIELDS_PATH, get(fields))
        .route("/__sim/customers", get(sim_customers))
        .route("/__sim/customers/{id}", post(sim_patch_customer))
        .route("/__sim/stats", get(sim_stats))
        .with_state(app)
}

async fn batch_create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    gate(app, Endpoint::BatchCreate, headers, None, body).await
}

async fn query(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    gate(app, Endpoint::Query, headers, None, body).await
}

async fn fields(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    gate(app, Endpoint::Fields, headers, q, Bytes::new()).await
}

async fn sim_customers(State(app): State<Arc<App>>) -> Response {
    match app.store.all(app.cfg.tenant_id) {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST /__sim/customers/{id}` with a JSON object of batch_create fields: the stored
/// customer changed behind the API's back (see `Store::patch`), for tests of `verify`.
async fn sim_patch_customer(
    State(app): State<Arc<App>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body must be a JSON object").into_response();
    };
    match app.store.patch(app.cfg.tenant_id, id, &patch) {
        Ok(Some(shown)) => axum::Json(shown).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no customer {id}")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn sim_stats(State(app): State<Arc<App>>) -> Response {
    let stats = app.stats.lock().expect("stats lock").clone();
    axum::Json(stats).into_response()
}

/// The envelope of every answer, serialized as it is declared (no `Value` built first).
#[derive(Serialize)]
struct Envelope<'a> {
    code: i64,
    message: Option<&'a str>,
    #[serde(rename = "traceId")]
    trace_id: String,
    data: &'a RawValue,
}

fn envelope(answer: &Answer) -> Envelope<'_> {
    Envelope {
        code: answer.code,
        message: (answer.code != 0).then_some(answer.message.as_str()),
        trace_id: format!("{:016x}", fastrand::u64(..)),
        data: &answer.data,
    }
}

/// The API's answer: always HTTP 200 with an envelope (the vendor documents no statuses).
struct Answer {
    code: i64,
    message: String,
    /// Serialized when the answer is made.
    data: Box<RawValue>,
}

impl Answer {
    fn ok(data: impl Serialize) -> Answer {
        Answer {
            code: 0,
            message: String::new(),
            data: serde_json::value::to_raw_value(&data).expect("an answer serializes"),
        }
    }

    fn err(code: i64, message: impl Into<String>) -> Answer {
        Answer {
            code,
            message: message.into(),
            data: RawValue::NULL.to_owned(),
        }
    }
}

/// batch_create's data, in the order the API documents its keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    total_count: usize,
    success_count: usize,
    fail_count: usize,
    fail_items: Vec<Value>,
    success_items: Vec<Success<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Success<'a> {
    index: usize,
    customer_id: i64,
    /// As the record gave it (null when it gave none), borrowed from the body.
    whats_app_phone: Option<&'a Val<'a>>,
}

async fn gate(
    app: Arc<App>,
    endpoint: Endpoint,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    let path = match endpoint {
        Endpoint::BatchCreate => BATCH_CREATE_PATH,
        Endpoint::Query => QUERY_PATH,
        Endpoint::Fields => FIELDS_PATH,
    };
    {
        let mut s = app.stats.lock().expect("stats lock");
        s.requests += 1;
        *s.by_path.entry(path.to_string()).or_default() += 1;
    }
    let _in_flight = InFlight::enter(&app.stats);
    // The injected latency is the API's response time: every answer leaves `latency` after
    // its request arrived, the simulator's own handling included (as a real API's does) —
    // so the handling is done first, and a request a client gives up on is still applied.
    let started = std::time::Instant::now();
    let answer_at = started + app.faults.latency();
    let fault = app.faults.roll();
    match fault {
        Fault::ServerError => {
            app.stats.lock().expect("stats lock").injected_5xx += 1;
            app.timer.sleep_until(answer_at).await;
            return (StatusCode::SERVICE_UNAVAILABLE, "injected 503").into_response();
        }
        Fault::TooManyRequests => {
            app.stats.lock().expect("stats lock").injected_429 += 1;
            app.timer.sleep_until(answer_at).await;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "injected 429",
            )
                .into_response();
        }
        Fault::None | Fault::DropAfterApply => {}
    }
    let answer = match authenticate(&app, &headers, &body) {
        Err(a) => a,
        Ok(()) if app.faults.expire_now() => Answer::err(1004, "timestamp expired (injected)"),
        // Handled right here, not on the blocking pool: the store is in memory and a
        // request takes about a millisecond.
        Ok(()) => match endpoint {
            Endpoint::BatchCreate => handle_batch_create(&app, &body),
            Endpoint::Query => handle_query(&app, &body),
            Endpoint::Fields => handle_fields(&app, query.as_deref().unwrap_or_default()),
        },
    };
    {
        let mut s = app.stats.lock().expect("stats lock");
        *s.codes.entry(answer.code).or_default() += 1;
        s.busy_us += started.elapsed().as_micros() as u64;
    }
    app.timer.sleep_until(answer_at).await;
    if fault == Fault::DropAfterApply {
        app.stats.lock().expect("stats lock").dropped += 1;
        // The request is applied; the answer never arrives: the body breaks mid-stream.
        let broken = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("injected connection drop"))
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(broken))
            .expect("a response builds");
    }
    let mut response = axum::Json(envelope(&answer)).into_response();
    if app.cfg.clock_skew_ms != 0 {
        // hyper stamps the real time; a skewed simulator states its own.
        let now = jiff::Timestamp::from_millisecond(now_ms(&app))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let date = now.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(v) = header::HeaderValue::from_str(&date) {
            response.headers_mut().insert(header::DATE, v);
        }
    }
    response
}

fn now_ms(app: &App) -> i64 {
    jiff::Timestamp::now().as_millisecond() + app.cfg.clock_skew_ms
}

fn authenticate(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<(), Answer> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut values = Vec::new();
    for name in ["accessKey", "ts", "bizType", "action", "sign"] {
        match get(name) {
            Some(v) if !v.is_empty() => values.push(v),
            _ => return Err(Answer::err(1001, format!("missing required header {name}"))),
        }
    }
    let [access_key, ts, biz_type, action, signature] = values[..] else {
        unreachable!()
    };
    if biz_type != BIZ_TYPE || action != ACTION {
        return Err(Answer::err(1002, "bizType must be 2 and action must be mt"));
    }
    if access_key != app.cfg.access_key {
        return Err(Answer::err(
            1005,
            "insufficient permissions: unknown accessKey",
        ));
    }
    let Ok(ts_ms) = ts.parse::<i64>() else {
        return Err(Answer::err(1002, "ts must be milliseconds since the epoch"));
    };
    if (now_ms(app) - ts_ms).abs() > 60_000 {
        return Err(Answer::err(1004, "timestamp expired"));
    }
    let algorithm = match get("algorithm") {
        None | Some("md5") => SignAlgorithm::Md5,
        Some("sha256") => SignAlgorithm::Sha256,
        Some(other) => return Err(Answer::err(1002, format!("unknown algorithm {other}"))),
    };
    let headers = SignedHeaders {
        access_key,
        action,
        biz_type,
        ts,
    };
    let expected = sign::sign(algorithm, &headers, body, &app.cfg.secret);
    if expected != signature {
        return Err(Answer::err(1003, "invalid signature"));
    }
    Ok(())
}

fn check_tenant(app: &App, body: &Map<String, Value>) -> Result<(), Answer> {
    match (
        body.get("tenant_id").and_then(Value::as_i64),
        body.get("app_key").and_then(Value::as_str),
    ) {
        (Some(t), Some(k)) if t == app.cfg.tenant_id && k == app.cfg.app_key => Ok(()),
        (Some(_), Some(_)) => Err(Answer::err(
            1005,
            "insufficient permissions for this tenant_id / app_key",
        )),
        _ => Err(Answer::err(
            1002,
            "tenant_id (integer) and app_key (string) are required",
        )),
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Answer> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Answer::err(1002, "the body must be a JSON object")),
    }
}

fn handle_batch_create(app: &App, body: &[u8]) -> Answer {
    match batch_create_inner(app, body) {
        Ok(a) | Err(a) => a,
    }
}

fn batch_create_inner(app: &App, body: &[u8]) -> Result<Answer, Answer> {
    let Some(records::Body {
        rest: body,
        customers,
    }) = records::Body::parse(body)
    else {
        return Err(Answer::err(1002, "the body must be a JSON object"));
    };
    check_tenant(app, &body)?;
    let mode = match body.get("type").and_then(Value::as_i64) {
        Some(0) => MergeMode::Replace,
        Some(1) => MergeMode::Update,
        Some(2) => MergeMode::Keep,
        _ => return Err(Answer::err(1002, "type must be 0, 1 or 2")),
    };
    let strict = match body.get("strict_binding") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        _ => return Err(Answer::err(1002, "strict_binding must be a boolean")),
    };
    // Each record moves into the store, not a copy of it.
    let Some(Records::Array(customers)) = customers else {
        return Err(Answer::err(1002, "customers must be an array"));
    };
    let total = customers.len();
    if customers.is_empty() || customers.len() > 100 {
        return Err(Answer::err(
            1002,
            format!(
                "customers must hold 1 to 100 records, not {}",
                customers.len()
            ),
        ));
    }
    let mut fail_items = Vec::new();
    // What the store takes of each record (its text, and tag names borrowed from the
    // body), and what the answer needs of it.
    let mut records: Vec<Incoming> = Vec::with_capacity(customers.len());
    let mut answered: Vec<(usize, Option<&Val>)> = Vec::with_capacity(customers.len());
    let mut scratch = Vec::with_capacity(1024);
    for (index, c) in customers.iter().enumerate() {
        let Record::Object(fields) = c else {
            fail_items.push(json!({"index": index, "errorCode": 1002, "errorMessage": "a customer must be an object"}));
            continue;
        };
        if let Err(errors) = Customer::check_json(fields.iter().map(|(k, v)| (k, v.as_field()))) {
            let msg = errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            fail_items.push(json!({"index": index, "errorCode": 1002, "errorMessage": msg}));
            continue;
        }
        if let Some(agent) = fields.get("belong_seat_user").and_then(Val::as_str)
            && !app.cfg.agents.iter().any(|a| a == agent)
        {
            let msg = format!("归属坐席 {agent} 不存在 (agent {agent} does not exist)");
            if strict {
                fail_items.push(json!({"index": index, "errorCode": 12148, "errorMessage": msg}));
                continue;
            }
            // Not strict: one such record fails the whole request; nothing is created.
            return Err(Answer::err(12148, msg));
        }
        let tags = match fields.get("tagStr") {
            Some(Val::Text(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        answered.push((index, fields.get("whats_app_phone")));
        let stored = Fields::from_entries(
            fields.entries().filter(|(k, _)| *k != "tagStr"),
            &mut scratch,
        );
        records.push(Incoming {
            fields: stored,
            tags,
        });
    }
    let ids = app
        .store
        .upsert(app.cfg.tenant_id, mode, records)
        .map_err(|e| Answer::err(1002, format!("storage error: {e}")))?;
    app.stats.lock().expect("stats lock").customers_written += ids.len() as u64;
    let success_items: Vec<Success<'_>> = answered
        .into_iter()
        .zip(&ids)
        .map(|((index, whats_app_phone), id)| Success {
            index,
            customer_id: *id,
            whats_app_phone,
        })
        .collect();
    Ok(Answer::ok(Created {
        total_count: total,
        success_count: success_items.len(),
        fail_count: fail_items.len(),
        fail_items,
        success_items,
    }))
}

fn handle_query(app: &App, body: &[u8]) -> Answer {
    match query_inner(app, body) {
        Ok(a) | Err(a) => a,
    }
}

fn query_inner(app: &App, body: &[u8]) -> Result<Answer, Answer> {
    let body = parse_body(body)?;
    check_tenant(app, &body)?;
    let text = |k: &str| -> Result<Option<String>, Answer> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Answer::err(1002, format!("{k} must be a string"))),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, Answer> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Answer::err(1002, format!("{k} must be an integer"))),
        }
    };
    let mut q = QuerySpec {
        tenant_id: app.cfg.tenant_id,
        start_time: text("start_time")?,
        end_time: text("end_time")?,
        name: text("name")?,
        sms_phone: text("sms_phone")?,
        whats_app_phone: text("whatsApp_phone")?,
        email: text("email")?,
        viber_phone: text("viber_phone")?,
        source_type: int("source_type")?,
        after: int("after")?,
        before: int("before")?,
        limit: int("limit")?.unwrap_or(50),
        ..QuerySpec::default()
    };
    for t in [&q.start_time, &q.end_time].into_iter().flatten() {
        if !is_api_datetime(t) {
            return Err(Answer::err(
                1002,
                format!("{t:?} is not yyyy-MM-dd HH:mm:ss"),
            ));
        }
    }
    if !(1..=50).contains(&q.limit) {
        return Err(Answer::err(1002, "limit must be between 1 and 50"));
    }
    if q.source_type.is_some_and(|s| !(0..=15).contains(&s)) {
        return Err(Answer::err(1002, "source_type must be between 0 and 15"));
    }
    q.tags_all = match text("tags_logic_type")?.as_deref() {
        None | Some("or") => false,
        Some("and") => true,
        Some(other) => {
            return Err(Answer::err(
                1002,
                format!("tags_logic_type {other:?} must be and, or or \"\""),
            ));
        }
    };
    // The simulator keeps no tag history: his_tags filter like tags.
    for key in ["tags", "his_tags"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let id = item.get("id").and_then(Value::as_i64);
                    q.tag_ids.push(id.ok_or_else(|| {
                        Answer::err(1002, format!("{key}[].id must be an integer"))
                    })?);
                }
            }
            Some(_) => return Err(Answer::err(1002, format!("{key} must be an array"))),
        }
    }
    let (list, paging) = app
        .store
        .query(&q)
        .map_err(|e| Answer::err(1002, format!("storage error: {e}")))?;
    Ok(Answer::ok(json!({"paging": paging, "customer_list": list})))
}

fn handle_fields(app: &App, query: &str) -> Answer {
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let tenant_ok =
        params.get("tenant_id").and_then(|t| t.parse::<i64>().ok()) == Some(app.cfg.tenant_id);
    let app_key = params.get("app_key").map(|k| percent_decode(k));
    if !tenant_ok || app_key.as_deref() != Some(app.cfg.app_key.as_str()) {
        return Answer::err(
            1005,
            "insufficient permissions for this tenant_id / app_key",
        );
    }
    let preset = match params.get("is_preset").copied() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let all = field_catalogue();
    let list: Vec<Value> = all
        .into_iter()
        .filter(|f| preset.is_none_or(|p| f["is_preset"] == p))
        .collect();
    Answer::ok(Value::Array(list))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tenant's fields: the preset ones and a few custom ones of each type.
pub fn field_catalogue() -> Vec<Value> {
    let f = |seq: i64,
             name: &str,
             display: &str,
             en: &str,
             ty: i64,
             info: Option<&str>,
             required: bool,
             preset: bool| {
        json!({"name": name, "display_name": display, "display_en_name": en, "field_type": ty,
               "field_type_info": info, "required": required, "is_preset": preset, "sequence": seq})
    };
    vec![
        f(1, "full_name", "姓名", "Full name", 1, None, true, true),
        f(2, "first_name", "名", "First name", 1, None, false, true),
        f(3, "last_name", "姓", "Last name", 1, None, false, true),
        f(4, "sms_phone", "手机号", "SMS phone", 1, None, false, true),
        f(
            5,
            "whats_app_phone",
            "WhatsApp",
            "WhatsApp phone",
            1,
            None,
            false,
            true,
        ),
        f(6, "email", "邮箱", "Email", 1, None, false, true),
        f(7, "country", "国家", "Country", 1, None, false, true),
        f(
            8,
            "birthday",
            "生日",
            "Birthday",
            5,
            Some("yyyy-MM-dd"),
            false,
            true,
        ),
        f(
            9,
            "gender",
            "性别",
            "Gender",
            3,
            Some(r#"[{"id":"0","name":"女"},{"id":"1","name":"男"}]"#),
            false,
            true,
        ),
        f(10, "remark", "备注", "Remark", 1, None, false, true),
        f(11, "tags", "标签", "Tags", 7, None, false, true),
        f(12, "weight", "客户等级", "Level", 2, None, false, true),
        f(
            13,
            "customize_1_14",
            "客户分层",
            "Segment",
            1,
            None,
            false,
            false,
        ),
        f(
            14,
            "customize_1_15",
            "外部编号",
            "External id",
            1,
            None,
            false,
            false,
        ),
        f(15, "customize_2_3", "积分", "Points", 2, None, false, false),
        f(
            16,
            "customize_3_7",
            "渠道",
            "Channel",
            3,
            Some(
                r#"[{"id":"1","name":"web"},{"id":"2","name":"store"},{"id":"3","name":"partner"}]"#,
            ),
            false,
            false,
        ),
        f(
            17,
            "customize_4_52",
            "兴趣",
            "Interests",
            4,
            Some(
                r#"[{"id":"1","name":"sports"},{"id":"2","name":"music"},{"id":"3","name":"travel"}]"#,
            ),
            false,
            false,
        ),
        f(
            18,
            "customize_5_3",
            "首次购买",
            "First purchase",
            5,
            Some("yyyy-MM-dd"),
            false,
            false,
        ),
        f(
            19,
            "customize_6_2",
            "最近联系",
            "Last contact",
            6,
            Some("yyyy-MM-dd HH:mm:ss"),
            false,
            false,
        ),
    ]
}
