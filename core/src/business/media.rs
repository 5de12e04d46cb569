//! What Meta's Cloud API says about media: which MIME types it sends as which message type
//! and how large, and whether a downloaded file matches the digest Meta gave. Files at rest
//! are [`crate::media_store`]'s, shared with Lite.

use crate::digest::{sha256, sha256_hex};
use crate::media_store::MAX_MEDIA_BYTES;

/// The message type a MIME type is sent as, and its limit (Meta's Cloud API documentation, capped at
/// 16 MB). None: WhatsApp does not take this type.
pub fn kind_of(mime: &str) -> Option<(&'static str, usize)> {
    const MB: usize = 1024 * 1024;
    let base = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match base.as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => {
            ("audio", MAX_MEDIA_BYTES)
        }
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", MAX_MEDIA_BYTES)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", MAX_MEDIA_BYTES),
        _ => return None,
    })
}

/// Whether a downloaded file matches a digest Meta gave: hex (media URL lookup) or base64
/// (webhooks). Digests that are neither 32-byte form are not checkable and pass.
pub fn digest_matches(data: &[u8], expected: &str) -> bool {
    use base64::Engine;
    let actual = sha256(data);
    let e = expected.trim();
    if e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()) {
        return sha256_hex(data).eq_ignore_ascii_case(e);
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(raw) = engine.decode(e)
            && raw.len() == 32
        {
            return raw == actual;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_both_forms() {
        use base64::Engine;
        let data = b"hello";
        let hex = sha256_hex(data);
        let raw = sha256(data);
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(digest_matches(data, &hex));
        assert!(digest_matches(data, &b64));
        assert!(!digest_matches(b"other", &hex));
        assert!(!digest_matches(b"other", &b64));
        assert!(
            digest_matches(data, "4654+8g="),
            "not a full digest: not checkable"
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of("image/jpeg").map(|k| k.0), Some("image"));
        assert_eq!(
            kind_of("audio/ogg; codecs=opus").map(|k| k.0),
            Some("audio")
        );
        assert!(kind_of("application/x-msdownload").is_none());
    }
}
