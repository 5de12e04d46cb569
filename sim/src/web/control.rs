//! Control routes of the WhatsApp Web simulator (docs/ARCHITECTURE.md §6): the "phone" side that
//! tests and `demo` drive. JSON in and out; errors are
//! `{"error":{"code":"snake_case","message":"..."}}` with a 4xx status.
//!
//! | route | what |
//! |---|---|
//! | `POST /sim/scan {qr, phone, name?}` | phone `phone` scans `qr`; 409 `qr_not_current` unless a page shows it now |
//! | `POST /sim/pair {code, phone, name?}` | link with a code from `startAltLinkingFlow`; 404 unknown code, 409 other phone |
//! | `POST /sim/messages {account, from, name?, text?, media?, ctwa_context?}` | contact `from` writes to `account` (`ctwa_context`: the Click-to-WhatsApp ad it came from) → `{id, serialized}` |
//! | `POST /sim/number-change {account, from, to}` | contact `from` changed number to `to`: the old chat gets WhatsApp Web's `change_number` notice → `{id, serialized}` |
//! | `POST /sim/phone-send {account, to, text}` | the account's own phone sends `text` to `to`: its linked pages get a `fromMe` message → `{id, serialized, devices}` |
//! | `GET /sim/sent?account=` | `[{id, serialized, to, to_phone, type, body, caption, sent_at, ack, media{mimetype, filename, size, sha256, direct_path}, message}]` |
//! | `POST /sim/acks {id, ack}` | ack (-1, 1 server, 2 device, 3 read, 4 played) of a sent message (raw or serialized id) |
//! | `POST /sim/logout {account}` | the phone unlinks all devices of the account |
//! | `POST /sim/conflict {account}` | the account's pages go `CONFLICT` (until `Socket.takeover()`) |
//! | `POST /sim/socket-state {account, state}` | extra: push another Socket state (`TIMEOUT`, `TOS_BLOCK`, `CONNECTED`, ...) |
//! | `GET /sim/state` | extra: accounts, devices, pages (state, current ref and QR) |
//! | `GET /sim/qr` | extra: `[{page, device, ref, qr}]`, the QR strings shown right now |
//! | `POST /sim/upload?mimetype=&filename=` | the page's media upload (raw body) → media entry |
//! | `GET /sim/media?direct_path=&media_key=` | the bytes behind a `directPath` (page downloads, tests) |
//! | `POST /sim/profile-pic {phone, mimetype, data_base64}` | contact `phone`'s profile picture from now on |
//! | `GET /sim/profile-pic-fetches` | `{phone: n}`: how many times pages looked up each contact's picture |

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::SimError;
use super::state::{Inbound, PictureReq, Sim};

#[derive(Deserialize)]
struct ScanReq {
    qr: String,
    phone: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct PairReq {
    code: String,
    phone: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct AckReq {
    id: String,
    ack: i64,
}

#[derive(Deserialize)]
struct PhoneSendReq {
    account: String,
    to: String,
    text: String,
}

#[derive(Deserialize)]
struct NumberChangeReq {
    account: String,
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct AccountReq {
    account: String,
}

#[derive(Deserialize)]
struct StateReq {
    account: String,
    state: String,
}

type Query = HashMap<String, String>;

fn json_reply(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(v) => warp::reply::json(&v).into_response(),
        Err(e) => error_reply(&e),
    }
}

fn error_reply(e: &SimError) -> Response {
    error_response(e.status(), e.code(), &e.to_string())
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("JSON body: {e}")))
}

