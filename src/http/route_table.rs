//! Route templates from the OpenAPI document: `/v1/messages/0191…/cancel` →
//! `/v1/messages/{id}/cancel`. Metrics and request spans name routes by template so no id or
//! phone number becomes a label; a path no documented route matches is `unmatched`.

use super::openapi;
use std::sync::OnceLock;

struct Template {
    /// `None` for a `{param}` segment.
    segments: Vec<Option<String>>,
    text: String,
}

fn table() -> &'static [Template] {
    static TABLE: OnceLock<Vec<Template>> = OnceLock::new();
    TABLE.get_or_init(|| {
        openapi::operations()
            .into_iter()
            .map(|(_, path)| path)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|text| Template {
                segments: text
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                    .collect(),
                text,
            })
            .collect()
    })
}

/// The documented template `path` falls under (the one with the most literal segments when
/// several do), or `unmatched`. `method` is not needed to tell templates apart.
pub fn template(_method: &str, path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    table()
        .iter()
        .filter(|t| {
            t.segments.len() == parts.len()
                && t.segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
        })
        .max_by_key(|t| t.segments.iter().filter(|s| s.is_some()).count())
        .map_or("unmatched", |t| t.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn paths_become_their_templates() {
        let id = "0191f2a4-7b7c-7d3e-9c1a-5e6f7a8b9c0d";
        assert_eq!(
            template("POST", &format!("/v1/messages/{id}/cancel")),
            "/v1/messages/{id}/cancel"
        );
        assert_eq!(
            template("GET", "/v1/messages/dead-letter"),
            "/v1/messages/dead-letter"
        );
        assert_eq!(template("GET", "/v1/nothing/here"), "unmatched");
        assert_eq!(template("GET", "/metrics"), "/metrics");
    }
}
