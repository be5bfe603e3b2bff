//! The CDP API client: serialize once, sign those bytes, send those bytes; a fresh `ts` on
//! every attempt; one retry policy for everything retryable.
//!
//! Retried (exponential backoff with jitter, capped, `max_retries` times): transport errors,
//! timeouts, HTTP 5xx, HTTP 429 (its `Retry-After` honoured, in seconds or as an HTTP date)
//! and code 1004 (re-signed with a fresh `ts`; when it repeats, the clock offset is
//! estimated from the server's `Date` header and applied). Final: 1001, 1002, 1003, 1005 and
//! any code we do not know; each surfaces as an error saying what to check. Business codes
//! of batch_create (12148) are answers, returned to the caller.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::payload::PayloadHash;
use super::sign::{self, ACTION, BIZ_TYPE, SignAlgorithm, SignedHeaders};
use super::wire::{
    BATCH_CREATE_PATH, BatchCreateRequest, BatchCreateResult, Envelope, FIELDS_PATH, FieldDef,
    QUERY_PATH, QueryResult,
};
use crate::secret::Secret;

/// The code batch_create answers when an assigned agent does not exist.
pub const CODE_AGENT_MISSING: i64 = 12148;
pub const CODE_TS_EXPIRED: i64 = 1004;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub access_key: String,
    pub secret: Secret,
    pub algorithm: SignAlgorithm,
    pub timeout: Duration,
    pub max_retries: u32,
    pub concurrency: usize,
    pub requests_per_second: Option<f64>,
    /// First backoff delay and its cap.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, access_key: impl Into<String>, secret: Secret) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            access_key: access_key.into(),
            secret,
            algorithm: SignAlgorithm::Md5,
            timeout: Duration::from_secs(30),
            max_retries: 5,
            concurrency: 4,
            requests_per_second: None,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
        }
    }
}

/// An error the caller must act on. Messages never contain the secret or a full signature.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// The API answered with a code that retrying cannot fix.
    #[error("the API refused the request: code {code}: {message}; {hint}")]
    Refused {
        code: i64,
        message: String,
        hint: String,
    },
    /// Every attempt failed with something retryable.
    #[error(
        "gave up after {attempts} attempt{}; the last one failed with: {last}",
        if *.attempts == 1 { "" } else { "s" }
    )]
    Exhausted { attempts: u32, last: String },
    /// A local problem: the base URL, the client setup.
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    /// The message for a run this error stopped: what to do, then how to continue.
    pub fn advice_for_a_run(&self) -> String {
        match self {
            ApiError::Refused { .. } => format!("{self}; fix it, then `cdpjob resume` the run"),
            ApiError::Exhausted { .. } => {
                format!("{self}; `cdpjob resume` the run when the API is reachable")
            }
            ApiError::Config(_) => self.to_string(),
        }
    }

    fn refused(code: i64, message: Option<String>) -> ApiError {
        let hint = match code {
            1001 => "a required header is missing: this is a bug in cdpjob, please report it",
            1002 => "a parameter is wrong: check tenant_id, app_key and the records sent",
            1003 => {
                "signature rejected: check the secret in the access_secret_env variable (by default $NXCLOUD_ACCESS_SECRET), and that nothing rewrites the body"
            }
            1005 => {
                "permission denied: check the access key in the access_key_env variable (by default $NXCLOUD_ACCESS_KEY) and that it may use this tenant"
            }
            _ => "an unknown code: check the vendor's documentation",
        };
        ApiError::Refused {
            code,
            message: message.unwrap_or_default(),
            hint: hint.to_string(),
        }
    }
}

/// How long a signature made ahead ([`Client::sign_ahead`]) is used: far inside the API's
/// ±60 s window for `ts`.
pub const SIGNED_AHEAD_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// A request body, and the signature of its first attempt when it was signed ahead.
#[derive(Debug, Clone)]
pub struct Signed {
    body: bytes::Bytes,
    first: Option<SignedAhead>,
}

/// The `ts` and `sign` headers of a first attempt, and when they were made.
#[derive(Debug, Clone)]
struct SignedAhead {
    ts: String,
    signature: String,
    made: std::time::Instant,
}

/// A successful exchange: the envelope's code (0, or a business code such as 12148), its
/// message and data, and how many attempts it took.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub code: i64,
    pub message: Option<String>,
    pub data: Option<T>,
    pub attempts: u32,
}

