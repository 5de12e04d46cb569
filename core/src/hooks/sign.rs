//! Secrets, signatures and delivery ids of event webhooks.
//!
//! A secret is `whsec_` and 32 random bytes in base64url; its whole text is the HMAC key.
//! Every delivery carries `X-Sincro-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`; while a rotated-out secret is still valid, a second `v1=` signed with it
//! follows, so a receiver holding either secret verifies (it accepts when any `v1` matches)
//! and can refuse a `t` too far from its clock (replays). The delivery id
//! (`X-Sincro-Delivery`) is derived from the endpoint, its replay generation and the seq, so a
//! delivery repeated after a crash carries the same id and a receiver can drop the repeat.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random signing secret.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn hmac_hex(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::digest::hex(&mac.finalize().into_bytes())
}

/// The `X-Sincro-Signature` value: the timestamp, then one `v1=` per valid secret (the
/// current one first).
pub fn signature_header(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&hmac_hex(secret, t, body));
    }
    out
}

/// Whether `header` holds a valid signature of `body` under `secret` made within
/// `tolerance_secs` of `now` (what a receiver does; used by the tests and the benchmark).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => tags.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = hmac_hex(secret, t, body);
    tags.iter()
        .any(|tag| constant_time_eq(tag.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The delivery id of event `seq` to endpoint `webhook_id` in replay generation
/// `generation`: the same for every attempt of that delivery, on every node.
pub fn delivery_id(webhook_id: Uuid, generation: i32, seq: i64) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(webhook_id.as_bytes());
    hash.update(generation.to_be_bytes());
    hash.update(seq.to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_every_secret_and_verifies() {
        let (new, old) = (new_secret(), new_secret());
        assert!(new.starts_with(SECRET_PREFIX) && new.len() > 40);
        let body = br#"{"seq":1}"#;
        let header = signature_header(&[&new, &old], 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.matches("v1=").count(), 2);
        assert!(verify(&new, &header, body, 1_700_000_010, 300));
        assert!(verify(&old, &header, body, 1_700_000_010, 300));
        assert!(!verify(&new_secret(), &header, body, 1_700_000_010, 300));
        assert!(!verify(&new, &header, b"{}", 1_700_000_010, 300));
        // A replay long after the timestamp is refused.
        assert!(!verify(&new, &header, body, 1_700_009_999, 300));
    }

    #[test]
    fn delivery_ids_are_stable_per_seq_and_generation() {
        let w = Uuid::new_v4();
        assert_eq!(delivery_id(w, 0, 7), delivery_id(w, 0, 7));
        assert_ne!(delivery_id(w, 0, 7), delivery_id(w, 0, 8));
        assert_ne!(delivery_id(w, 0, 7), delivery_id(w, 1, 7));
    }
}
