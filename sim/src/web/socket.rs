//! The page channel: the WebSocket at `/sim/ws` between the simulated WhatsApp Web page and the
//! simulated WhatsApp server. JSON text frames with a `"t"` tag.
//!
//! Page → server: `hello {device, keys{noise,identity,adv}, platform, login{account}|null, url,
//! browser}` (first), `refresh_qr`, `pair_request {rid, phone}`, `send {msg}`, `seen {chat}`,
//! `exists {rid, wid}`, `profile_pic {rid, wid}`, `receipt {sids}` (the page has these pushes in its own store), `logout`,
//! `takeover`.
//!
//! Server → page: `welcome {device, status: linked|unpaired|revoked}`, `ref {ref, ttl_ms}`,
//! `idle`, `pair_code {rid, code}`, `pair_error {rid, message}`, `exists_result {rid, exists,
//! wid}`, `profile_pic_result {rid, status, eurl?, tag?}`, `pairing`, `linked {account, wid, lid, pushname, fresh}`, `synced`, `offline {count}` … `offline_done`, `msg {msg, sid}`,
//! `ack {id, ack, error?, sid?}`, `state {state}`, `logout {reason}`. Pushes with a `sid` are
//! kept for the device until the page sends their `receipt`, and sent again whenever a page of
//! the device becomes ready.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use warp::Filter;
use warp::ws::{Message, WebSocket};

use super::state::{Hello, PageId, Sim};

/// `GET /sim/ws` (WebSocket upgrade).
pub(super) fn route(
    sim: Arc<Sim>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::path!("sim" / "ws")
        .and(warp::ws())
        .map(move |ws: warp::ws::Ws| {
            let sim = sim.clone();
            ws.max_message_size(64 << 20)
                .on_upgrade(move |socket| run(sim, socket))
        })
}

async fn run(sim: Arc<Sim>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // Handed to the state at hello; once the state drops its page (replaced by a reload), `rx`
    // ends and the channel closes.
    let mut tx = Some(tx);
    let mut stop = sim.shutdown_signal();
    let mut page_id: Option<PageId> = None;
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(msg)) = incoming else { break };
                if msg.is_close() {
                    break;
                }
                let Ok(text) = msg.to_str() else { continue };
                let Ok(value) = serde_json::from_str::<Value>(text) else { continue };
                match page_id {
                    Some(id) => sim.page_message(id, value),
                    None if value.get("t").and_then(Value::as_str) == Some("hello") => {
                        let (Ok(hello), Some(tx)) = (serde_json::from_value::<Hello>(value), tx.take())
                        else {
                            break;
                        };
                        page_id = Some(sim.hello(tx, hello));
                    }
                    None => {}
                }
            }
            out = rx.recv() => {
                let Some(text) = out else { break };
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                let _ = sink.send(Message::close()).await;
                break;
            }
        }
    }
    if let Some(id) = page_id {
        sim.page_closed(id);
    }
    let _ = sink.close().await;
}
