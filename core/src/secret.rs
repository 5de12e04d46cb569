//! [`Secret`]: a string that must never be printed (access tokens, app secrets, verify
//! tokens, API key material, connection strings). Its `Debug` says `[redacted]`, it has no
//! `Display`, and reading it takes an explicit [`Secret::expose`], so a struct holding one may
//! derive `Debug` and still never show it in logs or panics.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must use it (a header, a hash, a seal).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Read from request bodies like a plain string; there is deliberately no `Serialize`.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_printed() {
        let s = Secret::new("EAAG-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        let shown = format!("{:?}", Holder { token: s.clone() });
        assert!(!shown.contains("very-secret"), "{shown}");
        assert_eq!(s.expose(), "EAAG-very-secret");
    }
}
