//! A PostgreSQL session of its own doing `LISTEN` on its channels (outside the pool: a LISTEN
//! must stay on one session): the Dispatcher's `sincro_outbox` (every NOTIFY names a
//! connection whose lane to wake), the Membership's `sincro_control` (commands between
//! nodes), the HookDispatcher's event log and endpoint changes. A lost session only loses the fast path: lanes still poll every `OUTBOX_POLL_MS`,
//! and the owners reconnect on their next tick.

use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// The LISTEN session; dropping it closes the session.
pub struct Listener {
    task: JoinHandle<()>,
    alive: Arc<AtomicBool>,
    _client: tokio_postgres::Client,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Connects and listens on `channels`; `on_notify` gets the channel and the payload of
    /// every notification.
    pub async fn start(
        database_url: &str,
        channels: &'static [&'static str],
        on_notify: impl Fn(&str, &str) + Send + 'static,
    ) -> Result<Listener, String> {
        let mut target = crate::store::tls::PgConnect::parse(database_url)
            .map_err(|_| "DATABASE_URL is not valid".to_string())?;
        let cfg = &mut target.config;
        cfg.connect_timeout(Duration::from_secs(5));
        cfg.keepalives(true);
        cfg.application_name(format!("sincro-whatsapp-{}", channels.join("-")));
        let (client, mut connection) = target
            .connect()
            .await
            .map_err(|e| crate::store::tls::explain(&e))?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let task = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if channels.contains(&n.channel()) => {
                        on_notify(n.channel(), n.payload());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            flag.store(false, Ordering::SeqCst);
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            client.batch_execute(
                &channels
                    .iter()
                    .map(|c| format!("LISTEN {c};"))
                    .collect::<String>(),
            ),
        )
        .await
        .map_err(|_| "LISTEN timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(Listener {
            task,
            alive,
            _client: client,
        })
    }

    /// As [`Listener::start`]; a failure is logged with what happens meanwhile (`meanwhile`)
    /// and gives None, for the owner to try again on its next round.
    pub async fn start_or_warn(
        database_url: &str,
        channels: &'static [&'static str],
        meanwhile: &str,
        on_notify: impl Fn(&str, &str) + Send + 'static,
    ) -> Option<Listener> {
        match Listener::start(database_url, channels, on_notify).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, channels = ?channels, "LISTEN failed; {meanwhile}");
                None
            }
        }
    }

    /// Whether the session still runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.task.is_finished()
    }
}
