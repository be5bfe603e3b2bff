//! The API client against the simulator over real HTTP on 127.0.0.1 (an ephemeral port):
//! signing, the retry policy, merge modes, strict binding, paging in every order, seeding,
//! and exact 64-bit ids.

use std::time::{Duration, Instant};

use cdpjob::api::client::{ApiError, Client, ClientConfig};
use cdpjob::api::wire::BatchCreateRequest;
use cdpjob::customer::{Customer, Field};
use cdpjob::job::model::SignAlgorithm;
use cdpjob::secret::Secret;
use cdpjob::sim::{
    FaultConfig, Order, SIM_ACCESS_KEY, SIM_APP_KEY, SIM_SECRET, SIM_TENANT_ID, Seeding, Sim,
    SimConfig,
};
use serde_json::{Value, json};

/// A simulator with these faults and otherwise the defaults.
fn faulty(faults: FaultConfig) -> SimConfig {
    SimConfig {
        faults,
        ..Default::default()
    }
}

async fn sim(cfg: SimConfig) -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), cfg, None)
        .await
        .expect("the simulator starts")
}

fn client(sim: &Sim, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut cfg = ClientConfig::new(sim.base_url(), SIM_ACCESS_KEY, Secret::new(SIM_SECRET));
    cfg.min_backoff = Duration::from_millis(5);
    cfg.max_backoff = Duration::from_millis(50);
    cfg.timeout = Duration::from_secs(5);
    tweak(&mut cfg);
    Client::new(cfg).unwrap()
}

fn customer(name: &str, phone: &str, extra: &[(Field, &str)]) -> Customer {
    let mut fields = vec![
        (Field::FullName, name.to_string()),
        (Field::WhatsAppPhone, phone.to_string()),
    ];
    fields.extend(extra.iter().map(|(f, v)| (*f, v.to_string())));
    Customer::from_rendered(fields).unwrap()
}

fn request(customers: &[Customer], merge: u8, strict: bool) -> BatchCreateRequest<'_> {
    BatchCreateRequest {
        merge_type: merge,
        tenant_id: SIM_TENANT_ID,
        app_key: SIM_APP_KEY,
        strict_binding: strict,
        customers,
    }
}

