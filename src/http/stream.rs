//! `GET /v1/stream`: the WebSocket event stream (DESIGN.md section 5).

use crate::context::AppContext;
use std::sync::Arc;
use warp::Filter;
use warp::reply::Response;

pub fn routes(_ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("v1" / "stream")
        .and(warp::any())
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed()
}
