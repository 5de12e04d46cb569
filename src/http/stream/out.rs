//! The writing half of a stream's socket: frames fed and flushed only as fast as the client
//! reads, pings, the keepalive deadline, and the close frame that carries `since=<N>`.

use super::outcome::{Outcome, Step, ended_step};
use super::{CLOSE_TIMEOUT, PING_EVERY, PONG_TIMEOUT, SLOW_CLOSE_TIMEOUT};
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use sincro_core::hub::Ended;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use warp::filters::ws::{Message, WebSocket};

/// Resolves once the reader saw the client go (the watch guard is not held across awaits).
pub(super) async fn client_gone(gone: &mut watch::Receiver<bool>) {
    let _ = gone.wait_for(|g| *g).await;
}

fn keepalive_deadline(epoch: Instant, last_heard_ms: &AtomicU64) -> Instant {
    epoch + Duration::from_millis(last_heard_ms.load(Ordering::Relaxed)) + PONG_TIMEOUT
}

/// The writing half of the socket, with what the reading half learnt: when the client was
/// last heard from and whether it is gone.
pub(super) struct Out {
    sink: SplitSink<WebSocket, Message>,
    epoch: Instant,
    last_heard_ms: Arc<AtomicU64>,
    pub(super) gone: watch::Receiver<bool>,
    pub(super) next_ping: Instant,
}

impl Out {
    /// Starts the reader task (pongs, the client's close) and returns the writer.
    pub(super) fn new(
        sink: SplitSink<WebSocket, Message>,
        mut stream: SplitStream<WebSocket>,
    ) -> (Out, tokio::task::JoinHandle<()>) {
        let epoch = Instant::now();
        let last_heard_ms = Arc::new(AtomicU64::new(0));
        let (gone_tx, gone) = watch::channel(false);
        let heard = last_heard_ms.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                if message.is_close() {
                    break;
                }
            }
            let _ = gone_tx.send(true);
        });
        let out = Out {
            sink,
            epoch,
            last_heard_ms,
            gone,
            next_ping: epoch + PING_EVERY,
        };
        (out, reader)
    }

    pub(super) fn is_gone(&self) -> bool {
        *self.gone.borrow()
    }

    /// When the client counts as unresponsive if nothing more comes.
    fn keepalive_deadline(&self) -> Instant {
        keepalive_deadline(self.epoch, &self.last_heard_ms)
    }

    /// Sends a ping when one is due; fails when the client has been silent too long.
    pub(super) async fn ping_if_due(&mut self) -> Result<(), Step> {
        let now = Instant::now();
        if now >= self.keepalive_deadline() {
            return Err(Outcome::Keepalive.into());
        }
        if now < self.next_ping {
            return Ok(());
        }
        self.next_ping = now + PING_EVERY;
        self.feed(Message::ping(Vec::new()), None).await?;
        self.flush(None).await
    }

    /// Hands one message to the socket once it accepts more (bounded by the client reading).
    /// While waiting, gives up if the client goes, falls silent, or (when `closing` is given)
    /// the Hub drops the subscription: then the message was not sent.
    pub(super) async fn feed(
        &mut self,
        message: Message,
        closing: Option<&mut sincro_core::hub::ClosingSignal>,
    ) -> Result<(), Step> {
        self.wait(closing, |sink, cx| sink.poll_ready_unpin(cx))
            .await?;
        self.sink
            .start_send_unpin(message)
            .map_err(|_| Step::End(Outcome::ClientGone))
    }

    /// Pushes what was fed to the socket, with the same escape hatches as [`Out::feed`]
    /// (whatever was fed still goes out before anything sent later).
    pub(super) async fn flush(
        &mut self,
        closing: Option<&mut sincro_core::hub::ClosingSignal>,
    ) -> Result<(), Step> {
        self.wait(closing, |sink, cx| sink.poll_flush_unpin(cx))
            .await
    }

    async fn wait<F>(
        &mut self,
        mut closing: Option<&mut sincro_core::hub::ClosingSignal>,
        mut poll: F,
    ) -> Result<(), Step>
    where
        F: FnMut(
            &mut SplitSink<WebSocket, Message>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), warp::Error>>,
    {
        // Fast path: a socket keeping up is ready at once, and needs no timer or wakers.
        let sink = &mut self.sink;
        if let Some(done) = futures::future::poll_fn(|cx| poll(sink, cx)).now_or_never() {
            return done.map_err(|_| Outcome::ClientGone.into());
        }
        loop {
            let deadline = self.keepalive_deadline();
            let mut gone = self.gone.clone();
            let (epoch, heard) = (self.epoch, self.last_heard_ms.clone());
            let sink = &mut self.sink;
            let ready = futures::future::poll_fn(|cx| poll(sink, cx));
            let hub_closing = async {
                match closing.as_deref_mut() {
                    Some(signal) => signal.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                done = ready => return done.map_err(|_| Outcome::ClientGone.into()),
                _ = client_gone(&mut gone) => return Err(Outcome::ClientGone.into()),
                ended = hub_closing => match ended {
                    // Dropped by the Hub while blocked on a slow client: stop here.
                    Ended::Overflow | Ended::Shutdown => return Err(ended_step(ended)),
                    // The Hub crashed: finish this write, re-subscribe afterwards.
                    Ended::HubGone => closing = None,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= keepalive_deadline(epoch, &heard) {
                        return Err(Outcome::Keepalive.into());
                    }
                }
            }
        }
    }

    /// Ends the connection: our close frame (code and `since=<N>`), or the echo of the
    /// client's own close, pushed out within a bound.
    pub(super) async fn finish(&mut self, outcome: Outcome, position: i64) {
        let Some((code, prefix)) = outcome.close() else {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.flush()).await;
            return;
        };
        let reason = format!("{prefix}: resume with since={position}");
        let close = async {
            self.sink.feed(Message::close_with(code, reason)).await?;
            self.sink.flush().await
        };
        let limit = if outcome == Outcome::SlowConsumer {
            SLOW_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        let _ = tokio::time::timeout(limit, close).await;
    }
}