/// GET a simulator view as text, with a plain reqwest client (which needs the rustls
/// provider that `Client::new` would otherwise install).
async fn get_text(sim: &Sim, path: &str) -> String {
    cdpjob::api::client::install_crypto_provider();
    reqwest::get(format!("{}{path}", sim.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn stats(sim: &Sim) -> Value {
    serde_json::from_str(&get_text(sim, "/__sim/stats").await).unwrap()
}

async fn sim_customers(sim: &Sim) -> Vec<Value> {
    serde_json::from_str(&get_text(sim, "/__sim/customers").await).unwrap()
}

#[tokio::test]
async fn both_algorithms_are_accepted() {
    let sim = sim(SimConfig::default()).await;
    for (i, algorithm) in [SignAlgorithm::Md5, SignAlgorithm::Sha256]
        .into_iter()
        .enumerate()
    {
        let c = client(&sim, |c| c.algorithm = algorithm);
        let batch = [customer("Ann", &format!("8613900000{i}"), &[])];
        let reply = c.batch_create(&request(&batch, 1, false)).await.unwrap();
        assert_eq!(reply.code, 0);
        assert_eq!(reply.attempts, 1);
        assert_eq!(reply.data.unwrap().success_count, 1);
    }
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_1003_and_is_not_retried() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |c| c.secret = Secret::new("not-the-secret"));
    let batch = [customer("Ann", "8613900000001", &[])];
    let err = c
        .batch_create(&request(&batch, 1, false))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ApiError::Refused { code: 1003, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("signature rejected: check the secret in"),
        "{text}"
    );
    assert!(
        text.contains("NXCLOUD_ACCESS_SECRET") && text.contains("nothing rewrites the body"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-secret"),
        "the secret never appears: {text}"
    );
    assert_eq!(stats(&sim).await["requests"], 1, "no retry");
}

#[tokio::test]
async fn other_final_codes_are_not_retried() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |c| c.access_key = "someone-else".into());
    let batch = [customer("Ann", "8613900000001", &[])];
    let err = c
        .batch_create(&request(&batch, 1, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Refused { code: 1005, .. }),
        "{err:?}"
    );
    let c = client(&sim, |_| {});
    let too_many: Vec<Customer> = (0..101)
        .map(|i| customer("A", &format!("86139{i:08}"), &[]))
        .collect();
    let err = c
        .batch_create(&request(&too_many, 1, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Refused { code: 1002, .. }),
        "{err:?}"
    );
    assert_eq!(stats(&sim).await["requests"], 2);
}

#[tokio::test]
async fn a_stale_timestamp_is_resigned_and_succeeds() {
    let sim = sim(faulty(FaultConfig {
        expire_ts_once: true,
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |_| {});
    let batch = [customer("Ann", "8613900000001", &[])];
    let reply = c.batch_create(&request(&batch, 1, false)).await.unwrap();
    assert_eq!(reply.code, 0);
    assert_eq!(reply.attempts, 2, "one 1004, then a fresh ts");
    assert_eq!(stats(&sim).await["codes"]["1004"], 1);
}

#[tokio::test]
async fn a_skewed_clock_is_detected_from_the_date_header_and_corrected() {
    let sim = sim(SimConfig {
        clock_skew_ms: 180_000,
        ..Default::default()
    })
    .await;
    let c = client(&sim, |_| {});
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reasons.clone();
    c.on_retry(move |n| seen.lock().unwrap().push(n.reason.clone()));
    let reply = c
        .batch_create(&request(&[customer("A", "8613900000001", &[])], 1, false))
        .await
        .unwrap();
    assert_eq!(
        reply.attempts, 2,
        "one 1004, then a ts corrected by the estimated offset"
    );
    let reasons = reasons.lock().unwrap().clone();
    let secs: i64 = reasons[0]
        .split("the local clock looks ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reasons:?}"));
    assert!((179..=181).contains(&secs), "{reasons:?}");
    assert!(
        reasons[0].contains("s behind the server's (from its Date header)"),
        "{reasons:?}"
    );
    // Later requests use the corrected clock straight away.
    let reply = c
        .batch_create(&request(&[customer("B", "8613900000002", &[])], 1, false))
        .await
        .unwrap();
    assert_eq!(reply.attempts, 1);
}

#[tokio::test]
async fn injected_faults_cost_exactly_one_attempt_each() {
    let sim = sim(faulty(FaultConfig {
        fail_5xx: 0.25,
        fail_429: 0.0,
        drop: 0.25,
        seed: 7,
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| c.max_retries = 20);
    let mut total_attempts = 0;
    for i in 0..20 {
        let batch = [customer("Ann", &format!("86139000{i:05}"), &[])];
        let reply = c.batch_create(&request(&batch, 1, false)).await.unwrap();
        assert_eq!(reply.code, 0);
        total_attempts += reply.attempts as u64;
    }
    let s = stats(&sim).await;
    let faults = s["injected_5xx"].as_u64().unwrap() + s["dropped"].as_u64().unwrap();
    assert!(faults > 0, "the seed injects some faults: {s}");
    assert_eq!(total_attempts, 20 + faults, "{s}");
    assert_eq!(s["requests"].as_u64().unwrap(), total_attempts);
    // A dropped answer was applied anyway; the retry matched the same customer.
    assert_eq!(
        sim_customers(&sim).await.len(),
        20,
        "each customer exactly once"
    );
}

#[tokio::test]
async fn retries_run_out_after_max_retries() {
    let sim = sim(faulty(FaultConfig {
        fail_5xx: 1.0,
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| c.max_retries = 3);
    let batch = [customer("Ann", "8613900000001", &[])];
    let err = c
        .batch_create(&request(&batch, 1, false))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Exhausted {
            attempts: 4,
            last: "HTTP 503".into()
        }
    );
    assert_eq!(stats(&sim).await["requests"], 4);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = sim(faulty(FaultConfig {
        fail_429: 1.0,
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| c.max_retries = 1);
    let batch = [customer("Ann", "8613900000001", &[])];
    let started = Instant::now();
    let err = c
        .batch_create(&request(&batch, 1, false))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, ApiError::Exhausted { attempts: 2, .. }),
        "{err:?}"
    );
    // The backoff alone would wait at most 50 ms; Retry-After: 1 says a second.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn dropped_connections_are_retried_and_counted() {
    let sim = sim(faulty(FaultConfig {
        drop: 0.5,
        seed: 3,
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| c.max_retries = 10);
    let retries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = retries.clone();
    c.on_retry(move |n| seen.lock().unwrap().push(n.reason.clone()));
    for i in 0..10 {
        let batch = [customer("Ann", &format!("86139000{i:05}"), &[])];
        c.batch_create(&request(&batch, 1, false)).await.unwrap();
    }
    let dropped = stats(&sim).await["dropped"].as_u64().unwrap();
    let reasons = retries.lock().unwrap().clone();
    assert!(dropped > 0, "the seed injects drops");
    assert_eq!(reasons.len() as u64, dropped);
    assert!(
        reasons.iter().all(|r| r.contains("connection closed")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn concurrency_limits_requests_in_flight() {
    let sim = sim(faulty(FaultConfig {
        latency: Duration::from_millis(100),
        ..Default::default()
    }))
    .await;
    let c = std::sync::Arc::new(client(&sim, |c| c.concurrency = 2));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let batch = [customer("A", &format!("86139000{i:05}"), &[])];
            c.batch_create(&request(&batch, 1, false))
                .await
                .unwrap()
                .code
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0);
    }
    let s = stats(&sim).await;
    assert_eq!(s["requests"], 6);
    assert_eq!(s["max_in_flight"], 2, "{s}");
}

#[tokio::test]
async fn requests_per_second_spaces_requests_out() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |c| c.requests_per_second = Some(20.0));
    let started = Instant::now();
    for i in 0..6 {
        let batch = [customer("A", &format!("86139000{i:05}"), &[])];
        c.batch_create(&request(&batch, 1, false)).await.unwrap();
    }
    // Six requests at 20/s need at least five gaps of 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let sim = sim(faulty(FaultConfig {
        latency: Duration::from_millis(800),
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| {
        c.timeout = Duration::from_millis(150);
        c.max_retries = 1;
    });
    let err = c
        .batch_create(&request(&[customer("A", "8613900000001", &[])], 1, false))
        .await
        .unwrap_err();
    match err {
        ApiError::Exhausted { attempts: 2, last } => assert!(last.contains("timed out"), "{last}"),
        other => panic!("{other:?}"),
    }
}

/// The injected latency is the API's response time: a request is applied when it arrives,
/// so one whose answer the client gave up on is still there (the client is in doubt).
#[tokio::test]
async fn a_request_answered_too_late_for_the_client_is_still_applied() {
    let sim = sim(faulty(FaultConfig {
        latency: Duration::from_millis(600),
        ..Default::default()
    }))
    .await;
    let c = client(&sim, |c| {
        c.timeout = Duration::from_millis(100);
        c.max_retries = 0;
    });
    let started = std::time::Instant::now();
    let err = c
        .batch_create(&request(&[customer("A", "8613900000001", &[])], 1, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Exhausted { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(600));
    let customers = sim_customers(&sim).await;
    assert_eq!(customers.len(), 1, "{customers:?}");
    assert_eq!(customers[0]["whatsApp_phone"], "8613900000001");
}

#[tokio::test]
async fn merge_modes_replace_update_keep() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let phone = "8613900000001";
    let first = [customer(
        "Ann Lee",
        phone,
        &[(Field::Email, "ann@x.io"), (Field::TagStr, "a")],
    )];
    let id = c
        .batch_create(&request(&first, 1, false))
        .await
        .unwrap()
        .data
        .unwrap()
        .success_items[0]
        .customer_id;

    let update = [customer(
        "Ann Li",
        phone,
        &[(Field::Country, "CN"), (Field::TagStr, "b")],
    )];
    let r = c
        .batch_create(&request(&update, 1, false))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        r.success_items[0].customer_id, id,
        "matched by whats_app_phone"
    );
    let all = sim_customers(&sim).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (
            all[0]["full_name"].as_str(),
            all[0]["email"].as_str(),
            all[0]["country"].as_str()
        ),
        (Some("Ann Li"), Some("ann@x.io"), Some("CN"))
    );
    let tags: Vec<&str> = all[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b"], "update adds tags");

    let keep = [customer("Someone Else", phone, &[])];
    c.batch_create(&request(&keep, 2, false)).await.unwrap();
    assert_eq!(
        sim_customers(&sim).await[0]["full_name"],
        "Ann Li",
        "keep discards new data"
    );

    let replace = [customer("Ann New", phone, &[(Field::TagStr, "c")])];
    c.batch_create(&request(&replace, 0, false)).await.unwrap();
    let all = sim_customers(&sim).await;
    assert_eq!(all[0]["full_name"], "Ann New");
    assert_eq!(all[0]["email"], Value::Null, "replace discards old data");
    assert_eq!(all[0]["tags"][0]["tag_name"], "c");
    assert_eq!(all[0]["tags"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn matching_falls_back_to_sms_phone_then_email() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let a = Customer::from_rendered([
        (Field::FullName, "A".to_string()),
        (Field::SmsPhone, "111".to_string()),
    ])
    .unwrap();
    let b = Customer::from_rendered([
        (Field::FullName, "B".to_string()),
        (Field::Email, "b@x.io".to_string()),
    ])
    .unwrap();
    c.batch_create(&request(&[a.clone(), b.clone()], 1, false))
        .await
        .unwrap();
    c.batch_create(&request(&[a, b], 1, false)).await.unwrap();
    assert_eq!(sim_customers(&sim).await.len(), 2);
}

#[tokio::test]
async fn strict_binding_both_ways() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let batch = [
        customer("Ok", "8613900000001", &[(Field::BelongSeatUser, "agent-1")]),
        customer("Bad", "8613900000002", &[(Field::BelongSeatUser, "ghost")]),
        customer("Free", "8613900000003", &[]),
    ];
    let strict = c.batch_create(&request(&batch, 1, true)).await.unwrap();
    assert_eq!(strict.code, 0);
    let data = strict.data.unwrap();
    assert_eq!((data.success_count, data.fail_count), (2, 1));
    assert_eq!(
        (data.fail_items[0].index, data.fail_items[0].error_code),
        (1, 12148)
    );
    assert_eq!(sim_customers(&sim).await.len(), 2);

    let sim2 = self::sim(SimConfig::default()).await;
    let c2 = client(&sim2, |_| {});
    let loose = c2.batch_create(&request(&batch, 1, false)).await.unwrap();
    assert_eq!(loose.code, 12148, "the whole request fails");
    assert!(loose.data.is_none());
    assert!(loose.message.unwrap().contains("ghost"));
    assert!(sim_customers(&sim2).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn invalid_records_are_fail_items_with_their_index() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let body = json!({"type": 1, "tenant_id": SIM_TENANT_ID, "app_key": SIM_APP_KEY, "customers": [
        {"full_name": "Ok", "email": "a@x.io"},
        {"full_name": "No channel"},
        {"full_name": "Bad phone", "sms_phone": "+86 139"},
        {"full_name": "Bad date", "email": "d@x.io", "birthday": "2023-02-29"},
    ]});
    let reply: cdpjob::api::client::Reply<cdpjob::api::wire::BatchCreateResult> = c
        .call(
            reqwest::Method::POST,
            cdpjob::api::wire::BATCH_CREATE_PATH,
            "",
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
    let data = reply.data.unwrap();
    assert_eq!(data.success_count, 1);
    let idx: Vec<usize> = data.fail_items.iter().map(|f| f.index).collect();
    assert_eq!(idx, [1, 2, 3]);
    assert!(
        data.fail_items[1]
            .error_message
            .as_deref()
            .unwrap()
            .contains("digits only")
    );
}

const ORDERS: [Order; 3] = [Order::Asc, Order::Desc, Order::Shuffled];

/// A query body: the tenant, 50 a page, and `extra`'s keys.
fn query_body(extra: Value) -> Value {
    let mut body = json!({"tenant_id": SIM_TENANT_ID, "app_key": SIM_APP_KEY, "limit": 50});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// The ids of a page.
fn ids_of(page: &cdpjob::api::wire::QueryResult) -> Vec<i64> {
    page.customer_list
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

/// Page through `body` as an export does: from `after` (the start without) with each page's
/// `paging.after`, until `next` is null or `max_pages` pages were read. Checks every
/// page's paging: `before`/`after` its first/last id, `next` the start of the next page,
/// `previous` null on the first page only, and `before` = this page's start gives back the
/// page before. Returns the ids in the order they came, and the last `after`.
async fn page_through(
    c: &Client,
    body: &Value,
    from: Option<i64>,
    max_pages: usize,
) -> (Vec<i64>, Option<i64>, bool) {
    let mut seen = Vec::new();
    let mut after = from;
    let mut expected_first: Option<i64> = None;
    let mut previous_page: Option<Vec<i64>> = None;
    for _ in 0..max_pages {
        let mut body = body.clone();
        if let Some(a) = after {
            body["after"] = json!(a);
        }
        let page = c.query(&body).await.unwrap().data.unwrap();
        let ids = ids_of(&page);
        assert_eq!(page.paging.before, ids.first().copied());
        assert_eq!(page.paging.after, ids.last().copied());
        if let Some(first) = expected_first {
            assert_eq!(
                ids.first(),
                Some(&first),
                "`next` was the start of this page"
            );
        }
        if from.is_none() && previous_page.is_none() {
            assert_eq!(page.paging.previous, None, "first page");
        } else {
            assert!(page.paging.previous.is_some(), "a page after the first");
        }
        if let Some(prev) = &previous_page {
            assert_eq!(page.paging.previous, prev.first().copied());
            let mut back = body.clone();
            back.as_object_mut().unwrap().remove("after");
            back["before"] = json!(page.paging.before);
            let back = c.query(&back).await.unwrap().data.unwrap();
            assert_eq!(&ids_of(&back), prev, "`before` gives back the page before");
        }
        seen.extend(&ids);
        after = page.paging.after;
        expected_first = page.paging.next;
        if page.paging.next.is_none() {
            return (seen, after, true);
        }
        previous_page = Some(ids);
    }
    (seen, after, false)
}

/// `seen` holds each of `expected` exactly once, and comes in `order`.
#[track_caller]
fn exactly_once_in_order(seen: &[i64], expected: &[i64], order: Order) {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(sorted.len(), seen.len(), "{order}: sorting lost nothing");
    let mut dedup = sorted.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "{order}: no customer twice");
    assert_eq!(dedup, want, "{order}: none missing, none extra");
    let rising = seen.windows(2).filter(|w| w[0] < w[1]).count();
    let falling = seen.windows(2).filter(|w| w[0] > w[1]).count();
    match order {
        Order::Asc => assert_eq!(falling, 0, "asc: ids ascending"),
        Order::Desc => assert_eq!(rising, 0, "desc: ids descending"),
        // Neither way: about as many steps up as down.
        Order::Shuffled => assert!(
            rising > seen.len() / 4 && falling > seen.len() / 4,
            "shuffled: {rising} up, {falling} down"
        ),
    }
}

#[tokio::test]
async fn paging_through_2500_customers_yields_each_exactly_once() {
    for order in ORDERS {
        let sim = sim(SimConfig {
            order,
            ..Default::default()
        })
        .await;
        let c = client(&sim, |c| c.concurrency = 8);
        let mut created = Vec::new();
        for chunk in 0..25 {
            let batch: Vec<Customer> = (0..100)
                .map(|i| {
                    customer(
                        &format!("C{chunk}-{i}"),
                        &format!("86139{:08}", chunk * 100 + i),
                        &[],
                    )
                })
                .collect();
            let r = c
                .batch_create(&request(&batch, 1, false))
                .await
                .unwrap()
                .data
                .unwrap();
            created.extend(r.success_items.iter().map(|s| s.customer_id));
        }
        assert_eq!(created.len(), 2500);
        let (seen, _, done) = page_through(&c, &query_body(json!({})), None, 100).await;
        assert!(done, "{order}: next is null at the end");
        assert_eq!(seen.len(), 2500, "{order}: 50 full pages");
        exactly_once_in_order(&seen, &created, order);
    }
}

/// The window of the seeded customers of the tests below: ten days.
const SEED_WINDOW: &str = "2026-01-01 00:00:00..2026-01-11 00:00:00";

fn seeded(count: u64, order: Order) -> SimConfig {
    SimConfig {
        order,
        seeding: Some(Seeding::new(count, SEED_WINDOW.parse().unwrap()).unwrap()),
        ..Default::default()
    }
}

#[tokio::test]
async fn paging_a_time_window_and_tags_yields_each_match_once_in_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.jsonl");
    let start = |order| {
        let state = state.clone();
        async move {
            Sim::start(
                "127.0.0.1:0".parse().unwrap(),
                seeded(2500, order),
                Some(&state),
            )
            .await
            .unwrap()
        }
    };
    // 2500 customers over ten days; every 3rd gets the tag vip, every 5th news.
    let sim = start(Order::Asc).await;
    assert!(sim.seeded);
    let c = client(&sim, |_| {});
    let all = sim_customers(&sim).await;
    assert_eq!(all.len(), 2500);
    let tagged: Vec<Customer> = all
        .iter()
        .enumerate()
        .filter_map(|(i, cu)| {
            let tags: Vec<&str> = [(3, "vip"), (5, "news")]
                .iter()
                .filter(|(n, _)| i % n == 0)
                .map(|(_, t)| *t)
                .collect();
            (!tags.is_empty()).then(|| {
                customer(
                    cu["full_name"].as_str().unwrap(),
                    cu["whatsApp_phone"].as_str().unwrap(),
                    &[(Field::TagStr, &tags.join(","))],
                )
            })
        })
        .collect();
    for batch in tagged.chunks(100) {
        let r = c.batch_create(&request(batch, 1, false)).await.unwrap();
        assert!(r.data.unwrap().fail_items.is_empty());
    }
    let all = sim_customers(&sim).await;
    assert_eq!(all.len(), 2500, "tagging merged into the seeded customers");
    let tag_id = |name: &str| {
        all.iter()
            .flat_map(|c| c["tags"].as_array().unwrap())
            .find(|t| t["tag_name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (vip, news) = (tag_id("vip"), tag_id("news"));
    let (from, to) = ("2026-01-03 12:00:00", "2026-01-08 12:00:00");
    let expect = |want: &dyn Fn(&[i64]) -> bool| -> Vec<i64> {
        all.iter()
            .filter(|cu| {
                let at = cu["created_at"].as_str().unwrap().replace('T', " ");
                let tags: Vec<i64> = cu["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_i64().unwrap())
                    .collect();
                at.as_str() >= from && at.as_str() < to && want(&tags)
            })
            .map(|cu| cu["id"].as_i64().unwrap())
            .collect()
    };
    let any = expect(&|t| t.contains(&vip) || t.contains(&news));
    let both = expect(&|t| t.contains(&vip) && t.contains(&news));
    let window = json!({"start_time": from, "end_time": to});
    let or = query_body(
        json!({"start_time": from, "end_time": to, "tags": [{"id": vip}, {"id": news}], "tags_logic_type": "or"}),
    );
    let and = query_body(
        json!({"start_time": from, "end_time": to, "tags": [{"id": vip}, {"id": news}], "tags_logic_type": "and"}),
    );
    // 2500 × ½ of the window × (1/3 + 1/5 − 1/15) ≈ 583; × 1/15 ≈ 83.
    assert!((550..620).contains(&any.len()) && (70..100).contains(&both.len()));
    drop(c);
    sim.stop().await;
    for order in ORDERS {
        // The same state file, restarted in each order: seeded once only.
        let sim = start(order).await;
        assert!(!sim.seeded, "{order}: the state held customers");
        let c = client(&sim, |_| {});
        let (seen, _, done) = page_through(&c, &query_body(window.clone()), None, 100).await;
        assert!(done);
        assert_eq!(seen.len(), expect(&|_| true).len(), "{order}: the window");
        exactly_once_in_order(&seen, &expect(&|_| true), order);
        let (seen, _, _) = page_through(&c, &or, None, 100).await;
        exactly_once_in_order(&seen, &any, order);
        let (seen, _, _) = page_through(&c, &and, None, 100).await;
        exactly_once_in_order(&seen, &both, order);
        // Interrupted half-way and continued from its cursor by a restarted simulator (as
        // a resumed export is): still each customer once, in the same order.
        let (whole, _, _) = page_through(&c, &or, None, 100).await;
        let (head, cursor, done) = page_through(&c, &or, None, 5).await;
        assert!(!done);
        drop(c);
        sim.stop().await;
        let sim = start(order).await;
        let c = client(&sim, |_| {});
        let (tail, _, done) = page_through(&c, &or, cursor, 100).await;
        assert!(done);
        assert_eq!([head, tail].concat(), whole, "{order}: across a restart");
        drop(c);
        sim.stop().await;
    }
}

#[tokio::test]
async fn a_seeded_simulator_answers_half_its_window_with_half_its_customers() {
    let sim = sim(seeded(1000, Order::Asc)).await;
    assert!(sim.seeded);
    let c = client(&sim, |_| {});
    let all = sim_customers(&sim).await;
    assert_eq!(all.len(), 1000);
    for key in ["full_name", "whatsApp_phone", "email"] {
        let distinct: std::collections::HashSet<&str> =
            all.iter().map(|c| c[key].as_str().unwrap()).collect();
        assert_eq!(distinct.len(), 1000, "{key} distinct");
    }
    let created = |id: i64| {
        all.iter().find(|c| c["id"] == id).unwrap()["created_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let half =
        query_body(json!({"start_time": "2026-01-01 00:00:00", "end_time": "2026-01-06 00:00:00"}));
    let (first, _, _) = page_through(&c, &half, None, 100).await;
    assert!(
        (450..=550).contains(&first.len()),
        "{} in half the window",
        first.len()
    );
    assert!(
        first
            .iter()
            .all(|id| created(*id).as_str() < "2026-01-06T00:00:00")
    );
    let rest =
        query_body(json!({"start_time": "2026-01-06 00:00:00", "end_time": "2026-01-11 00:00:00"}));
    let (second, _, _) = page_through(&c, &rest, None, 100).await;
    assert!(
        second
            .iter()
            .all(|id| created(*id).as_str() >= "2026-01-06T00:00:00")
    );
    let ids: Vec<i64> = all.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    exactly_once_in_order(&[first, second].concat(), &ids, Order::Asc);
    // Outside the seeding window: none.
    for (s, e) in [
        ("2025-12-01 00:00:00", "2026-01-01 00:00:00"),
        ("2026-01-11 00:00:00", "2026-02-01 00:00:00"),
    ] {
        let body = query_body(json!({"start_time": s, "end_time": e}));
        let page = c.query(&body).await.unwrap().data.unwrap();
        assert!(page.customer_list.is_empty(), "{s}..{e}");
    }
    // The same seed generates the same customers, another seed others.
    let again = self::sim(seeded(1000, Order::Asc)).await;
    let other = self::sim(SimConfig {
        faults: FaultConfig {
            seed: 2,
            ..Default::default()
        },
        ..seeded(1000, Order::Asc)
    })
    .await;
    let names = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|c| {
                format!(
                    "{} {} {}",
                    c["full_name"], c["whatsApp_phone"], c["created_at"]
                )
            })
            .collect()
    };
    assert_eq!(names(&sim_customers(&again).await), names(&all));
    assert_ne!(names(&sim_customers(&other).await), names(&all));
}

#[tokio::test]
async fn query_filters_time_window_phone_and_tags() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let batch = [
        customer("Vip One", "8613900000001", &[(Field::TagStr, "vip,news")]),
        customer("Vip Two", "8613900000002", &[(Field::TagStr, "vip")]),
        customer("Plain", "8613900000003", &[(Field::TagStr, "news")]),
    ];
    c.batch_create(&request(&batch, 1, false)).await.unwrap();
    let all = sim_customers(&sim).await;
    let tag_id = |name: &str| {
        all.iter()
            .flat_map(|c| c["tags"].as_array().unwrap())
            .find(|t| t["tag_name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let names = |v: &Vec<Value>| {
        v.iter()
            .map(|c| c["full_name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let q = |extra: Value| {
        let mut body = json!({"tenant_id": SIM_TENANT_ID, "app_key": SIM_APP_KEY, "limit": 50});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let and = c.query(&q(json!({"tags": [{"id": tag_id("vip")}, {"id": tag_id("news")}], "tags_logic_type": "and"}))).await.unwrap();
    assert_eq!(names(&and.data.unwrap().customer_list), ["Vip One"]);
    let or = c.query(&q(json!({"tags": [{"id": tag_id("vip")}, {"id": tag_id("news")}], "tags_logic_type": "or"}))).await.unwrap();
    assert_eq!(or.data.unwrap().customer_list.len(), 3);
    let phone = c
        .query(&q(json!({"whatsApp_phone": "8613900000002"})))
        .await
        .unwrap();
    assert_eq!(names(&phone.data.unwrap().customer_list), ["Vip Two"]);
    let future = c
        .query(&q(json!({"start_time": "2999-01-01 00:00:00"})))
        .await
        .unwrap();
    assert!(future.data.unwrap().customer_list.is_empty());
    let window = c
        .query(&q(
            json!({"start_time": "2000-01-01 00:00:00", "end_time": "2999-01-01 00:00:00"}),
        ))
        .await
        .unwrap();
    assert_eq!(window.data.unwrap().customer_list.len(), 3);
    let bad = c.query(&q(json!({"limit": 51}))).await.unwrap_err();
    assert!(matches!(bad, ApiError::Refused { code: 1002, .. }));
}

#[tokio::test]
async fn ids_above_2_pow_53_are_exact_end_to_end() {
    for start in [9007199254740993_i64, 1214631327620775936] {
        let sim = sim(SimConfig {
            id_start: Some(start),
            ..Default::default()
        })
        .await;
        let c = client(&sim, |_| {});
        let batch = [
            customer("A", "8613900000001", &[]),
            customer("B", "8613900000002", &[]),
        ];
        let r = c
            .batch_create(&request(&batch, 1, false))
            .await
            .unwrap()
            .data
            .unwrap();
        let ids: Vec<i64> = r.success_items.iter().map(|s| s.customer_id).collect();
        assert_eq!(ids, [start, start + 1]);
        let page = c
            .query(&json!({"tenant_id": SIM_TENANT_ID, "app_key": SIM_APP_KEY, "limit": 50}))
            .await
            .unwrap()
            .data
            .unwrap();
        let listed: Vec<i64> = page
            .customer_list
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert_eq!(listed, ids);
        assert_eq!(page.paging.after, Some(start + 1));
        // And as the raw text on the wire, digit for digit.
        let raw = get_text(&sim, "/__sim/customers").await;
        assert!(raw.contains(&format!("\"id\":{start}")), "{raw}");
    }
    // Time-based ids are all above 2^53 too.
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let r = c
        .batch_create(&request(&[customer("A", "8613900000001", &[])], 1, false))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(r.success_items[0].customer_id > 1 << 53);
}

#[tokio::test]
async fn the_fields_endpoint_lists_preset_and_custom_fields() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let all = c
        .fields(SIM_TENANT_ID, SIM_APP_KEY, None)
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(
        all.iter()
            .any(|f| f.name == "full_name" && f.is_preset && f.required)
    );
    assert!(
        all.iter()
            .any(|f| f.name == "customize_4_52" && f.field_type == 4 && !f.is_preset)
    );
    let custom = c
        .fields(SIM_TENANT_ID, SIM_APP_KEY, Some(false))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(custom.iter().all(|f| !f.is_preset) && !custom.is_empty());
}

#[tokio::test]
async fn state_persists_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.jsonl");
    {
        let sim = Sim::start(
            "127.0.0.1:0".parse().unwrap(),
            SimConfig::default(),
            Some(&path),
        )
        .await
        .unwrap();
        let c = client(&sim, |_| {});
        c.batch_create(&request(&[customer("A", "8613900000001", &[])], 1, false))
            .await
            .unwrap();
        sim.stop().await;
    }
    let sim = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig::default(),
        Some(&path),
    )
    .await
    .unwrap();
    assert_eq!(sim_customers(&sim).await.len(), 1);
}

#[tokio::test]
async fn a_sim_job_connects_with_built_in_credentials_and_keeps_state_under_the_run_root() {
    let dir = tempfile::tempdir().unwrap();
    let job_path = dir.path().join("job.yaml");
    std::fs::write(dir.path().join("in.csv"), "name,email\nAnn,a@x.io\n").unwrap();
    std::fs::write(
        &job_path,
        "version: 1\nname: t\nkind: batch_create\napi: {base_url: sim, tenant_id: 77, app_key: k, access_key_env: CDPJOB_TEST_NO_KEY, access_secret_env: CDPJOB_TEST_NO_SECRET}\nsource: {type: csv, path: in.csv}\nmapping: {full_name: \"{{ row.name }}\", email: \"{{ row.email }}\"}\nrun: {root: out}\n",
    )
    .unwrap();
    let job = cdpjob::job::load(&job_path, &Default::default()).unwrap();
    let conn = cdpjob::connection::connect(&job).await.unwrap();
    let c = Customer::from_rendered([
        (Field::FullName, "A".to_string()),
        (Field::Email, "a@x.io".to_string()),
    ])
    .unwrap();
    let req = BatchCreateRequest {
        merge_type: 1,
        tenant_id: 77,
        app_key: "k",
        strict_binding: false,
        customers: &[c],
    };
    assert_eq!(conn.client.batch_create(&req).await.unwrap().code, 0);
    assert!(dir.path().join("out/.sim/state.jsonl").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        // It holds phones and e-mails: private, like a run directory.
        assert_eq!(mode("out/.sim"), 0o700);
        assert_eq!(mode("out/.sim/state.jsonl"), 0o600);
    }
    drop(conn);
    // A second connection (an export after the import) sees the customer.
    let conn = cdpjob::connection::connect(&job).await.unwrap();
    let page = conn
        .client
        .query(&json!({"tenant_id": 77, "app_key": "k", "limit": 10}))
        .await
        .unwrap();
    assert_eq!(page.data.unwrap().customer_list.len(), 1);
}

#[tokio::test]
async fn records_in_one_request_match_each_other() {
    let sim = sim(SimConfig::default()).await;
    let c = client(&sim, |_| {});
    let batch = [
        customer("First", "8613900000001", &[(Field::TagStr, "a")]),
        customer(
            "Second",
            "8613900000001",
            &[(Field::Email, "s@x.io"), (Field::TagStr, "b")],
        ),
        Customer::from_rendered([
            (Field::FullName, "Third".to_string()),
            (Field::Email, "s@x.io".to_string()),
        ])
        .unwrap(),
    ];
    let r = c
        .batch_create(&request(&batch, 1, false))
        .await
        .unwrap()
        .data
        .unwrap();
    let ids: Vec<i64> = r.success_items.iter().map(|s| s.customer_id).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        ids[1], ids[2],
        "matched by the e-mail the second record added"
    );
    let all = sim_customers(&sim).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["full_name"], "Third");
    assert_eq!(all[0]["tags"].as_array().unwrap().len(), 2);
}
