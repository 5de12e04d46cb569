//! Request bodies with a size cap, streamed: `Content-Length` is optional (chunked bodies are
//! counted as they arrive), a declared length over the cap is refused before anything is read,
//! and an undeclared one as soon as the bytes received pass it, so an oversized body never sits
//! in memory whole. Every route that reads a body reads it through here ([`bytes`], or
//! [`body`] for routes that answer the 413 themselves).

use super::error::ApiError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The body, or a 413 `body_too_large` rejection once it passes `limit` bytes.
pub fn bytes(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| async move {
            match collect(declared, stream, limit).await? {
                Some(b) => Ok(b),
                None => Err(warp::reject::custom(ApiError::TooLarge { limit })),
            }
        })
}

/// The body if it is at most `limit` bytes, else None (the route answers [`too_large`]).
/// warp's own `content_length_limit` rejection can lose to another route's "method not
/// allowed" on the same path when rejections are combined; this cannot.
pub fn body(limit: u64) -> impl Filter<Extract = (Option<Bytes>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| collect(declared, stream, limit))
}

/// Reads at most `limit` bytes; None as soon as the body is known to be longer.
pub async fn collect<S, B>(
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
    // A declared length sizes the buffer once; an undeclared one grows with what arrives.
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
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
    ApiError::TooLarge { limit }.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(n: usize, size: usize) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures::stream::iter((0..n).map(move |_| Ok(Bytes::from(vec![b'x'; size]))))
    }

    #[tokio::test]
    async fn stops_at_the_cap() {
        let got = collect(None, chunks(4, 10), 40).await.unwrap();
        assert_eq!(got.map(|b| b.len()), Some(40));
        assert!(collect(None, chunks(5, 10), 40).await.unwrap().is_none());
        assert!(collect(Some(41), chunks(0, 0), 40).await.unwrap().is_none());
        // An endless body is refused after the cap, not read to its end.
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, warp::Error>(Bytes::from_static(b"0123456789"))
        });
        assert!(collect(None, endless, 1000).await.unwrap().is_none());
    }
}
