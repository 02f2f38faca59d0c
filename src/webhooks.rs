//! Standard Webhooks, both ways: verifying deliveries from configured
//! sources (HMAC-SHA256 over `id.timestamp.body`, `whsec_` secrets, several
//! per source for rotation, 5 minutes of tolerance both ways, constant-time
//! comparison), and signing the daemon's own deliveries to subscribers.

use std::collections::HashMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use serde::{Deserialize, Serialize};

pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A source allowed to call `POST /v1/webhooks/{source}` (config
/// `[[webhooks.sources]]`), with one or more secrets for rotation.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    pub name: String,
    pub secrets: Vec<String>,
}

/// Webhook ids are remembered this long: longer than senders retry.
pub const SEEN_KEEP_DAYS: i64 = 7;
pub const BODY_MAX_BYTES: usize = 256 * 1024;
/// Signatures examined per delivery (a header may list several).
const SIGNATURES_MAX: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// Decodes a `whsec_<base64>` secret. The error never contains the secret.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("a secret must start with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "a secret must be whsec_ followed by base64".to_string())?;
    if key.len() < 16 {
        return Err("a secret must hold at least 16 bytes".into());
    }
    Ok(key)
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` value for a delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UnknownSource,
    MissingHeader(&'static str),
    BadTimestamp,
    Stale,
    Future,
    BadSignature,
}

impl Rejection {
    /// Said to the sender: enough to fix their side, nothing about secrets.
    pub fn detail(self) -> String {
        match self {
            Rejection::UnknownSource => "no webhook source of that name is configured".into(),
            Rejection::MissingHeader(h) => format!("the {h} header is missing"),
            Rejection::BadTimestamp => "webhook-timestamp must be Unix seconds".into(),
            Rejection::Stale => {
                format!("webhook-timestamp is more than {TOLERANCE_SECS} s in the past")
            }
            Rejection::Future => {
                format!("webhook-timestamp is more than {TOLERANCE_SECS} s in the future")
            }
            Rejection::BadSignature => {
                "no signature matches the body with any secret of this source".into()
            }
        }
    }
}

pub struct Verifier {
    sources: HashMap<String, Vec<Vec<u8>>>,
}

impl Verifier {
    pub fn from_config(sources: &[WebhookSource]) -> anyhow::Result<Verifier> {
        let mut map = HashMap::new();
        for s in sources {
            let keys = s
                .secrets
                .iter()
                .enumerate()
                .map(|(i, secret)| {
                    decode_secret(secret).map_err(|e| {
                        anyhow::anyhow!("webhook source {:?}, secret #{}: {e}", s.name, i + 1)
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(
                map.insert(s.name.clone(), keys).is_none(),
                "webhook source {:?} is configured twice",
                s.name
            );
        }
        Ok(Verifier { sources: map })
    }

    /// Checks a delivery before anything parses its body.
    pub fn verify(
        &self,
        source: &str,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), Rejection> {
        let keys = self.sources.get(source).ok_or(Rejection::UnknownSource)?;
        let id = id
            .filter(|v| !v.is_empty())
            .ok_or(Rejection::MissingHeader("webhook-id"))?;
        let ts_text = timestamp.ok_or(Rejection::MissingHeader("webhook-timestamp"))?;
        let signature = signature.ok_or(Rejection::MissingHeader("webhook-signature"))?;
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| Rejection::BadTimestamp)?;
        if ts < now - TOLERANCE_SECS {
            return Err(Rejection::Stale);
        }
        if ts > now + TOLERANCE_SECS {
            return Err(Rejection::Future);
        }
        for candidate in signature.split(' ').take(SIGNATURES_MAX) {
            let Some(("v1", b64)) = candidate.split_once(',') else {
                continue;
            };
            let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            for key in keys {
                // verify_slice compares in constant time and fails on a
                // wrong length, so `v1,` (empty) never matches.
                if mac(key, id, ts_text.trim(), body)
                    .verify_slice(&tag)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(Rejection::BadSignature)
    }
}

/// How often received webhook ids past [`SEEN_KEEP_DAYS`] are forgotten.
pub const SEEN_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Forgets received webhook ids older than [`SEEN_KEEP_DAYS`], every
/// [`SEEN_PRUNE_EVERY`]: senders retry for a few days, ids are kept longer.
pub async fn prune_seen_loop(store: crate::store::Store, writer: crate::store::writer::Writer) {
    crate::store::writer::prune_every(
        SEEN_PRUNE_EVERY,
        "received webhook ids",
        store,
        writer,
        |store: &crate::store::Store, max| {
            store.expired_webhook_ids(
                chrono::Utc::now() - chrono::Duration::days(SEEN_KEEP_DAYS),
                max,
            )
        },
        |_| {},
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_rotation_and_refuses_the_rest() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let new = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let v = Verifier::from_config(&[WebhookSource {
            name: "crm".into(),
            secrets: vec![old.into(), new.into()],
        }])
        .unwrap();
        let now = 1_700_000_000;
        for secret in [old, new] {
            let sig = sign(&decode_secret(secret).unwrap(), "msg_1", now, b"{}");
            assert_eq!(
                v.verify(
                    "crm",
                    Some("msg_1"),
                    Some(&now.to_string()),
                    Some(&sig),
                    b"{}",
                    now
                ),
                Ok(())
            );
            assert_eq!(
                v.verify(
                    "crm",
                    Some("msg_2"),
                    Some(&now.to_string()),
                    Some(&sig),
                    b"{}",
                    now
                ),
                Err(Rejection::BadSignature)
            );
            assert_eq!(
                v.verify(
                    "crm",
                    Some("msg_1"),
                    Some(&now.to_string()),
                    Some(&sig),
                    b"{ }",
                    now
                ),
                Err(Rejection::BadSignature)
            );
        }
        let ts = now.to_string();
        assert_eq!(
            v.verify("crm", Some("m"), Some(&ts), Some("v1,"), b"{}", now),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            v.verify("nope", Some("m"), Some(&ts), Some("v1,"), b"{}", now),
            Err(Rejection::UnknownSource)
        );
        assert_eq!(
            v.verify(
                "crm",
                Some("m"),
                Some(&(now - 301).to_string()),
                Some("v1,x"),
                b"{}",
                now
            ),
            Err(Rejection::Stale)
        );
        assert_eq!(
            v.verify(
                "crm",
                Some("m"),
                Some(&(now + 301).to_string()),
                Some("v1,x"),
                b"{}",
                now
            ),
            Err(Rejection::Future)
        );
        assert!(decode_secret("MfKQ9r8G").is_err());
    }
}