/// Every control route, under `/sim/`.
pub(super) fn routes(
    sim: Arc<Sim>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = sim.config.max_body_bytes;
    let with_sim = {
        let sim = sim.clone();
        warp::any().map(move || sim.clone())
    };
    let body = move || warp::body::content_length_limit(limit).and(warp::body::bytes());
    // Path first, then method: an unknown path is 404, a known one with the wrong method 405.
    let post = |name: &'static str| {
        warp::path("sim")
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::post())
    };
    let get = |name: &'static str| {
        warp::path("sim")
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::get())
    };

    let scan = post("scan")
        .and(with_sim.clone())
        .and(body())
        .map(|sim: Arc<Sim>, b: Bytes| {
            json_reply(parse::<ScanReq>(&b).and_then(|r| sim.scan(&r.qr, &r.phone, r.name)))
        });
    let pair = post("pair")
        .and(with_sim.clone())
        .and(body())
        .map(|sim: Arc<Sim>, b: Bytes| {
            json_reply(parse::<PairReq>(&b).and_then(|r| sim.pair(&r.code, &r.phone, r.name)))
        });
    let messages =
        post("messages")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(parse::<Inbound>(&b).and_then(|r| sim.inbound(r)))
            });
    let phone_send =
        post("phone-send")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(
                    parse::<PhoneSendReq>(&b)
                        .and_then(|r| sim.phone_send(&r.account, &r.to, &r.text)),
                )
            });
    let number_change =
        post("number-change")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(
                    parse::<NumberChangeReq>(&b)
                        .and_then(|r| sim.number_change(&r.account, &r.from, &r.to)),
                )
            });
    let sent = get("sent")
        .and(with_sim.clone())
        .and(warp::query::<Query>())
        .map(|sim: Arc<Sim>, q: Query| {
            let account = q.get("account").map(String::as_str).unwrap_or_default();
            json_reply(sim.sent(account).map(|s| json!(s)))
        });
    let acks = post("acks")
        .and(with_sim.clone())
        .and(body())
        .map(|sim: Arc<Sim>, b: Bytes| {
            json_reply(parse::<AckReq>(&b).and_then(|r| sim.ack(&r.id, r.ack)))
        });
    let logout = post("logout")
        .and(with_sim.clone())
        .and(body())
        .map(|sim: Arc<Sim>, b: Bytes| {
            json_reply(parse::<AccountReq>(&b).and_then(|r| sim.logout(&r.account)))
        });
    let conflict =
        post("conflict")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(parse::<AccountReq>(&b).and_then(|r| sim.conflict(&r.account)))
            });
    let socket_state =
        post("socket-state")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(parse::<StateReq>(&b).and_then(|r| sim.push_state(&r.account, &r.state)))
            });
    let state = get("state")
        .and(with_sim.clone())
        .map(|sim: Arc<Sim>| json_reply(Ok(sim.snapshot())));
    let qr = get("qr")
        .and(with_sim.clone())
        .map(|sim: Arc<Sim>| json_reply(Ok(sim.qrs())));
    let upload = post("upload")
        .and(with_sim.clone())
        .and(warp::query::<Query>())
        .and(body())
        .map(|sim: Arc<Sim>, q: Query, b: Bytes| {
            let mimetype = q
                .get("mimetype")
                .cloned()
                .unwrap_or_else(|| "application/octet-stream".into());
            let filename = q.get("filename").cloned().filter(|f| !f.is_empty());
            json_reply(Ok(sim.upload(b, &mimetype, filename)))
        });
    let profile_pic =
        post("profile-pic")
            .and(with_sim.clone())
            .and(body())
            .map(|sim: Arc<Sim>, b: Bytes| {
                json_reply(parse::<PictureReq>(&b).and_then(|r| sim.set_profile_pic(r)))
            });
    let profile_pic_fetches = get("profile-pic-fetches")
        .and(with_sim.clone())
        .map(|sim: Arc<Sim>| json_reply(Ok(sim.profile_pic_fetches())));
    let media =
        get("media")
            .and(with_sim)
            .and(warp::query::<Query>())
            .map(|sim: Arc<Sim>, q: Query| {
                let path = q.get("direct_path").map(String::as_str).unwrap_or_default();
                match sim.media(path, q.get("media_key").map(String::as_str)) {
                    Ok((bytes, mimetype)) => {
                        warp::reply::with_header(bytes.to_vec(), "content-type", mimetype)
                            .into_response()
                    }
                    Err(e) => error_reply(&e),
                }
            });

    // Boxed in two halves: one chain of every route is a type deep enough to overflow the
    // compiler's recursion limit in release builds.
    let phone = scan
        .or(pair)
        .unify()
        .or(messages)
        .unify()
        .or(phone_send)
        .unify()
        .or(number_change)
        .unify()
        .or(sent)
        .unify()
        .or(acks)
        .unify()
        .or(logout)
        .unify()
        .or(conflict)
        .unify()
        .boxed();
    let views = socket_state
        .or(state)
        .unify()
        .or(qr)
        .unify()
        .or(upload)
        .unify()
        .or(media)
        .unify()
        .or(profile_pic)
        .unify()
        .or(profile_pic_fetches)
        .unify()
        .boxed();
    phone.or(views).unify()
}

/// Turns warp's rejections into the simulator's error shape.
pub(super) async fn recover(rej: Rejection) -> Result<Response, Infallible> {
    let (status, code, message) = if rej.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route".to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::PayloadTooLarge>() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::MethodNotAllowed>() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            e.to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
    } else {
        (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{rej:?}"),
        )
    };
    Ok(error_response(status, code, &message))
}