/// What went wrong with one attempt, and whether another may help.
#[derive(Debug, Clone)]
enum AttemptError {
    Transport(String),
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    Expired {
        offset_ms: Option<i64>,
    },
    Final(ApiError),
}

impl AttemptError {
    fn retryable(&self) -> bool {
        !matches!(self, AttemptError::Final(_))
    }

    fn describe(&self) -> String {
        match self {
            AttemptError::Transport(e) => e.clone(),
            AttemptError::Http { status, .. } => format!("HTTP {status}"),
            AttemptError::Expired { offset_ms } => match offset_ms {
                Some(ms) if ms.abs() >= 1_000 => format!(
                    "code 1004 (timestamp expired): the local clock looks {:.0} s {} the server's (from its Date header)",
                    (*ms as f64 / 1000.0).abs(),
                    if *ms > 0 { "behind" } else { "ahead of" }
                ),
                _ => "code 1004 (timestamp expired)".to_string(),
            },
            AttemptError::Final(e) => e.to_string(),
        }
    }
}

/// One retry, as reported to an observer (for logs and the run journal).
#[derive(Debug, Clone)]
pub struct RetryNotice {
    pub path: &'static str,
    /// The hash of the body retried (none for a request without one): what ties the
    /// retry to the journal's intent for the same bytes.
    pub payload: Option<PayloadHash>,
    pub attempt: u32,
    pub reason: String,
    pub delay: Duration,
}

type RetryObserver = Arc<dyn Fn(&RetryNotice) + Send + Sync>;

/// Counters over the client's life.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
}

pub struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
    in_flight: Arc<Semaphore>,
    rate: Option<DefaultDirectRateLimiter>,
    /// Estimated server clock minus local clock, applied to `ts` once 1004 was seen.
    clock_offset_ms: AtomicI64,
    observer: Mutex<Option<RetryObserver>>,
    pub stats: ClientStats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.cfg.base_url)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let ms = when.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The longest `Retry-After` we wait for one attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Makes rustls's `ring` provider the process default, once. reqwest is built with
