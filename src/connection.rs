//! From a job's `api` block to a working client: credentials from the environment, the
//! job's retry and concurrency settings, and for `base_url: sim` an in-process simulator
//! with built-in credentials whose state lives under the run root, so that an export after
//! an import sees what was imported. The environment chooses that simulator's order and
//! seeding (`CDPJOB_SIM_ORDER`, `CDPJOB_SIM_SEED_CUSTOMERS`, `CDPJOB_SIM_SEED_WINDOW`), so
//! tests and demos can run a job file unchanged against any of them.

use std::time::Duration;

use crate::api::client::{Client, ClientConfig};
use crate::error::{Again, Error};
use crate::job::Job;
use crate::secret::Secret;
use crate::sim::{Order, SIM_ACCESS_KEY, SIM_SECRET, SeedWindow, Seeding, Sim, SimConfig};

/// A client, and the simulator it talks to when the job says `base_url: sim`.
#[derive(Debug)]
pub struct Connection {
    pub client: Client,
    pub sim: Option<Sim>,
}

/// Credentials: the environment variables the job names; the simulator's built-in ones when
/// the job uses `base_url: sim` and they are unset.
fn credentials(job: &Job, sim: bool) -> Result<(String, Secret), String> {
    let api = &job.spec.api;
    let key = std::env::var(&api.access_key_env)
        .ok()
        .filter(|v| !v.is_empty());
    let secret = Secret::from_env(&api.access_secret_env);
    match (key, secret, sim) {
        (Some(k), Ok(s), _) => Ok((k, s)),
        (None, Err(_), true) => Ok((SIM_ACCESS_KEY.to_string(), Secret::new(SIM_SECRET))),
        (None, _, _) => Err(format!(
            "the environment variable {} is not set: export the access key there",
            api.access_key_env
        )),
        (_, Err(e), _) => Err(e),
    }
}

/// The embedded simulator's order and seeding, from the variables `env` looks up: the
/// order from `CDPJOB_SIM_ORDER` (asc when unset), the seeding from
/// `CDPJOB_SIM_SEED_CUSTOMERS` and `CDPJOB_SIM_SEED_WINDOW` (both, or neither). An empty
/// variable counts as unset.
fn sim_options(env: impl Fn(&str) -> Option<String>) -> Result<(Order, Option<Seeding>), String> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let order = match var("CDPJOB_SIM_ORDER") {
        None => Order::Asc,
        Some(v) => v.parse().map_err(|e| format!("CDPJOB_SIM_ORDER: {e}"))?,
    };
    let seeding = match (
        var("CDPJOB_SIM_SEED_CUSTOMERS"),
        var("CDPJOB_SIM_SEED_WINDOW"),
    ) {
        (None, None) => None,
        (Some(count), Some(window)) => {
            let count = count.trim().parse::<u64>().map_err(|_| {
                format!("CDPJOB_SIM_SEED_CUSTOMERS: {count:?} is not a number of customers")
            })?;
            let window = window
                .parse::<SeedWindow>()
                .map_err(|e| format!("CDPJOB_SIM_SEED_WINDOW: {e}"))?;
            Some(
                Seeding::new(count, window)
                    .map_err(|e| format!("CDPJOB_SIM_SEED_CUSTOMERS: {e}"))?,
            )
        }
        (Some(_), None) => {
            return Err(
                "CDPJOB_SIM_SEED_CUSTOMERS is set without CDPJOB_SIM_SEED_WINDOW: set both, \
                 or neither"
                    .into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "CDPJOB_SIM_SEED_WINDOW is set without CDPJOB_SIM_SEED_CUSTOMERS: set both, \
                 or neither"
                    .into(),
            );
        }
    };
    Ok((order, seeding))
}

