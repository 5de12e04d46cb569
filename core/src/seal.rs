//! Sealing at rest: XChaCha20-Poly1305 under 256-bit keys from `ENCRYPTION_KEY`.
//!
//! A sealed value is text, so it fits the CRM's existing `text` columns:
//! `sw1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id travels with the value so
//! keys can rotate: the first configured key seals, every configured key opens. The purpose of a
//! value (message body, access token, event, ...) is bound in as associated data, so a sealed
//! token copied into a message column does not open there. Tampered, truncated or foreign
//! values are errors, never garbage.
//!
//! XChaCha20-Poly1305 is HChaCha20 (from the `chacha20` crate) deriving a subkey from the key
//! and the first 16 bytes of the nonce, then the IETF ChaCha20-Poly1305 of aws-lc (already in
//! the build as rustls' provider) under that subkey and the last 8 bytes. The values are the
//! same bytes the RustCrypto `XChaCha20Poly1305` reads and writes (a test holds both to it);
//! aws-lc's assembly seals a message body in a quarter of the time: every stored message seals
//! three or four values, and sealing was a seventh of the daemon's CPU under an inbound flood.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::fmt;

const PREFIX: &str = "sw1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// What a sealed value is for; part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `mensajes_conversacion.contenido` and outbox payloads.
    MessageBody,
    /// Access tokens, app secrets, verify tokens.
    Secret,
    /// Event payloads (they may quote message content).
    Event,
    /// Raw webhook bodies in the inbox.
    Webhook,
    /// Media files at rest.
    Media,
    /// Browser profile snapshots of Lite sessions.
    ProfileSnapshot,
}

impl Purpose {
    /// Every purpose, for code that must open any sealed value whatever it is for (re-sealing
    /// under a new key opens each value with the one purpose it was sealed for).
    pub const ALL: [Purpose; 6] = [
        Purpose::MessageBody,
        Purpose::Secret,
        Purpose::Event,
        Purpose::Webhook,
        Purpose::Media,
        Purpose::ProfileSnapshot,
    ];

    fn label(self) -> &'static str {
        match self {
            Purpose::MessageBody => "message",
            Purpose::Secret => "secret",
            Purpose::Event => "event",
            Purpose::Webhook => "webhook",
            Purpose::Media => "media",
            Purpose::ProfileSnapshot => "profile",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("ENCRYPTION_KEY is empty")]
    NoKeys,
    #[error("ENCRYPTION_KEY entry {0}: {1}")]
    BadKey(usize, String),
    #[error("ENCRYPTION_KEY names key id {0:?} twice")]
    DuplicateKeyId(String),
    #[error("value is not sealed")]
    NotSealed,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication (tampered, or sealed for another purpose)")]
    Tampered,
    #[error("sealed value is not UTF-8 text")]
    NotText,
}

struct SealKey {
    id: String,
    key: [u8; 32],
}

impl SealKey {
    /// The ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 uses for `nonce`.
    fn subkey(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let (head, tail) = nonce.split_at(16);
        let sub = chacha20::hchacha::<chacha20::R20>(
            &self.key.into(),
            &<[u8; 16]>::try_from(head).expect("16 bytes").into(),
        );
        let key = UnboundKey::new(&CHACHA20_POLY1305, &sub).expect("a 32-byte key");
        let mut inner = [0u8; 12];
        inner[4..].copy_from_slice(tail);
        (LessSafeKey::new(key), Nonce::assume_unique_for_key(inner))
    }
}

