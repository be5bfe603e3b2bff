//! The CDP simulator: a real HTTP server implementing CDP-API §2–§6 faithfully enough that
//! every test, demo and benchmark runs against it: header and signature checks (both
//! algorithms), the ±60 s timestamp window, codes 1001–1005, batch_create with every
//! customer rule, merge modes and strict binding, query filters with cursor paging, the
//! fields endpoint, 64-bit ids, and seeded fault injection; paging in ascending, descending
//! or shuffled order, and generated customers spread over a window.
//!
//! It runs standalone (`cdpjob sim`) or in process (`base_url: sim`), with built-in
//! credentials so the quickstart needs none.

pub mod faults;
mod fields;
pub mod order;
mod records;
mod routes;
pub mod seed;
pub mod store;
mod timer;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::faults::FaultConfig;
use self::faults::Faults;
pub use self::order::Order;
pub use self::seed::{SeedWindow, Seeding};
pub use self::store::Store;
use crate::secret::Secret;

/// The simulator's built-in credentials and tenant, used by `base_url: sim` and by
/// `cdpjob sim` when no secret is set in the environment.
pub const SIM_ACCESS_KEY: &str = "cdpjob-sim";
pub const SIM_SECRET: &str = "cdpjob-sim-secret";
pub const SIM_TENANT_ID: i64 = 123;
pub const SIM_APP_KEY: &str = "46oKF=os";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub access_key: String,
    pub secret: Secret,
    pub tenant_id: i64,
    pub app_key: String,
    /// Agents that exist, for `belong_seat_user` and strict binding.
    pub agents: Vec<String>,
    pub faults: FaultConfig,
    /// Hand out sequential ids from this one instead of time-based ones (tests of exact
    /// 64-bit ids such as 2^53 + 1).
    pub id_start: Option<i64>,
    /// The simulator's clock runs this many milliseconds ahead of the machine's (its `Date`
    /// header and its timestamp check both use it), to exercise clock-offset handling.
    pub clock_skew_ms: i64,
    /// The order the query endpoint pages in (`shuffled` is fixed by `faults.seed`).
    pub order: Order,
    /// A query's `end_time` is inside its window (default: just past it).
    pub inclusive_end: bool,
    /// Customers to generate before serving, into a state that holds none (from
    /// `faults.seed`).
    pub seeding: Option<Seeding>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            access_key: SIM_ACCESS_KEY.into(),
            secret: Secret::new(SIM_SECRET),
            tenant_id: SIM_TENANT_ID,
            app_key: SIM_APP_KEY.into(),
            agents: vec!["agent-1".into(), "agent-2".into()],
            faults: FaultConfig::default(),
            id_start: None,
            clock_skew_ms: 0,
            order: Order::Asc,
            inclusive_end: false,
            seeding: None,
        }
    }
}

/// A running simulator; dropping it (or [`Sim::stop`]) shuts it down.
#[derive(Debug)]
pub struct Sim {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    /// Whether `cfg.seeding` created customers (not when the state held some already).
    pub seeded: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sim {
    /// Serve on `listen` (port 0 picks a free one) with the state in `state` (a file, or
    /// memory when `None`), seeded first if `cfg.seeding` says so.
    pub async fn start(
        listen: SocketAddr,
        cfg: SimConfig,
        state: Option<&Path>,
    ) -> std::io::Result<Sim> {
        // Off the async threads: opening waits while a simulator shutting down in this
        // process still holds the state file, and seeding takes a while.
        let owned = state.map(Path::to_path_buf);
        let inclusive_end = cfg.inclusive_end;
        let (id_start, order, seed, seeding, tenant) = (
            cfg.id_start,
            cfg.order,
            cfg.faults.seed,
            cfg.seeding,
            cfg.tenant_id,
        );
        let (store, seeded) = tokio::task::spawn_blocking(move || {
            let store = Store::open(owned.as_deref())?;
            if let Some(start) = id_start {
                store.use_sequential_ids(start);
            }
            store.use_order(order, seed);
            if inclusive_end {
                store.use_inclusive_end();
            }
            let seeded = match seeding {
                Some(s) => store.seed(tenant, s.customers(seed))?,
                None => false,
            };
            Ok::<_, std::io::Error>((store, seeded))
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| {
            std::io::Error::other(format!("cannot open the simulator state {state:?}: {e}"))
        })?;
        let store = Arc::new(store);
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = routes::router(Arc::new(routes::App {
            faults: Faults::new(cfg.faults.clone()),
            cfg,
            store: Arc::clone(&store),
            stats: Default::default(),
            timer: timer::Timer::start()?,
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt as _;
            // Without TCP_NODELAY a response written in two segments waits for the client's
            // delayed ACK: ~10 ms a request on loopback, more than the work itself.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Sim {
            addr,
            store,
            seeded,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
