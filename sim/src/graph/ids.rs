//! Identifiers and secrets the simulator makes up, shaped like Meta's so code that parses or
//! stores them meets realistic values: numeric object ids, `wamid.` message ids (base64 of a
//! protobuf-like blob that embeds the recipient, as real ones do), `EAA...` tokens.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngExt;

/// A numeric id of `digits` digits (no leading zero), as Meta uses for numbers, WABAs, media.
pub fn numeric_id(digits: usize) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(digits);
    s.push(char::from(b'1' + rng.random_range(0..9u8)));
    for _ in 1..digits {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

/// A unique message id: `wamid.` + base64 of a blob embedding the contact's wa_id and 20 random
/// upper-case hex characters (so ids never collide).
pub fn wamid(wa_id: &str) -> String {
    let mut rng = rand::rng();
    let mut blob = vec![0x1c, 0x18, wa_id.len() as u8];
    blob.extend_from_slice(wa_id.as_bytes());
    blob.extend_from_slice(&[0x15, 0x02, 0x00, 0x12, 0x18, 0x14]);
    for _ in 0..20 {
        blob.push(b"0123456789ABCDEF"[rng.random_range(0..16usize)]);
    }
    blob.push(0x00);
    format!("wamid.{}", STANDARD.encode(blob))
}

/// Random bytes encoded as lower-case hex.
pub fn hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// Random bytes encoded as URL-safe base64.
pub fn token(bytes: usize) -> String {
    let mut rng = rand::rng();
    let buf: Vec<u8> = (0..bytes).map(|_| rng.random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(buf)
}

/// A system-user-like access token.
pub fn access_token() -> String {
    let t: String = token(60)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("EAAG{t}")
}

/// The `fbtrace_id` every Graph error carries.
pub fn fbtrace_id() -> String {
    token(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_are_unique_and_prefixed() {
        let a = wamid("15551230001");
        let b = wamid("15551230001");
        assert!(a.starts_with("wamid.HBg"));
        assert_ne!(a, b);
    }

    #[test]
    fn numeric_ids_have_the_asked_length() {
        let id = numeric_id(15);
        assert_eq!(id.len(), 15);
        assert!(id.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(&id[..1], "0");
    }
}