/// Seals and opens values with the configured keys. Cheap to share behind an `Arc`.
pub struct Sealer {
    keys: Vec<SealKey>,
    /// The sealing key's bytes, only to derive other keys from ([`Sealer::derive_key`]).
    derive_base: [u8; 32],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// Parses `ENCRYPTION_KEY`: comma-separated `id:key` entries (a lone key gets id `k1`), each
    /// key 32 bytes as 64 hex digits or base64. The first entry seals; all of them open.
    pub fn from_env_value(value: &str) -> Result<Self, SealError> {
        let mut keys: Vec<SealKey> = Vec::new();
        let mut derive_base: Option<[u8; 32]> = None;
        for (i, entry) in value.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (id, material) = match entry.split_once(':') {
                Some((id, material)) => (id.trim(), material.trim()),
                None => ("k1", entry),
            };
            let valid_id = !id.is_empty()
                && id.len() <= 16
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_id {
                return Err(SealError::BadKey(
                    i + 1,
                    "key id must be 1-16 letters, digits, '_' or '-'".into(),
                ));
            }
            let bytes = decode_key(material).ok_or_else(|| {
                SealError::BadKey(
                    i + 1,
                    "key must be 32 bytes as 64 hex digits or base64".into(),
                )
            })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(SealError::DuplicateKeyId(id.to_string()));
            }
            derive_base.get_or_insert(bytes);
            keys.push(SealKey {
                id: id.to_string(),
                key: bytes,
            });
        }
        let Some(derive_base) = derive_base else {
            return Err(SealError::NoKeys);
        };
        Ok(Sealer { keys, derive_base })
    }

    /// A 32-byte key for another use (`label` names it, e.g. signing media URLs), derived from
    /// the sealing key with HMAC-SHA256: every node with the same `ENCRYPTION_KEY` derives the
    /// same one, and it reveals nothing of the sealing key. Rotating the sealing key rotates it.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.derive_base)
            .expect("any key length");
        mac.update(b"sincro-whatsapp derived key\0");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh random key in the `ENCRYPTION_KEY` format, e.g. for `demo` or a new install.
    pub fn generate_env_value(id: &str) -> String {
        let key: [u8; 32] = rand::random();
        format!("{id}:{}", STANDARD.encode(key))
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        let key = &self.keys[0];
        // From the thread's CSPRNG (seeded and reseeded from the OS), not a system call per
        // value: a batch of 1,000 messages seals about 4,000 values.
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = aad(&key.id, purpose);
        let mut raw = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(plaintext);
        let (cipher, inner) = key.subkey(&nonce);
        let tag = cipher
            .seal_in_place_separate_tag(inner, Aad::from(aad.as_bytes()), &mut raw[NONCE_LEN..])
            .expect("ChaCha20-Poly1305 sealing cannot fail for in-memory sizes");
        raw.extend_from_slice(tag.as_ref());
        let mut out =
            String::with_capacity(PREFIX.len() + key.id.len() + 2 + raw.len() * 4 / 3 + 4);
        out.push_str(PREFIX);
        out.push('.');
        out.push_str(&key.id);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        out
    }

    pub fn seal_str(&self, purpose: Purpose, plaintext: &str) -> String {
        self.seal(purpose, plaintext.as_bytes())
    }

    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(prefix), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::NotSealed);
        };
        if prefix != PREFIX {
            return Err(SealError::NotSealed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN].try_into().expect("checked length");
        let aad = aad(id, purpose);
        let (cipher, inner) = key.subkey(&nonce);
        let len = cipher
            .open_in_place(inner, Aad::from(aad.as_bytes()), &mut raw[NONCE_LEN..])
            .map_err(|_| SealError::Tampered)?
            .len();
        raw.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        raw.truncate(len);
        Ok(raw)
    }

    pub fn open_str(&self, purpose: Purpose, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(purpose, sealed)?).map_err(|_| SealError::NotText)
    }

    /// Whether `value` has the sealed-value shape (not whether it opens).
    pub fn looks_sealed(value: &str) -> bool {
        value.starts_with("sw1.")
    }

    /// The id of the key `value` was sealed with, when it has the sealed-value shape.
    pub fn key_id_of(value: &str) -> Option<&str> {
        let mut parts = value.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(PREFIX), Some(id), Some(_)) => Some(id),
            _ => None,
        }
    }

    /// The ids of every configured key, the sealing one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Opens `sealed` whatever its purpose and seals it again, for the same purpose, under the
    /// current key. None when no purpose opens it (a foreign or damaged value).
    pub fn reseal(&self, sealed: &str) -> Option<String> {
        Purpose::ALL.into_iter().find_map(|purpose| {
            self.open(purpose, sealed)
                .ok()
                .map(|plain| self.seal(purpose, &plain))
        })
    }
}

fn aad(key_id: &str, purpose: Purpose) -> String {
    format!("{PREFIX}|{key_id}|{}", purpose.label())
}

