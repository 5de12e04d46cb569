//! The query string of `GET /v1/stream`: `since` (a seq), `types` (a filter), and the
//! `access_token` the auth filter reads; anything else is a 400 before the upgrade.

use crate::http::error::ApiError;
use sincro_core::hub::TypeFilter;
use warp::{Filter, Rejection};

/// The validated query.
#[derive(Debug, Default)]
pub struct StreamQuery {
    pub since: Option<i64>,
    pub types: Option<TypeFilter>,
}

pub(super) fn stream_query() -> impl Filter<Extract = (StreamQuery,), Error = Rejection> + Clone {
    warp::query::<Vec<(String, String)>>().and_then(|pairs: Vec<(String, String)>| async move {
        parse_query(&pairs).map_err(warp::reject::custom)
    })
}

fn parse_query(pairs: &[(String, String)]) -> Result<StreamQuery, ApiError> {
    let mut q = StreamQuery::default();
    let mut seen_types = false;
    for (key, value) in pairs {
        match key.as_str() {
            "since" => {
                if q.since.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_since",
                        "since is given twice",
                    ));
                }
                let since = value
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 0 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_since",
                            "since must be a seq: a non-negative integer",
                        )
                    })?;
                q.since = Some(since);
            }
            "types" => {
                if seen_types {
                    return Err(ApiError::bad_request(
                        "invalid_types",
                        "types is given twice; list the types comma-separated",
                    ));
                }
                seen_types = true;
                q.types = Some(
                    TypeFilter::parse(value)
                        .map_err(|e| ApiError::bad_request("invalid_types", e.to_string()))?,
                );
            }
            "access_token" => {}
            other => {
                let name: String = other.chars().take(40).collect();
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown query parameter {name:?} (expected since, types, access_token)"
                    ),
                ));
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(r: Result<StreamQuery, ApiError>) -> &'static str {
        r.expect_err("an error").code()
    }

    #[test]
    fn parses_since_and_types() {
        let q = parse_query(&pairs(&[
            ("since", "42"),
            ("types", "message.received,lead.*"),
            ("access_token", "x"),
        ]))
        .unwrap();
        assert_eq!(q.since, Some(42));
        assert!(q.types.as_ref().unwrap().matches("lead.created"));
        let q = parse_query(&[]).unwrap();
        assert_eq!(q.since, None);
        assert!(q.types.is_none());
    }

    #[test]
    fn rejects_bad_queries() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("since", "abc")], "invalid_since"),
            (&[("since", "-1")], "invalid_since"),
            (&[("since", "+1")], "invalid_since"),
            (&[("since", "")], "invalid_since"),
            (&[("since", "1"), ("since", "2")], "invalid_since"),
            (&[("types", "")], "invalid_types"),
            (&[("types", "A B")], "invalid_types"),
            (&[("limit", "1")], "invalid_query"),
        ];
        for (query, expected) in cases {
            assert_eq!(code(parse_query(&pairs(query))), *expected, "{query:?}");
        }
    }
}