/// Connect a job to its API (starting the in-process simulator for `base_url: sim`).
/// A missing credential or an unusable run root is the environment's fault (exit 2); a
/// simulator state held by another process is passing (exit 3: try again, or resume).
pub async fn connect(job: &Job) -> crate::error::Result<Connection> {
    let api = &job.spec.api;
    let is_sim = api.base_url == "sim";
    let (access_key, secret) = credentials(job, is_sim).map_err(Error::Environment)?;
    let sim = if is_sim {
        let (order, seeding) =
            sim_options(|name| std::env::var(name).ok()).map_err(Error::Environment)?;
        let state = &job.paths.sim_state;
        if let Some(dir) = state.parent() {
            // Private, like a run directory: the state holds phones and e-mails.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| Error::Environment(format!("cannot create {}: {e}", dir.display())))?;
        }
        let cfg = SimConfig {
            access_key: access_key.clone(),
            secret: secret.clone(),
            tenant_id: api.tenant_id,
            app_key: api.app_key.clone(),
            order,
            seeding,
            ..SimConfig::default()
        };
        let sim = Sim::start("127.0.0.1:0".parse().expect("an address"), cfg, Some(state))
            .await
            .map_err(|e| {
                Error::stopped(
                    format!("cannot start the embedded simulator: {e}"),
                    Again::RunAgain,
                )
            })?;
        Some(sim)
    } else {
        None
    };
    let base_url = sim
        .as_ref()
        .map_or_else(|| api.base_url.clone(), Sim::base_url);
    let mut cfg = ClientConfig::new(base_url, access_key, secret);
    cfg.algorithm = api.sign_algorithm;
    cfg.timeout = Duration::from_secs(api.timeout_secs);
    cfg.max_retries = api.max_retries;
    // A parallel export's K workers are its requests in flight (SPEC §12 R16).
    let parallel = job.spec.parallel();
    cfg.concurrency = if parallel > 1 {
        parallel
    } else {
        api.concurrency
    };
    cfg.requests_per_second = api.requests_per_second;
    let client = Client::new(cfg)?;
    Ok(Connection { client, sim })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(vars: &[(&str, &str)]) -> Result<(Order, Option<Seeding>), String> {
        sim_options(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_embedded_simulator_takes_its_order_and_seeding_from_the_environment() {
        assert_eq!(options(&[]), Ok((Order::Asc, None)));
        assert_eq!(options(&[("CDPJOB_SIM_ORDER", "")]), Ok((Order::Asc, None)));
        for (text, order) in [
            ("asc", Order::Asc),
            ("desc", Order::Desc),
            ("shuffled", Order::Shuffled),
        ] {
            assert_eq!(options(&[("CDPJOB_SIM_ORDER", text)]), Ok((order, None)));
        }
        let (order, seeding) = options(&[
            ("CDPJOB_SIM_ORDER", "desc"),
            ("CDPJOB_SIM_SEED_CUSTOMERS", "1000"),
            (
                "CDPJOB_SIM_SEED_WINDOW",
                "2026-01-01 00:00:00..2026-01-08 00:00:00",
            ),
        ])
        .unwrap();
        assert_eq!(order, Order::Desc);
        let seeding = seeding.unwrap();
        assert_eq!(seeding.count, 1000);
        assert_eq!(
            seeding.window.to_string(),
            "2026-01-01 00:00:00..2026-01-08 00:00:00"
        );
    }

    #[test]
    fn a_wrong_simulator_variable_is_named_with_what_it_takes() {
        let e = options(&[("CDPJOB_SIM_ORDER", "sideways")]).unwrap_err();
        assert!(
            e.starts_with("CDPJOB_SIM_ORDER:") && e.contains("asc, desc or shuffled"),
            "{e}"
        );
        let window = (
            "CDPJOB_SIM_SEED_WINDOW",
            "2026-01-01 00:00:00..2026-01-08 00:00:00",
        );
        let e = options(&[("CDPJOB_SIM_SEED_CUSTOMERS", "many"), window]).unwrap_err();
        assert!(e.starts_with("CDPJOB_SIM_SEED_CUSTOMERS:"), "{e}");
        let e = options(&[("CDPJOB_SIM_SEED_CUSTOMERS", "0"), window]).unwrap_err();
        assert!(e.starts_with("CDPJOB_SIM_SEED_CUSTOMERS:"), "{e}");
        let e = options(&[
            ("CDPJOB_SIM_SEED_CUSTOMERS", "10"),
            ("CDPJOB_SIM_SEED_WINDOW", "yesterday..today"),
        ])
        .unwrap_err();
        assert!(
            e.starts_with("CDPJOB_SIM_SEED_WINDOW:") && e.contains("yyyy-MM-dd HH:mm:ss"),
            "{e}"
        );
        let e = options(&[("CDPJOB_SIM_SEED_CUSTOMERS", "10")]).unwrap_err();
        assert!(e.contains("without CDPJOB_SIM_SEED_WINDOW"), "{e}");
        let e = options(&[window]).unwrap_err();
        assert!(e.contains("without CDPJOB_SIM_SEED_CUSTOMERS"), "{e}");
    }
}
