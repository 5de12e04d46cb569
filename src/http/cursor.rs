//! Opaque cursors for keyset pagination over `(created_at, id)`, newest first, and the page
//! every listing answers with (`{"items": [...], "next_cursor": ...}`).

use super::error::ApiError;
use super::json_reply;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn encode(at: OffsetDateTime, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.unix_timestamp_nanos()))
}

pub fn decode(cursor: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (nanos, id) = text.split_once('|').ok_or_else(bad)?;
    let nanos: i128 = nanos.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// Page size from `?limit=`: 50 by default, 1..=200.
pub fn limit(requested: Option<u32>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(50),
        Some(n @ 1..=200) => Ok(i64::from(n)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 200",
        )),
    }
}

/// A listing's `?limit=` and `?cursor=`, checked: the page size and the `(created_at, id)`
/// the page starts after.
pub fn request(
    limit_asked: Option<u32>,
    cursor: Option<&str>,
) -> Result<(i64, Option<(OffsetDateTime, Uuid)>), ApiError> {
    Ok((limit(limit_asked)?, cursor.map(decode).transpose()?))
}

/// A listing's answer from the `limit + 1` rows it read: the first `limit` rendered as items,
/// and a cursor to the next page when the extra row shows there is more. `key` is a row's
/// `(created_at, id)`.
pub fn page<T, S: Serialize>(
    rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
    render: impl FnMut(T) -> S,
) -> Response {
    page_named("items", rows, limit, key, render)
}

/// [`page`] with the list under `name` instead of `items` (`{"alerts": [...]}`).
pub fn page_named<T, S: Serialize>(
    name: &str,
    rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
    render: impl FnMut(T) -> S,
) -> Response {
    let (rows, next) = split(rows, limit, key);
    let items: Vec<S> = rows.into_iter().map(render).collect();
    let mut body = serde_json::Map::new();
    body.insert(name.to_string(), json!(items));
    body.insert("next_cursor".into(), json!(next));
    json_reply(StatusCode::OK, &body)
}

/// The first `limit` rows, and the cursor after the last of them when more were read.
fn split<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let next = more.then(|| {
        let (at, id) = key(rows.last().expect("non-empty page"));
        encode(at, id)
    });
    (rows, next)
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)).unwrap(), (at, id));
        assert!(decode("not a cursor").is_err());
        assert!(limit(Some(0)).is_err());
        assert_eq!(limit(None).unwrap(), 50);
    }

    #[test]
    fn a_page_names_its_next_cursor_only_when_more_was_read() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let rows: Vec<(OffsetDateTime, Uuid)> = (0..3).map(|_| (at, Uuid::now_v7())).collect();
        let (page, next) = split(rows.clone(), 2, |r| *r);
        assert_eq!(page, rows[..2]);
        assert_eq!(decode(&next.expect("a next cursor")).unwrap(), rows[1]);
        let (page, next) = split(rows.clone(), 3, |r| *r);
        assert_eq!(page, rows);
        assert!(next.is_none());
        assert_eq!(request(None, None).unwrap(), (50, None));
        assert!(request(Some(201), None).is_err());
        assert!(request(None, Some("garbage")).is_err());
    }
}
