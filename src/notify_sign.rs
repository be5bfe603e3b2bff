//! `notify.sign`: the signatures DingTalk's and Feishu's custom bots check when their
//! security setting is "加签" (sign) — a bot with it refuses a message without one. Both
//! are an HMAC-SHA256 over the time and the bot's secret, in base64; DingTalk takes it in
//! the URL's query (the time in milliseconds), Feishu in the JSON body (in seconds). The
//! secret is read from the environment, like the URL, and never written anywhere.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Whose signature a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signer {
    Dingtalk,
    Feishu,
}

/// A request as signed: where it goes and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub url: String,
    pub body: String,
}

impl Signer {
    /// Sign a POST of `body` to `url` at `now_ms` (milliseconds since the epoch) with the
    /// bot's `secret`. Feishu's signature goes into the body, which must be a JSON object.
    pub fn sign(
        self,
        url: &str,
        body: String,
        secret: &str,
        now_ms: i64,
    ) -> Result<Signed, String> {
        match self {
            Signer::Dingtalk => {
                let sign = dingtalk_sign(now_ms, secret);
                let sep = if url.contains('?') { '&' } else { '?' };
                Ok(Signed {
                    url: format!("{url}{sep}timestamp={now_ms}&sign={}", url_encode(&sign)),
                    body,
                })
            }
            Signer::Feishu => {
                let secs = now_ms.div_euclid(1000);
                let mut doc: Value = serde_json::from_str(&body).map_err(|_| {
                    "feishu signing puts `timestamp` and `sign` into the body, which must be a JSON object".to_string()
                })?;
                let Some(object) = doc.as_object_mut() else {
                    return Err("feishu signing puts `timestamp` and `sign` into the body, which must be a JSON object".into());
                };
                object.insert("timestamp".into(), Value::String(secs.to_string()));
                object.insert("sign".into(), Value::String(feishu_sign(secs, secret)));
                Ok(Signed {
                    url: url.to_string(),
                    body: doc.to_string(),
                })
            }
        }
    }
}

/// DingTalk: base64(HMAC-SHA256(key = secret, message = "<ms>\n<secret>")).
fn dingtalk_sign(now_ms: i64, secret: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{now_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu: base64(HMAC-SHA256(key = "<s>\n<secret>", message = empty)).
fn feishu_sign(now_s: i64, secret: &str) -> String {
    let mac = HmacSha256::new_from_slice(format!("{now_s}\n{secret}").as_bytes())
        .expect("HMAC takes any key");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Percent-encoding of a query value (base64's `+`, `/` and `=` among others).
fn url_encode(text: &str) -> String {
    text.bytes()
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

    // The vectors were computed with Python's hmac and base64 modules (the reference the
    // bots' own documentation uses), for the secret "SECtest123".
    #[test]
    fn dingtalk_signs_the_time_in_milliseconds_in_the_query() {
        assert_eq!(
            dingtalk_sign(1_700_000_000_000, "SECtest123"),
            "w3RMHXzixTMdzr8OHJUmVLS4IoPJVdu+Ut1LE48MePE="
        );
        let s = Signer::Dingtalk
            .sign(
                "https://oapi.dingtalk.com/robot/send?access_token=T",
                "{}".into(),
                "SECtest123",
                1_700_000_000_000,
            )
            .unwrap();
        assert_eq!(
            s.url,
            "https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1700000000000&sign=w3RMHXzixTMdzr8OHJUmVLS4IoPJVdu%2BUt1LE48MePE%3D"
        );
        assert_eq!(s.body, "{}");
    }

    #[test]
    fn feishu_signs_the_time_in_seconds_in_the_body() {
        assert_eq!(
            feishu_sign(1_700_000_000, "SECtest123"),
            "eHRRCyLH7Z4IJQSJlfwertHZThRUYVu2hTUH02xPXYU="
        );
        let s = Signer::Feishu
            .sign(
                "https://open.feishu.cn/open-apis/bot/v2/hook/X",
                r#"{"msg_type":"text","content":{"text":"hi"}}"#.into(),
                "SECtest123",
                1_700_000_000_123,
            )
            .unwrap();
        let body: Value = serde_json::from_str(&s.body).unwrap();
        assert_eq!(body["timestamp"], "1700000000");
        assert_eq!(body["sign"], "eHRRCyLH7Z4IJQSJlfwertHZThRUYVu2hTUH02xPXYU=");
        assert_eq!(body["content"]["text"], "hi");
        assert_eq!(s.url, "https://open.feishu.cn/open-apis/bot/v2/hook/X");
        assert!(
            Signer::Feishu
                .sign("u", "not json".into(), "k", 0)
                .unwrap_err()
                .contains("JSON object")
        );
    }
}
