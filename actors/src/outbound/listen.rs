//! The Dispatcher's own PostgreSQL session doing `LISTEN sincro_outbox` (outside the pool: a
//! LISTEN must stay on one session). Every NOTIFY (a message enqueued, re-queued) names a
//! connection; the polling task wakes that connection's lane through the callback. A lost
//! session only loses the fast path: lanes still poll every `OUTBOX_POLL_MS`, and the
//! Dispatcher reconnects on its next tick.

use super::CHANNEL;
use futures::StreamExt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

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
    /// Connects and listens; `on_notify` gets the connection id of every notification.
    pub async fn start(
        database_url: &str,
        on_notify: impl Fn(Uuid) + Send + 'static,
    ) -> Result<Listener, String> {
        let mut cfg = tokio_postgres::Config::from_str(database_url)
            .map_err(|_| "DATABASE_URL is not valid".to_string())?;
        cfg.connect_timeout(Duration::from_secs(5));
        cfg.keepalives(true);
        cfg.application_name("sincro-whatsapp-dispatcher");
        let (client, mut connection) = cfg.connect(NoTls).await.map_err(|e| e.to_string())?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let task = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                        if let Ok(id) = n.payload().parse::<Uuid>() {
                            on_notify(id);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            flag.store(false, Ordering::SeqCst);
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            client.batch_execute(&format!("LISTEN {CHANNEL}")),
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

    /// Whether the session still runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.task.is_finished()
    }
}
