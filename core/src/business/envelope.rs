//! The ids a webhook body names, read before anything is stored: `entry[].id` (WABA ids) and
//! `entry[].changes[].value.metadata.phone_number_id`, so the route can find the app secrets
//! that may have signed it.
//!
//! The body is scanned with serde's visitors, not parsed into a `serde_json::Value`: the route
//! needs two kinds of ids out of a body of up to thousands of messages, and building (and
//! dropping) the tree of all of them was a twentieth of the daemon's CPU under a flood. The
//! scan reads the body as the tree would: anything that is not where an id is expected, or not
//! of an id's type, is skipped; when an object repeats a key, the last one counts; invalid JSON
//! is an error (every byte is still checked).

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The phone_number_ids (`metadata.phone_number_id`) and WABA ids (`entry[].id`) a payload
/// names.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Named {
    pub phone_number_ids: Vec<String>,
    pub waba_ids: Vec<String>,
}

/// Why a body is not a webhook envelope.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvelopeError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not a WhatsApp Business webhook: {0}")]
    NotEnvelope(&'static str),
}

/// Reads the body enough to route and verify it.
pub fn envelope(body: &[u8]) -> Result<Named, EnvelopeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let entries = Top
        .deserialize(&mut de)
        .and_then(|entries| de.end().map(|()| entries))
        .map_err(|e| EnvelopeError::NotJson(e.to_string()))?
        .ok_or(EnvelopeError::NotEnvelope("no entry array"))?;
    let mut named = Named::default();
    for entry in entries {
        for p in entry.phone_number_ids {
            if !named.phone_number_ids.contains(&p) {
                named.phone_number_ids.push(p);
            }
        }
        // Every entry's WABA id, whatever its changes name: the signature must be checked
        // against the owner of each thing the body may touch.
        if let Some(w) = entry.waba_id
            && !named.waba_ids.contains(&w)
        {
            named.waba_ids.push(w);
        }
    }
    if named.phone_number_ids.is_empty() && named.waba_ids.is_empty() {
        return Err(EnvelopeError::NotEnvelope(
            "it names no phone number or account",
        ));
    }
    Ok(named)
}

/// What one entry names.
#[derive(Default)]
struct Entry {
    waba_id: Option<String>,
    phone_number_ids: Vec<String>,
}

/// Visitor methods for the JSON types `$kind` that yield `Default` (the tree's `get` and
/// `as_*` finding nothing), with the value still read through.
macro_rules! nothing {
    ($($kind:ident),*) => { $( nothing!(@ $kind); )* };
    (@ bool) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ number) => {
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ str) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ unit) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
    (@ map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

/// A map key: the index of the one of `.0` it is, without copying it.
struct KeyIn(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIn {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|k| *k == key))
    }
}

/// The document: `Some(entries)` when it is an object whose `entry` is an array.
struct Top;

impl<'de> DeserializeSeed<'de> for Top {
    type Value = Option<Vec<Entry>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = Option<Vec<Entry>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a webhook envelope")
    }
    nothing!(bool, number, str, unit, seq);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = None;
        while let Some(key) = map.next_key_seed(KeyIn(&["entry"]))? {
            match key {
                Some(_) => entries = map.next_value_seed(Array(|| EntryOf))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entries)
    }
}

/// An array of what `item()` reads: `Some(items)`, or None when the value is not an array.
struct Array<F>(F);

impl<'de, F, S> DeserializeSeed<'de> for Array<F>
where
    F: Fn() -> S,
    S: DeserializeSeed<'de>,
{
    type Value = Option<Vec<S::Value>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F, S> Visitor<'de> for Array<F>
where
    F: Fn() -> S,
    S: DeserializeSeed<'de>,
{
    type Value = Option<Vec<S::Value>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed((self.0)())? {
            out.push(item);
        }
        Ok(Some(out))
    }
    nothing!(bool, number, str, unit, map);
}

/// One `entry[]`: its `id` and the phone number ids of its `changes`.
struct EntryOf;

impl<'de> DeserializeSeed<'de> for EntryOf {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntryOf {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    nothing!(bool, number, str, unit, seq);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entry = Entry::default();
        while let Some(key) = map.next_key_seed(KeyIn(&["id", "changes"]))? {
            match key {
                Some(0) => entry.waba_id = map.next_value_seed(IdText)?,
                Some(_) => {
                    entry.phone_number_ids = map
                        .next_value_seed(Array(|| Path(&["value", "metadata", "phone_number_id"])))?
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .collect();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entry)
    }
}

/// An id as the tree's readers took it: a non-empty string, or a number in its JSON spelling.
struct IdText;

impl<'de> DeserializeSeed<'de> for IdText {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdText {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    nothing!(bool, unit, seq, map);
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok((!s.is_empty()).then(|| s.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Some(n.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(n.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map(|n| n.to_string()))
    }
}

/// The string at a path of object keys below the value (`value.metadata.phone_number_id`),
/// if every step is an object and the last value a string.
struct Path(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Path {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Path {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    nothing!(bool, number, unit, seq);
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| s.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let Some((first, rest)) = self.0.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        while let Some(key) = map.next_key_seed(KeyIn(std::slice::from_ref(first)))? {
            match key {
                Some(_) => found = map.next_value_seed(Path(rest))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(body: &str) -> Result<Named, EnvelopeError> {
        envelope(body.as_bytes())
    }

    #[test]
    fn repeated_keys_count_once_the_last_as_in_a_parsed_tree() {
        let n = named(
            r#"{"entry":[{"id":"W1","changes":[{"value":{"metadata":{"phone_number_id":"P1"}}}],
                "id":"W2","changes":[{"value":{"metadata":{"phone_number_id":"P2","phone_number_id":"P3"}}}]}]}"#,
        )
        .unwrap();
        assert_eq!(n.waba_ids, vec!["W2"]);
        assert_eq!(n.phone_number_ids, vec!["P3"]);
        assert_eq!(
            named(r#"{"entry":[{"id":"W1"}],"entry":5}"#),
            Err(EnvelopeError::NotEnvelope("no entry array"))
        );
    }

    #[test]
    fn escapes_numbers_and_misplaced_ids() {
        let n = named(
            r#"{"ent\u0072y":[7,{"id":1.5e3},{"id":-42},{"id":""},{"id":"W\u00e9"},
                {"changes":[{"value":{"metadata":{"phone_number_id":9}}},{"metadata":{"phone_number_id":"X"}},
                            {"value":{"metadata":{"phone_number_\u0069d":"P\"1"}}}]}]}"#,
        )
        .unwrap();
        assert_eq!(n.waba_ids, vec!["1500.0", "-42", "Wé"]);
        assert_eq!(n.phone_number_ids, vec!["P\"1"]);
    }

    #[test]
    fn not_json_is_an_error_whatever_the_scan_needed() {
        assert!(matches!(
            named(r#"{"entry":[{"id":"W1"}]} trailing"#),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(
            named(r#"{"entry":[{"id":"W1"}],"other":[1,}"#),
            Err(EnvelopeError::NotJson(_))
        ));
        assert_eq!(
            named(r#"{"entry":[{"changes":[]}]}"#),
            Err(EnvelopeError::NotEnvelope(
                "it names no phone number or account"
            ))
        );
        assert_eq!(
            named(r#"[{"entry":[]}]"#),
            Err(EnvelopeError::NotEnvelope("no entry array"))
        );
    }
}
