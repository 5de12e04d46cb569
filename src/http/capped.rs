//! Raw request bodies with a size cap, read by the route itself: `Content-Length` is optional
//! (chunked bodies are counted as they arrive), and an oversized body yields `None` so the
//! route answers 413 itself. warp's own `content_length_limit` rejection can lose to another
//! route's "method not allowed" on the same path when rejections are combined.

use super::error::ApiError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The body if it is at most `limit` bytes, else None.
pub fn body(limit: u64) -> impl Filter<Extract = (Option<Bytes>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| collect(declared, stream, limit))
}

async fn collect<S, B>(
    declared: Option<u64>,
    stream: S,
    limit: u64,
) -> Result<Option<Bytes>, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut stream = Box::pin(stream);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            warp::reject::custom(ApiError::bad_request(
                "invalid_body",
                format!("the request body could not be read: {e}"),
            ))
        })?;
        if (buf.len() + chunk.remaining()) as u64 > limit {
            return Ok(None);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(Some(buf.freeze()))
}

/// The 413 answer, in the API's error shape.
pub fn too_large(limit: u64) -> Response {
    super::json_reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        &serde_json::json!({"error": {
            "code": "payload_too_large",
            "message": format!("request body is larger than {limit} bytes"),
        }}),
    )
}
