//! Client + simulator round trips on loopback: `cargo run --release --example bench_api [REQUESTS]`.
//!
//! For concurrency 1 and 8: REQUESTS batch_create calls of 100 customers each against a
//! fresh in-memory simulator; prints requests/s, rows/s and the simulator's own handling
//! time per request (from its `busy_us` counter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdpjob::api::client::{Client, ClientConfig};
use cdpjob::api::wire::BatchCreateRequest;
use cdpjob::customer::{Customer, Field};
use cdpjob::secret::Secret;
use cdpjob::sim::{SIM_ACCESS_KEY, SIM_APP_KEY, SIM_SECRET, SIM_TENANT_ID, Sim, SimConfig};

fn batch(n: usize) -> Vec<Customer> {
    (0..100)
        .map(|i| {
            let k = n * 100 + i;
            Customer::from_rendered([
                (Field::FullName, format!("Customer {k}")),
                (Field::WhatsAppPhone, format!("86139{k:08}")),
                (Field::Email, format!("c{k}@example.com")),
                (Field::TagStr, "bench,imported".to_string()),
                (
                    Field::CustomizeField,
                    format!("{{\"customize_1_14\":\"{}\"}}", k % 7),
                ),
            ])
            .expect("a valid customer")
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    println!(
        "{:>11} {:>9} {:>10} {:>10} {:>16}",
        "concurrency", "requests", "req/s", "rows/s", "sim µs/request"
    );
    for concurrency in [1usize, 8] {
        let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default(), None)
            .await
            .unwrap();
        let mut cfg = ClientConfig::new(sim.base_url(), SIM_ACCESS_KEY, Secret::new(SIM_SECRET));
        cfg.concurrency = concurrency;
        cfg.timeout = Duration::from_secs(30);
        let client = Arc::new(Client::new(cfg).unwrap());
        let batches: Vec<Arc<Vec<Customer>>> = (0..requests).map(|n| Arc::new(batch(n))).collect();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for b in batches {
            let client = Arc::clone(&client);
            tasks.push(tokio::spawn(async move {
                let req = BatchCreateRequest {
                    merge_type: 1,
                    tenant_id: SIM_TENANT_ID,
                    app_key: SIM_APP_KEY,
                    strict_binding: false,
                    customers: &b,
                };
                let reply = client
                    .batch_create(&req)
                    .await
                    .expect("the request succeeds");
                assert_eq!(reply.data.expect("data").success_count, 100);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let stats: serde_json::Value = serde_json::from_str(
            &reqwest::get(format!("{}/__sim/stats", sim.base_url()))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let busy = stats["busy_us"].as_u64().unwrap_or(0) as f64 / requests as f64;
        println!(
            "{concurrency:>11} {requests:>9} {:>10.0} {:>10.0} {busy:>16.0}",
            requests as f64 / secs,
            (requests * 100) as f64 / secs
        );
        sim.stop().await;
    }
}

// The same allocator as the cdpjob binary, so the figures match what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
