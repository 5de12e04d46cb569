//! The `types` filter of a stream subscription (`?types=message.received,lead.*`): which event
//! types a WebSocket client wants. Parsed and validated once at connect time (a bad list is a
//! 400 before the upgrade), then matched by the Hub for every live event and by the replay for
//! every stored one, so a filtered client is never sent what it did not ask for.

use std::collections::HashSet;

/// Most types one filter may name; more is almost certainly a client bug.
pub const MAX_TYPES: usize = 32;
/// Longest type name accepted.
pub const MAX_TYPE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("types is empty: name at least one event type, or leave the parameter out")]
    Empty,
    #[error("types names more than {MAX_TYPES} event types")]
    TooMany,
    #[error(
        "event type {0:?} is not valid: use lowercase names like message.received, or a prefix like message.*"
    )]
    BadName(String),
}

/// A set of exact type names plus `prefix.*` wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl TypeFilter {
    /// Parses a comma-separated list. Names are lowercase `[a-z0-9_]` segments joined by dots;
    /// a trailing `.*` matches every type under that prefix.
    pub fn parse(list: &str) -> Result<TypeFilter, FilterError> {
        let items: Vec<&str> = list.split(',').map(str::trim).collect();
        if items.iter().all(|i| i.is_empty()) {
            return Err(FilterError::Empty);
        }
        if items.len() > MAX_TYPES {
            return Err(FilterError::TooMany);
        }
        let mut filter = TypeFilter::default();
        for item in items {
            let (name, wildcard) = match item.strip_suffix(".*") {
                Some(prefix) => (prefix, true),
                None => (item, false),
            };
            if !valid_name(name) {
                return Err(FilterError::BadName(truncate(item)));
            }
            if wildcard {
                filter.prefixes.push(format!("{name}."));
            } else {
                filter.exact.insert(name.to_string());
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, kind: &str) -> bool {
        self.exact.contains(kind) || self.prefixes.iter().any(|p| kind.starts_with(p.as_str()))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TYPE_LEN
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Echoes at most a few characters of a bad name back in the error.
fn truncate(item: &str) -> String {
    item.chars().take(MAX_TYPE_LEN).collect()
}

/// Whether an optional filter lets `kind` through (no filter: everything).
pub fn allows(filter: Option<&TypeFilter>, kind: &str) -> bool {
    filter.is_none_or(|f| f.matches(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix() {
        let f = TypeFilter::parse("message.received, lead.*").unwrap();
        assert!(f.matches("message.received"));
        assert!(!f.matches("message.status"));
        assert!(f.matches("lead.created"));
        assert!(f.matches("lead.merged"));
        assert!(!f.matches("leadx.created"));
        assert!(!f.matches("lead"));
    }

    #[test]
    fn rejects_bad_lists() {
        assert_eq!(TypeFilter::parse(""), Err(FilterError::Empty));
        assert_eq!(TypeFilter::parse(" , "), Err(FilterError::Empty));
        assert!(matches!(
            TypeFilter::parse("Message.Received"),
            Err(FilterError::BadName(_))
        ));
        assert!(matches!(
            TypeFilter::parse("message..received"),
            Err(FilterError::BadName(_))
        ));
        assert!(matches!(
            TypeFilter::parse("message.received,"),
            Err(FilterError::BadName(_))
        ));
        assert!(matches!(
            TypeFilter::parse("*"),
            Err(FilterError::BadName(_))
        ));
        let many = vec!["a"; MAX_TYPES + 1].join(",");
        assert_eq!(TypeFilter::parse(&many), Err(FilterError::TooMany));
    }

    #[test]
    fn no_filter_allows_everything() {
        assert!(allows(None, "anything.at_all"));
        let f = TypeFilter::parse("alert").unwrap();
        assert!(allows(Some(&f), "alert"));
        assert!(!allows(Some(&f), "alert.other"));
    }
}
