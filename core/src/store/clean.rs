//! Text the store keeps in clear, made storable. PostgreSQL refuses U+0000 in `text` and
//! `\u0000` in `jsonb` (the whole statement fails, and with it a whole ingest batch), and a
//! contact controls much of what is stored: names, message types, file names, details. Every
//! writer of contact-controlled clear text passes it through here; the NUL becomes U+FFFD.
//! Sealed copies (bodies, payloads, events) keep the exact original.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// What replaces a code point the store refuses.
pub const REPLACEMENT: char = '\u{FFFD}';

/// `s` without the code points PostgreSQL refuses in `text` (only U+0000: Rust strings hold no
/// lone surrogates). Borrows when there is nothing to replace.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', &REPLACEMENT.to_string()))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`text`] for an optional owned string.
pub fn opt_text(s: Option<String>) -> Option<String> {
    s.map(owned_text)
}

/// [`text`] for an owned string.
pub fn owned_text(s: String) -> String {
    match text(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => o,
    }
}

/// `v` with every string and object key made storable in `jsonb`.
pub fn json(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(owned_text(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(json).collect()),
        Value::Object(o) => {
            let mut out = Map::with_capacity(o.len());
            for (k, x) in o {
                out.insert(owned_text(k), json(x));
            }
            Value::Object(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_nul_everywhere() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(opt_text(Some("\0".into())).as_deref(), Some("\u{FFFD}"));
        assert_eq!(
            json(json!({"k\0": ["x\0", 1, {"y": "\0z"}], "n": null})),
            json!({"k\u{FFFD}": ["x\u{FFFD}", 1, {"y": "\u{FFFD}z"}], "n": null})
        );
    }
}
