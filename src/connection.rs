//! From a job's `api` block to a working client: credentials from the environment, the
//! job's retry and concurrency settings, and for `base_url: sim` an in-process simulator
//! with built-in credentials whose state lives under the run root, so that an export after
//! an import sees what was imported.

use std::time::Duration;

use crate::api::client::{Client, ClientConfig};
use crate::error::{Again, Error};
use crate::job::Job;
use crate::secret::Secret;
use crate::sim::{SIM_ACCESS_KEY, SIM_SECRET, Sim, SimConfig};

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

/// Connect a job to its API (starting the in-process simulator for `base_url: sim`).
/// A missing credential or an unusable run root is the environment's fault (exit 2); a
/// simulator state held by another process is passing (exit 3: try again, or resume).
pub async fn connect(job: &Job) -> crate::error::Result<Connection> {
    let api = &job.spec.api;
    let is_sim = api.base_url == "sim";
    let (access_key, secret) = credentials(job, is_sim).map_err(Error::Environment)?;
    let sim = if is_sim {
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
    cfg.concurrency = api.concurrency;
    cfg.requests_per_second = api.requests_per_second;
    let client = Client::new(cfg)?;
    Ok(Connection { client, sim })
}
