//! A minimal client of the event stream (`GET /v1/stream`): connects, prints every event, and
//! after any disconnect (slow-consumer close 4008, daemon restart, network) reconnects with
//! `since=<last seq seen>`, so nothing is missed and nothing repeats. The pattern a CRM screen
//! or a worker consuming the stream should follow.
//!
//! ```text
//! SINCRO_API_KEY=sw_... cargo run --example stream_client -- --url ws://127.0.0.1:8080
//! cargo run --example stream_client -- --key sw_... --since 120 --types message.received,lead.*
//! ```

use anyhow::{Context, bail};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[derive(Parser, Debug)]
#[command(about = "Print a user's sincro-whatsapp events, resuming after disconnects")]
struct Args {
    /// The daemon's base URL (ws:// or wss://).
    #[arg(long, env = "SINCRO_URL", default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// The user's API key.
    #[arg(long, env = "SINCRO_API_KEY", hide_env_values = true)]
    key: String,
    /// Replay events after this seq first (default: only new events).
    #[arg(long)]
    since: Option<i64>,
    /// Comma-separated event types (exact names or `prefix.*`).
    #[arg(long)]
    types: Option<String>,
    /// Print the raw JSON frames instead of one summary line per event.
    #[arg(long)]
    raw: bool,
    /// Exit after the first disconnect instead of resuming.
    #[arg(long)]
    once: bool,
}

/// How one connection ended.
enum End {
    /// Closed by the server: the code and the `since` its reason names, if any.
    Closed(u16, String),
    /// The connection broke without a close frame.
    Broken(String),
    /// Ctrl-C.
    Interrupted,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut since = args.since;
    let mut backoff = Duration::from_millis(500);
    loop {
        let url = stream_url(&args, since);
        let mut request = url.as_str().into_client_request().context("stream URL")?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", args.key)
                .parse()
                .context("API key is not a valid header value")?,
        );
        let end = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => {
                eprintln!(
                    "connected (since={})",
                    since.map_or("now".into(), |s| s.to_string())
                );
                backoff = Duration::from_millis(500);
                consume(ws, &mut since, args.raw).await
            }
            Err(WsError::Http(response)) => {
                let status = response.status();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                if status.is_client_error() && status.as_u16() != 429 {
                    bail!("refused with {status}: {body}");
                }
                End::Broken(format!("refused with {status}: {body}"))
            }
            Err(e) => End::Broken(e.to_string()),
        };
        match end {
            End::Interrupted => return Ok(()),
            End::Closed(code, reason) => {
                eprintln!("closed by the server: {code} {reason}");
                // The reason names the last seq written before the close; frames up to it
                // were all received, so it is the same as the last seq seen.
                if let Some(n) = reason
                    .rsplit("since=")
                    .next()
                    .and_then(|n| n.trim().parse::<i64>().ok())
                {
                    since = Some(since.map_or(n, |s| s.max(n)));
                }
            }
            End::Broken(why) => eprintln!("disconnected: {why}"),
        }
        if args.once {
            return Ok(());
        }
        eprintln!(
            "reconnecting in {:.1} s with since={}",
            backoff.as_secs_f64(),
            since.map_or("now".into(), |s| s.to_string())
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn stream_url(args: &Args, since: Option<i64>) -> String {
    let mut query = Vec::new();
    if let Some(s) = since {
        query.push(format!("since={s}"));
    }
    if let Some(t) = &args.types {
        query.push(format!("types={t}"));
    }
    let base = args.url.trim_end_matches('/');
    if query.is_empty() {
        format!("{base}/v1/stream")
    } else {
        format!("{base}/v1/stream?{}", query.join("&"))
    }
}

async fn consume<S>(mut ws: S, since: &mut Option<i64>, raw: bool) -> End
where
    S: futures::Stream<Item = Result<Message, WsError>> + futures::Sink<Message> + Unpin,
{
    loop {
        let message = tokio::select! {
            m = ws.next() => m,
            _ = tokio::signal::ctrl_c() => {
                let _ = ws.send(Message::Close(None)).await;
                return End::Interrupted;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = match serde_json::from_str(text.as_str()) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("not JSON ({e}): {text}");
                        continue;
                    }
                };
                if raw {
                    println!("{text}");
                } else {
                    println!(
                        "{:>8}  {:<20} {}  {}",
                        frame["seq"],
                        frame["type"].as_str().unwrap_or("?"),
                        frame["at"].as_str().unwrap_or(""),
                        frame["data"]
                    );
                }
                // Notices (`stream.gap`) carry no seq.
                if let Some(seq) = frame["seq"].as_i64() {
                    *since = Some(seq);
                }
            }
            Some(Ok(Message::Close(close))) => {
                return match close {
                    Some(f) => End::Closed(f.code.into(), f.reason.to_string()),
                    None => End::Closed(1005, String::new()),
                };
            }
            Some(Ok(_)) => {} // pings are answered by the library
            Some(Err(e)) => return End::Broken(e.to_string()),
            None => return End::Broken("connection ended".into()),
        }
    }
}
