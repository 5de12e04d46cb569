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

/// Why an uploaded file was refused before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "{0} cannot be sent on WhatsApp (images: JPEG/PNG; audio, video, documents, WebP stickers)"
    )]
    UnsupportedType(String),
    #[error("the file is empty")]
    Empty,
    #[error("a {kind} ({mime}) may be at most {max} bytes; this one has {size}")]
    TooLarge {
        kind: &'static str,
        mime: String,
        max: usize,
        size: usize,
    },
    #[error("filename is a plain file name of at most 255 characters")]
    InvalidFilename,
}

/// Checks an upload as WhatsApp will: a type it takes, within that type's limit, not empty,
/// and a plain file name.
pub fn check_upload(mime: &str, size: usize, filename: Option<&str>) -> Result<(), UploadError> {
    let (kind, max) = kind_of(mime).ok_or_else(|| UploadError::UnsupportedType(mime.into()))?;
    if size == 0 {
        return Err(UploadError::Empty);
    }
    if size > max {
        return Err(UploadError::TooLarge {
            kind,
            mime: mime.into(),
            max,
            size,
        });
    }
    if let Some(f) = filename
        && (f.is_empty()
            || f.len() > 255
            || f.chars().any(|c| c.is_control() || c == '/' || c == '\\'))
    {
        return Err(UploadError::InvalidFilename);
    }
    Ok(())
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

    #[test]
    fn uploads_are_checked_as_whatsapp_checks_them() {
        assert_eq!(check_upload("image/png", 10, Some("a.png")), Ok(()));
        let refused = [
            (
                "image/gif",
                10,
                None,
                "image/gif cannot be sent on WhatsApp",
            ),
            ("image/png", 0, None, "the file is empty"),
            (
                "image/png",
                5 * 1024 * 1024 + 1,
                None,
                "a image (image/png) may be at most",
            ),
            (
                "image/png",
                10,
                Some("a/b.png"),
                "filename is a plain file name",
            ),
            ("image/png", 10, Some(""), "filename is a plain file name"),
        ];
        for (mime, size, name, start) in refused {
            let e = check_upload(mime, size, name).expect_err(mime);
            assert!(e.to_string().starts_with(start), "{e}");
        }
    }
}
