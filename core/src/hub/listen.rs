//! The Hub's own PostgreSQL connection doing `LISTEN sincro_events`, outside the pool: a pooled
//! connection would be recycled or shared, and a LISTEN must stay on one session. The
//! connection is polled by a task owned by the Hub ([`Listener`]; dropping it aborts the task
//! and closes the session), which turns every notification into [`HubMessage::Notified`] and a
//! lost connection into [`HubMessage::ListenLost`], so the Hub fails and its supervisor starts a
//! fresh one with a fresh LISTEN.

use super::HubMessage;
use crate::store::events::{self, CHANNEL};
use futures::StreamExt;
use ractor::ActorRef;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    BadUrl,
    #[error("LISTEN connection: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("LISTEN connection: no answer within {0:?}")]
    Timeout(Duration),
}

/// How long a liveness probe on the LISTEN connection may take before it counts as lost.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The LISTEN session: its client (kept so the session stays open) and the polling task.
pub struct Listener {
    client: Arc<Client>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Connects (the URL is never logged), starts polling, and issues the LISTEN.
    pub async fn start(database_url: &str, hub: ActorRef<HubMessage>) -> Result<Self, ListenError> {
        let mut target =
            crate::store::tls::PgConnect::parse(database_url).map_err(|_| ListenError::BadUrl)?;
        let cfg = &mut target.config;
        cfg.connect_timeout(Duration::from_secs(5));
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        cfg.application_name("sincro-whatsapp-hub");
        let (client, mut connection) = target.connect().await?;
        let task = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            let reason = loop {
                match messages.next().await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if n.channel() != CHANNEL {
                            continue;
                        }
                        let Some((usuario_id, seq)) = events::parse_notification(n.payload())
                        else {
                            tracing::warn!("ignoring a malformed event notification");
                            continue;
                        };
                        if hub.cast(HubMessage::Notified { usuario_id, seq }).is_err() {
                            return; // the Hub is gone; the session closes with this task
                        }
                    }
                    Some(Ok(_)) => {} // notices
                    Some(Err(e)) => break e.to_string(),
                    None => break "connection closed".to_string(),
                }
            };
            let _ = hub.cast(HubMessage::ListenLost(reason));
        });
        let listener = Listener {
            client: Arc::new(client),
            task,
        };
        let statement = format!("LISTEN {CHANNEL}");
        tokio::time::timeout(PROBE_TIMEOUT, listener.client.batch_execute(&statement))
            .await
            .map_err(|_| ListenError::Timeout(PROBE_TIMEOUT))??;
        Ok(listener)
    }

    /// A probe of the session, for a connection that died silently (no RST, no keepalive
    /// answer yet): resolves to an error when it does not answer in time.
    pub fn probe(&self) -> impl Future<Output = Result<(), ListenError>> + Send + 'static {
        let client = self.client.clone();
        async move {
            tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("SELECT 1"))
                .await
                .map_err(|_| ListenError::Timeout(PROBE_TIMEOUT))??;
            Ok(())
        }
    }
}
