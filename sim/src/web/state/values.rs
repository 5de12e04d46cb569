//! Small values the simulator makes: phone numbers in one form, clock readings, random ids,
//! QR refs and pairing codes, digests, media types and new accounts.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngExt;
use sha2::{Digest, Sha256};

use super::*;
use crate::web::error::SimError;

pub fn normalize_phone(raw: &str) -> Result<String, SimError> {
    let raw_user = raw.split('@').next().unwrap_or(raw);
    let digits: String = raw_user.chars().filter(char::is_ascii_digit).collect();
    let junk = raw_user
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)));
    if junk || !(5..=20).contains(&digits.len()) {
        return Err(SimError::InvalidPhone(raw.to_string()));
    }
    Ok(digits)
}

pub(super) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02X}", rng.random::<u8>()))
        .collect()
}

pub(super) fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    B64.encode(buf)
}

pub(super) fn new_ref() -> String {
    format!("2@{}", random_b64(48))
}

pub(super) fn new_pairing_code() -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Its own copy, not the daemon's `sincro_core::digest`: the simulator checks the daemon
/// independently.
pub(super) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn sha256_b64(data: &[u8]) -> String {
    B64.encode(Sha256::digest(data).as_slice())
}

/// WhatsApp message type for an inbound file.
pub(super) fn media_type(mimetype: &str) -> &'static str {
    let m = mimetype.to_ascii_lowercase();
    if m == "image/webp" {
        "sticker"
    } else if m.starts_with("image/") {
        "image"
    } else if m.starts_with("video/") {
        "video"
    } else if m.starts_with("audio/ogg") {
        "ptt"
    } else if m.starts_with("audio/") {
        "audio"
    } else {
        "document"
    }
}

pub(super) fn qr_string(r: &str, keys: &Keys, platform: &str) -> String {
    format!(
        "{r},{},{},{},{platform}",
        keys.noise, keys.identity, keys.adv
    )
}

pub(super) fn new_account() -> Account {
    let mut rng = rand::rng();
    Account {
        lid: format!(
            "{}",
            rng.random_range(100_000_000_000_000u64..999_999_999_999_999)
        ),
        name: None,
        devices: BTreeSet::new(),
        sent: Vec::new(),
        seen: Vec::new(),
    }
}

pub(super) fn incoming_id() -> String {
    format!("3A{}", random_hex(9))
}
