//! The inbound inbox (`webhook_inbox`): what must be durable before anyone upstream is told it
//! arrived. Meta's webhook route stores a body here before its 200 (source `meta`); a Lite
//! session stores each page event here before it confirms the event to the page bridge (source
//! `lite`), so neither a crashed browser nor a store outage after that moment loses a message.
//! The inbox drain ([`super::drain`]) turns both into stored messages.

use super::dead_letter::NewDeadLetter;
use super::model::InboundItem;
use crate::seal::{Purpose, Sealer};
use crate::shared::Shared;
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `webhook_inbox.source` of a Meta webhook body.
pub const SOURCE_META: &str = "meta";
/// `webhook_inbox.source` of Lite page events.
pub const SOURCE_LITE: &str = "lite";

/// The body of a Lite inbox row (sealed): the items one page event became.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiteBody {
    pub items: Vec<InboundItem>,
}

/// Stores Lite items of one user's connection durably (one row, sealed); returns the row id.
/// Once this returns, the items will be stored or dead-lettered, never lost.
pub async fn store_lite(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    connection_id: Uuid,
    items: &[InboundItem],
) -> Result<i64, StoreError> {
    let body = serde_json::to_vec(&LiteBody {
        items: items.to_vec(),
    })
    .expect("inbound items serialize");
    let sealed = sealer.seal(Purpose::Webhook, &body);
    insert(
        client,
        "source, usuario_id, connection_id, body",
        &[&SOURCE_LITE, &usuario_id, &connection_id, &sealed],
    )
    .await
}

/// Stores a Meta webhook body whose signature the app secrets of `signed_by`'s numbers
/// verified; returns the row id. The drain applies the body to those users' numbers only.
pub async fn store_meta(
    client: &impl GenericClient,
    sealer: &Sealer,
    phone_number_id: Option<&str>,
    signed_by: &[Uuid],
    body: &[u8],
) -> Result<i64, StoreError> {
    let sealed = sealer.seal(Purpose::Webhook, body);
    insert(
        client,
        "source, phone_number_id, signed_by, body",
        &[&SOURCE_META, &phone_number_id, &signed_by, &sealed],
    )
    .await
}

/// Inserts one inbox row with these four columns; returns its id.
async fn insert(
    client: &impl GenericClient,
    columns: &str,
    values: &[&(dyn tokio_postgres::types::ToSql + Sync); 4],
) -> Result<i64, StoreError> {
    let sql = format!("INSERT INTO webhook_inbox ({columns}) VALUES ($1, $2, $3, $4) RETURNING id");
    Ok(client.query_one(&sql, values).await?.get(0))
}

/// Tells this node's inbox drain that a row was committed, so it drains now instead of at its
/// next poll.
pub fn wake(shared: &Shared) {
    shared.inbox_wake.notify_one();
}

/// One item with the inbox row it came from.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub inbox_id: i64,
    pub source: &'static str,
    pub item: InboundItem,
}

impl Tagged {
    pub(crate) fn dead_letter(&self, reason: String) -> NewDeadLetter {
        let (usuario_id, connection_id, external_id) = match &self.item {
            InboundItem::Message(m) => (m.usuario_id, m.connection_id, &m.external_id),
            InboundItem::Status(s) => (s.usuario_id, s.connection_id, &s.external_id),
        };
        NewDeadLetter {
            inbox_id: self.inbox_id,
            source: self.source.into(),
            usuario_id: Some(usuario_id),
            connection_id: Some(connection_id),
            external_id: Some(external_id.clone()),
            reason,
        }
    }
}
