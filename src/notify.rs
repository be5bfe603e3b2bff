//! `notify:` — one webhook POST when a run ends (SPEC §10, R20), so a chat hears of a
//! scheduled run nobody watched. The URL is a secret (whoever has it can post to the
//! channel): it is read from the environment variable the job names, and never appears in
//! the job, the run directory, a message or an error. A notification that fails is a
//! warning: it never changes how the run ended.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::notify_sign::Signer;

/// `notify:` in a job file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// The environment variable holding the webhook's URL.
    pub url_env: String,
    /// The ends that notify.
    #[serde(default = "every_end")]
    pub on: Vec<RunEnd>,
    /// A minijinja template of the body over `summary`, `event` and `job`; none: the JSON
    /// summary itself.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// A DingTalk or Feishu bot's signature (their "加签" security setting).
    #[serde(default)]
    pub sign: Option<Signer>,
    /// The environment variable holding the bot's signing secret (with `sign`).
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// How a run ended, as `notify.on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEnd {
    /// Exit 0: every row done.
    Finished,
    /// Exit 1: the run finished, some rows were rejected or failed.
    Failed,
    /// Exit 3 or 4: stopped early (a signal, the API, a guard); resumable.
    Stopped,
}

impl RunEnd {
    /// R20: exit 0 → finished, 1 → failed, 3 or 4 → stopped; 2 (the job, the arguments or
    /// a run no resume mends) → none.
    pub fn of_exit_code(code: u8) -> Option<RunEnd> {
        match code {
            0 => Some(RunEnd::Finished),
            1 => Some(RunEnd::Failed),
            3 | 4 => Some(RunEnd::Stopped),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Finished => "finished",
            RunEnd::Failed => "failed",
            RunEnd::Stopped => "stopped",
        }
    }
}

fn every_end() -> Vec<RunEnd> {
    vec![RunEnd::Finished, RunEnd::Failed, RunEnd::Stopped]
}

/// R20's timeout: a chat that does not answer in 5 s does not hold up the run's exit.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// Whether a body template compiles (`validate`): the message of its error, if not.
pub fn check_body(body: &str) -> Result<(), String> {
    crate::template::environment()
        .template_from_str(body)
        .map(|_| ())
        .map_err(|e| crate::template::describe_error(&e))
}

/// The body of the notification of `end`: the template rendered, or the summary as JSON.
fn render(spec: &NotifySpec, job: &str, end: RunEnd, summary: &Value) -> Result<String, String> {
    let Some(body) = &spec.body else {
        return Ok(serde_json::to_string(summary).expect("a JSON value serializes"));
    };
    let env = crate::template::environment();
    let template = env
        .template_from_str(body)
        .map_err(|e| crate::template::describe_error(&e))?;
    template
        .render(minijinja::context! {
            summary => minijinja::Value::from(minijinja::value::Serde(summary)),
            event => end.as_str(),
            job => job,
        })
        .map_err(|e| crate::template::describe_error(&e))
}

/// Notify the end of a run that exited with `exit_code`, when `spec` asks for that end.
/// Whatever goes wrong is a warning on stderr that names the variable, never its URL.
pub async fn run_ended(spec: &NotifySpec, job: &str, exit_code: u8, summary: &Value) {
    let Some(end) = RunEnd::of_exit_code(exit_code) else {
        return;
    };
    if !spec.on.contains(&end) {
        return;
    }
    let warn = |why: &str| {
        eprintln!(
            "warning: the {} notification (${}) was not delivered: {why}",
            end.as_str(),
            spec.url_env
        );
    };
    let url = match std::env::var(&spec.url_env) {
        Ok(u) if !u.is_empty() => u,
        _ => return warn("the variable is not set"),
    };
    let body = match render(spec, job, end, summary) {
        Ok(b) => b,
        Err(e) => return warn(&format!("its body does not render: {e}")),
    };
    let (target, body) = match signed(spec, &url, body) {
        Ok(request) => request,
        Err(why) => return warn(&why),
    };
    if let Err(why) = post(&target, body, Duration::from_secs(spec.timeout_secs)).await {
        // reqwest's errors are stripped of their URL; this is for any text that still
        // quotes it (a redirect's target, a source error).
        warn(
            &why.replace(&target, "<the webhook URL>")
                .replace(&url, "<the webhook URL>"),
        );
    }
}

/// The URL and body to POST: as they are, or signed as `spec.sign` asks, with the secret
/// `spec.secret_env` names.
fn signed(spec: &NotifySpec, url: &str, body: String) -> Result<(String, String), String> {
    let Some(signer) = spec.sign else {
        return Ok((url.to_string(), body));
    };
    let name = spec.secret_env.as_deref().unwrap_or_default();
    let secret = match std::env::var(name) {
        Ok(s) if !s.is_empty() => s,
        _ => return Err(format!("its signing secret (${name}) is not set")),
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let s = signer.sign(url, body, &secret, now_ms)?;
    Ok((s.url, s.body))
}

async fn post(url: &str, body: String, timeout: Duration) -> Result<(), String> {
    crate::api::client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| describe(e, timeout))?;
    let resp = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| describe(e, timeout))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered HTTP {status}"))
    }
}

/// A reqwest error in one line, without the URL it carries.
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        "the URL is not usable"
    } else {
        "transport error"
    };
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: Option<&str>) -> NotifySpec {
        NotifySpec {
            url_env: "HOOK".into(),
            on: every_end(),
            body: body.map(String::from),
            timeout_secs: 5,
            sign: None,
            secret_env: None,
        }
    }

    #[test]
    fn exit_codes_map_to_ends_as_r20_says() {
        let ends: Vec<_> = (0..=4).map(RunEnd::of_exit_code).collect();
        assert_eq!(
            ends,
            [
                Some(RunEnd::Finished),
                Some(RunEnd::Failed),
                None,
                Some(RunEnd::Stopped),
                Some(RunEnd::Stopped)
            ]
        );
    }

    #[test]
    fn the_body_is_the_template_over_the_summary_or_the_summary_itself() {
        let summary = serde_json::json!({"status": "finished", "counts": {"created": 3}});
        let text = render(&spec(None), "j", RunEnd::Finished, &summary).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), summary);
        let slack = r#"{"text": {{ (job ~ ": " ~ event ~ ", " ~ summary.counts.created ~ " created") | tojson }}}"#;
        let text = render(&spec(Some(slack)), "j", RunEnd::Failed, &summary).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::json!({"text": "j: failed, 3 created"})
        );
        assert!(check_body("{{ summary.").is_err());
        assert!(check_body(slack).is_ok());
    }
}