/// `rustls-no-provider` (so no aws-lc-rs, no cmake, no C build) and then panics when it
/// builds any client, even a plain-http one, unless a provider is installed. `Client::new`
/// calls this; code that builds a `reqwest::Client` of its own (tests) calls it first.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means another provider was installed first; reqwest uses that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ApiError> {
        super::check_base_url(&cfg.base_url).map_err(ApiError::Config)?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(cfg.concurrency.max(1))
            .user_agent(concat!("cdpjob/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))?;
        let rate = match cfg.requests_per_second {
            Some(rps) if rps > 0.0 => {
                let period = Duration::from_secs_f64(1.0 / rps);
                Quota::with_period(period).map(RateLimiter::direct)
            }
            _ => None,
        };
        Ok(Client {
            http,
            in_flight: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            rate,
            cfg,
            clock_offset_ms: AtomicI64::new(0),
            observer: Mutex::new(None),
            stats: ClientStats::default(),
        })
    }

    /// Be told of every retry (why, and how long until the next attempt).
    pub fn on_retry(&self, f: impl Fn(&RetryNotice) + Send + Sync + 'static) {
        *self.observer.lock().expect("observer lock") = Some(Arc::new(f));
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// POST batch_create for these customers.
    pub async fn batch_create(
        &self,
        request: &BatchCreateRequest<'_>,
    ) -> Result<Reply<BatchCreateResult>, ApiError> {
        let body = serde_json::to_vec(request).expect("a request serializes");
        self.call(reqwest::Method::POST, BATCH_CREATE_PATH, "", body)
            .await
    }

    /// POST query with a body (filters, paging) built by the caller.
    pub async fn query(&self, body: &serde_json::Value) -> Result<Reply<QueryResult>, ApiError> {
        let body = serde_json::to_vec(body).expect("a query serializes");
        self.call(reqwest::Method::POST, QUERY_PATH, "", body).await
    }

    /// GET the tenant's customer fields.
    pub async fn fields(
        &self,
        tenant_id: i64,
        app_key: &str,
        is_preset: Option<bool>,
    ) -> Result<Reply<Vec<FieldDef>>, ApiError> {
        let mut query = format!("?tenant_id={tenant_id}&app_key={}", urlencode(app_key));
        if let Some(p) = is_preset {
            query.push_str(&format!("&is_preset={p}"));
        }
        self.call(reqwest::Method::GET, FIELDS_PATH, &query, Vec::new())
            .await
    }

    /// Send `body` (already serialized: these are the bytes signed and sent on every
    /// attempt) and decode the envelope's data as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &'static str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<Reply<T>, ApiError> {
        let body = Signed {
            body: bytes::Bytes::from(body),
            first: None,
        };
        self.call_signed(method, path, query, body).await
    }

    /// `body` with the signature of its first attempt, made now: for a request that waits
    /// for a slot before it is sent, the hashing of its body (the MD5 of a 100-customer body
    /// is a tenth of a millisecond) is done while it waits, not between the answer that
    /// frees the slot and the next request.
    pub fn sign_ahead(&self, body: Vec<u8>) -> Signed {
        let body = bytes::Bytes::from(body);
        let first = Some(self.sign_now(&body));
        Signed { body, first }
    }

    /// [`Client::call`] of a body signed ahead ([`Client::sign_ahead`]): its first attempt
    /// goes with that signature when it is sent within [`SIGNED_AHEAD_FOR`]; a later one,
    /// and every retry, is signed when it is sent.
    pub async fn call_signed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &'static str,
        query: &str,
        signed: Signed,
    ) -> Result<Reply<T>, ApiError> {
        let Signed { body, first } = signed;
        let first = first.filter(|f| f.made.elapsed() < SIGNED_AHEAD_FOR);
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}{query}", self.cfg.base_url.trim_end_matches('/'));
        let attempts = AtomicU64::new(0);
        let last = Mutex::new(String::new());
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.cfg.min_backoff)
            .with_max_delay(self.cfg.max_backoff)
            .with_max_times(self.cfg.max_retries as usize)
            .with_jitter();
        let observer = self.observer.lock().expect("observer lock").clone();
        let result = (|| async {
            let n = attempts.fetch_add(1, Ordering::Relaxed) as u32 + 1;
            let signed = first.as_ref().filter(|_| n == 1);
            let r = self.attempt::<T>(&method, &url, &body, signed).await;
            if let Err(e) = &r {
                *last.lock().expect("lock") = e.describe();
            }
            r.map(|(code, message, data)| Reply {
                code,
                message,
                data,
                attempts: n,
            })
        })
        .retry(backoff)
        .when(AttemptError::retryable)
        .adjust(|e, delay| {
            // Retry-After replaces the computed delay, but never revives an exhausted budget.
            match (e, delay) {
                (
                    AttemptError::Http {
                        retry_after: Some(ra),
                        ..
                    },
                    Some(_),
                ) => Some((*ra).min(MAX_RETRY_AFTER)),
                (_, d) => d,
            }
        })
        .notify(|e, delay| {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            if let Some(obs) = &observer {
                obs(&RetryNotice {
                    path,
                    payload: (!body.is_empty()).then(|| PayloadHash::of(&body)),
                    attempt: attempts.load(Ordering::Relaxed) as u32,
                    reason: e.describe(),
                    delay,
                });
            }
        })
        .await;
        self.stats
            .attempts
            .fetch_add(attempts.load(Ordering::Relaxed), Ordering::Relaxed);
        match result {
            Ok(reply) => Ok(reply),
            Err(AttemptError::Final(e)) => Err(e),
            Err(_) => Err(ApiError::Exhausted {
                attempts: attempts.load(Ordering::Relaxed) as u32,
                last: last.into_inner().expect("lock"),
            }),
        }
    }

    /// The `ts` (the server's clock, as far as it is known) and `sign` headers of `body`
    /// sent now.
    fn sign_now(&self, body: &[u8]) -> SignedAhead {
        let ts = (now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)).to_string();
        let headers = SignedHeaders {
            access_key: &self.cfg.access_key,
            action: ACTION,
            biz_type: BIZ_TYPE,
            ts: &ts,
        };
        let signature = sign::sign(self.cfg.algorithm, &headers, body, &self.cfg.secret);
        SignedAhead {
            ts,
            signature,
            made: std::time::Instant::now(),
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &reqwest::Method,
        url: &str,
        body: &bytes::Bytes,
        signed: Option<&SignedAhead>,
    ) -> Result<(i64, Option<String>, Option<T>), AttemptError> {
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        let signed_now;
        let signed = match signed {
            Some(ahead) => ahead,
            None => {
                signed_now = self.sign_now(body);
                &signed_now
            }
        };
        let (ts, signature) = (signed.ts.as_str(), signed.signature.as_str());
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("accessKey", &self.cfg.access_key)
            .header("ts", ts)
            .header("bizType", BIZ_TYPE)
            .header("action", ACTION)
            .header("sign", signature);
        if self.cfg.algorithm == SignAlgorithm::Sha256 {
            req = req.header("algorithm", "sha256");
        }
        if !body.is_empty() {
            req = req
                .header("Content-Type", "application/json")
                .body(body.clone());
        }
        let sent_at = now_ms();
        let resp = req
            .send()
            .await
            .map_err(|e| AttemptError::Transport(transport(&e)))?;
        let status = resp.status();
        let server_date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| jiff::fmt::rfc2822::parse(v).ok())
            .map(|z| z.timestamp().as_millisecond());
        if status.as_u16() == 429 || status.is_server_error() {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
            return Err(AttemptError::Http {
                status: status.as_u16(),
                retry_after,
            });
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| AttemptError::Transport(transport(&e)))?;
        // A success, the usual answer, is parsed in one pass straight into `T`. Any other
        // answer (another code, whose data may have another shape, or not the envelope at
        // all) is parsed again below with its `data` kept raw until its code says what it is.
        if let Ok(Envelope {
            code: code @ (0 | CODE_AGENT_MISSING),
            message,
            data,
            ..
        }) = serde_json::from_slice::<Envelope<T>>(&bytes)
        {
            return Ok((code, message, data));
        }
        // `data` is parsed once, into `T`, not into a JSON value first.
        let envelope: Envelope<Box<serde_json::value::RawValue>> = serde_json::from_slice(&bytes)
            .map_err(|e| {
            if status.is_success() {
                AttemptError::Transport(format!("the answer is not the API's JSON envelope: {e}"))
            } else {
                AttemptError::Final(ApiError::Refused {
                    code: -i64::from(status.as_u16()),
                    message: format!("HTTP {status}"),
                    hint: "an HTTP error without the API's envelope: check base_url".into(),
                })
            }
        })?;
        match envelope.code {
            0 | CODE_AGENT_MISSING => {
                let data = match envelope.data {
                    None => None,
                    Some(v) => Some(serde_json::from_str(v.get()).map_err(|e| {
                        AttemptError::Transport(format!(
                            "the answer's data has an unexpected shape: {e}"
                        ))
                    })?),
                };
                Ok((envelope.code, envelope.message, data))
            }
            CODE_TS_EXPIRED => {
                // The Date header is truncated to the second (+500 ms centres it); the middle
                // of the round trip is the best guess of when the server stamped it.
                let offset = server_date.map(|d| d + 500 - (sent_at + now_ms()) / 2);
                if let Some(o) = offset
                    && o.abs() > 30_000
                {
                    self.clock_offset_ms.store(o, Ordering::Relaxed);
                }
                Err(AttemptError::Expired { offset_ms: offset })
            }
            code => Err(AttemptError::Final(ApiError::refused(
                code,
                envelope.message,
            ))),
        }
    }
}

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else {
        "transport error"
    };
    // reqwest's error text holds the URL but never headers, so no signature leaks here.
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 10:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn app_keys_are_url_encoded() {
        assert_eq!(urlencode("46oKF=os"), "46oKF%3Dos");
    }

    /// reqwest panics when it builds a client with no rustls provider installed: this
    /// fails if `Client::new` stopped installing ring.
    #[test]
    fn an_https_client_builds_with_the_ring_provider() {
        let cfg = ClientConfig::new("https://api.example.com", "key", Secret::new("secret"));
        Client::new(cfg).expect("an https client builds");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    /// A bare HTTP listener that reads one request and gives `answer` (with status 200):
    /// its URL, and its task, which returns the request's head (lowercased).
    async fn answering_once(answer: String) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as much body as it announces.
            let head = loop {
                let n = conn.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    break String::from_utf8_lossy(&seen[..end]).to_lowercase();
                }
            };
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            while seen.len() < head.len() + 4 + length {
                let n = conn.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            head
        });
        (url, server)
    }

    /// The `sign` header of the one request `signed` makes, answered with an empty success.
    async fn sign_header_sent(signed: Signed) -> String {
        let answer = r#"{"code":0,"message":null,"traceId":"t","data":null}"#;
        let (url, server) = answering_once(answer.to_string()).await;
        let client = Client::new(ClientConfig::new(url, "key", Secret::new("secret"))).unwrap();
        let reply = client
            .call_signed::<serde_json::Value>(reqwest::Method::POST, "/x", "", signed)
            .await
            .unwrap();
        assert_eq!(reply.code, 0);
        let head = server.await.unwrap();
        head.lines()
            .find_map(|l| l.strip_prefix("sign: ").map(str::to_string))
            .unwrap()
    }

    /// One attempt's reading of `answer`: a success's data in its type, an error code
    /// whatever its data holds, and a success whose data has another shape as an answer
    /// not understood.
    async fn attempt_answered(
        answer: &str,
    ) -> Result<(i64, Option<String>, Option<BatchCreateResult>), AttemptError> {
        let (url, server) = answering_once(answer.to_string()).await;
        let client = Client::new(ClientConfig::new(&url, "key", Secret::new("secret"))).unwrap();
        let body = bytes::Bytes::from_static(b"{}");
        let read = client
            .attempt::<BatchCreateResult>(&reqwest::Method::POST, &format!("{url}/x"), &body, None)
            .await;
        server.await.unwrap();
        read
    }

    #[tokio::test]
    async fn an_answer_is_read_by_its_code_then_its_data() {
        let success = r#"{"code":0,"message":"ok","traceId":"t","data":{"totalCount":1,"successCount":1,"failCount":0,"successItems":[{"index":0,"customerId":7,"whatsAppPhone":"86"}]}}"#;
        let (code, message, data) = attempt_answered(success).await.unwrap();
        assert_eq!((code, message.as_deref()), (0, Some("ok")));
        assert_eq!(data.unwrap().success_items[0].customer_id, 7);

        let agent_missing = format!(
            r#"{{"code":{CODE_AGENT_MISSING},"message":"no agent","data":{{"totalCount":1,"successCount":0,"failCount":1,"failItems":[{{"index":0,"errorCode":{CODE_AGENT_MISSING}}}]}}}}"#
        );
        let (code, _, data) = attempt_answered(&agent_missing).await.unwrap();
        assert_eq!(code, CODE_AGENT_MISSING);
        assert_eq!(data.unwrap().fail_items[0].index, 0);

        let no_data = r#"{"code":0,"data":null}"#;
        assert!(attempt_answered(no_data).await.unwrap().2.is_none());

        // An error code is the error, whatever shape its data has.
        let refused = r#"{"code":1003,"message":"sign error","data":{"why":["any shape"]}}"#;
        match attempt_answered(refused).await {
            Err(AttemptError::Final(e)) => assert!(e.to_string().contains("1003"), "{e}"),
            other => panic!("1003 is final: {other:?}"),
        }

        let other_shape = r#"{"code":0,"data":{"totalCount":"one"}}"#;
        match attempt_answered(other_shape).await {
            Err(AttemptError::Transport(m)) => assert!(m.contains("unexpected shape"), "{m}"),
            other => panic!("a success not understood: {other:?}"),
        }

        match attempt_answered("<html>busy</html>").await {
            Err(AttemptError::Transport(m)) => assert!(m.contains("not the API's JSON"), "{m}"),
            other => panic!("not the envelope: {other:?}"),
        }
    }

    /// The first attempt of a body signed ahead goes with that signature while it is fresh,
    /// and is signed again once it is not.
    #[tokio::test]
    async fn a_body_signed_ahead_goes_with_its_signature_only_while_it_is_fresh() {
        let client = Client::new(ClientConfig::new(
            "http://127.0.0.1:9",
            "key",
            Secret::new("secret"),
        ))
        .unwrap();
        let marked = |made: std::time::Instant| {
            let mut signed = client.sign_ahead(br#"{"a":1}"#.to_vec());
            let first = signed.first.as_mut().unwrap();
            first.signature = "0".repeat(32);
            first.made = made;
            signed
        };
        let fresh = sign_header_sent(marked(std::time::Instant::now())).await;
        assert_eq!(fresh, "0".repeat(32));
        let old = std::time::Instant::now()
            .checked_sub(SIGNED_AHEAD_FOR + Duration::from_secs(1))
            .unwrap();
        let stale = sign_header_sent(marked(old)).await;
        assert_ne!(stale, "0".repeat(32));
        assert_eq!(stale.len(), 32, "an md5 signature made when sent: {stale}");
    }

    #[test]
    fn errors_say_what_to_check() {
        let e = ApiError::refused(1003, Some("sign error".into()));
        assert!(e.to_string().contains("NXCLOUD_ACCESS_SECRET"), "{e}");
        assert!(e.to_string().contains("nothing rewrites the body"), "{e}");
    }
}