fn decode_key(material: &str) -> Option<[u8; 32]> {
    let bytes = if material.len() == 64 && material.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&material[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD
            .decode(material)
            .or_else(|_| URL_SAFE_NO_PAD.decode(material.trim_end_matches('=')))
            .ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> String {
        Sealer::generate_env_value(id)
    }

    #[test]
    fn round_trip_and_no_plaintext() {
        let sealer = Sealer::from_env_value(&key("a")).unwrap();
        let sealed = sealer.seal_str(Purpose::MessageBody, "olá, segredo");
        assert!(sealed.starts_with("sw1.a."));
        assert!(!sealed.contains("segredo"));
        assert_eq!(
            sealer.open_str(Purpose::MessageBody, &sealed).unwrap(),
            "olá, segredo"
        );
        // Same plaintext twice seals differently (random nonce).
        assert_ne!(
            sealed,
            sealer.seal_str(Purpose::MessageBody, "olá, segredo")
        );
    }

    /// The RustCrypto implementation sealed every value stored before sealing moved to aws-lc:
    /// its values open here, and this module's open with it (the same XChaCha20-Poly1305 bytes).
    #[test]
    fn agrees_with_rustcrypto_xchacha20poly1305() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let key: [u8; 32] = rand::random();
        let sealer = Sealer::from_env_value(&format!("r1:{}", STANDARD.encode(key))).unwrap();
        let theirs = XChaCha20Poly1305::new_from_slice(&key).unwrap();
        let aad = aad("r1", Purpose::Event);
        for len in [0, 1, 63, 64, 65, 1000, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            // Theirs sealed, ours opens.
            let nonce: [u8; NONCE_LEN] = rand::random();
            let mut raw = nonce.to_vec();
            raw.extend(
                theirs
                    .encrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: &plain,
                            aad: aad.as_bytes(),
                        },
                    )
                    .unwrap(),
            );
            let sealed = format!("sw1.r1.{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(sealer.open(Purpose::Event, &sealed).unwrap(), plain);
            assert_eq!(
                sealer.open(Purpose::MessageBody, &sealed),
                Err(SealError::Tampered)
            );
            // Ours sealed, theirs opens.
            let ours = sealer.seal(Purpose::Event, &plain);
            let raw = URL_SAFE_NO_PAD
                .decode(ours.strip_prefix("sw1.r1.").unwrap())
                .unwrap();
            assert_eq!(raw.len(), NONCE_LEN + len + TAG_LEN);
            let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
            let opened = theirs
                .decrypt(
                    &XNonce::try_from(nonce).unwrap(),
                    Payload {
                        msg: ciphertext,
                        aad: aad.as_bytes(),
                    },
                )
                .unwrap();
            assert_eq!(opened, plain);
        }
    }

    #[test]
    fn rotation_old_keys_open_newest_seals() {
        let old = key("old");
        let sealer_old = Sealer::from_env_value(&old).unwrap();
        let sealed_old = sealer_old.seal_str(Purpose::Secret, "token");
        let rotated = Sealer::from_env_value(&format!("{},{}", key("new"), old)).unwrap();
        assert_eq!(rotated.current_key_id(), "new");
        assert_eq!(
            rotated.open_str(Purpose::Secret, &sealed_old).unwrap(),
            "token"
        );
        assert!(
            rotated
                .seal_str(Purpose::Secret, "x")
                .starts_with("sw1.new.")
        );
        // The old key alone cannot open what the new key sealed.
        let sealed_new = rotated.seal_str(Purpose::Secret, "x");
        assert_eq!(
            sealer_old.open_str(Purpose::Secret, &sealed_new),
            Err(SealError::UnknownKey("new".into()))
        );
    }

    #[test]
    fn tampering_and_foreign_values_are_errors() {
        let sealer = Sealer::from_env_value(&key("a")).unwrap();
        let sealed = sealer.seal_str(Purpose::MessageBody, "hello");
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            sealer.open(Purpose::MessageBody, &tampered),
            Err(SealError::Tampered)
        );
        assert_eq!(
            sealer.open(Purpose::Secret, &sealed),
            Err(SealError::Tampered)
        );
        let other = Sealer::from_env_value(&key("a")).unwrap();
        assert_eq!(
            other.open(Purpose::MessageBody, &sealed),
            Err(SealError::Tampered)
        );
        assert_eq!(
            sealer.open(Purpose::MessageBody, "hello"),
            Err(SealError::NotSealed)
        );
        assert_eq!(
            sealer.open(Purpose::MessageBody, "sw1.a.!!"),
            Err(SealError::Malformed)
        );
        assert_eq!(
            sealer.open(Purpose::MessageBody, "sw1.a.AAAA"),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn key_parsing() {
        let hex = "00".repeat(32);
        assert_eq!(Sealer::from_env_value(&hex).unwrap().current_key_id(), "k1");
        assert!(matches!(Sealer::from_env_value(""), Err(SealError::NoKeys)));
        assert!(matches!(
            Sealer::from_env_value("a:short"),
            Err(SealError::BadKey(1, _))
        ));
        assert!(matches!(
            Sealer::from_env_value(&format!("a:{hex},a:{hex}")),
            Err(SealError::DuplicateKeyId(_))
        ));
        assert!(matches!(
            Sealer::from_env_value(&format!("bad id:{hex}")),
            Err(SealError::BadKey(1, _))
        ));
        let debug = format!("{:?}", Sealer::from_env_value(&hex).unwrap());
        assert!(!debug.contains(&hex));
    }
}
