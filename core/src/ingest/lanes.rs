//! Lanes: a large drain step's items stored by parallel transactions, one per lane, so that
//! PostgreSQL's writes of one lane run while the daemon prepares another's (a step alone is a
//! chain of daemon work and statements: under a flood, a third of two cores sat idle).
//!
//! Items go to lanes by contact (the user and [`phone::contact_key`] of the sender), so one
//! contact's lead, conversation and messages are written by one transaction, in inbox order;
//! statuses go to the first lane. A lane is a transaction of its own: it takes the
//! `status_order` locks of its statuses and echoes before its first write (so a status and
//! the echo it names, in two lanes, still see each other's commit), stores its items with
//! [`super::isolate::store_isolated`] and commits. The step's transaction marks the inbox rows
//! done once every lane committed; a lane that failed leaves the rows for a later step, which
//! stores again only what is missing (messages are idempotent on connection and external id,
//! statuses move forward only, events are appended for new messages only), so nothing is
//! stored twice and nothing is lost when the daemon dies between the lanes' commits and the
//! mark.
//!
//! Lanes write different contacts' rows; the rows they can still share are a lead that two
//! spellings of a number resolve to, and each user's event counter, which a lane takes (in
//! user order) with the last statement of its items: a lane's events get their sequence
//! numbers in commit order. A deadlock between lanes is retried like any other.

use super::dead_letter::NewDeadLetter;
use super::inbox::Tagged;
use super::isolate::store_isolated;
use super::{InboundItem, IngestError, IngestReport};
use crate::phone;
use crate::shared::Shared;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use uuid::Uuid;

/// Items from which a step is split into lanes. A smaller step is stored in the step's own
/// transaction: one commit, which is what a steady trickle (a few dozen items a step) needs.
pub const LANES_FROM_ITEMS: usize = 1000;

/// Splits `items` into `lanes` groups by contact, keeping their order within each group.
pub fn split(items: Vec<Tagged>, lanes: usize) -> Vec<Vec<Tagged>> {
    let lanes = lanes.max(1);
    // A step repeats its senders: each is keyed once.
    let mut seen: HashMap<(Uuid, &str), usize> = HashMap::new();
    let lane_of: Vec<usize> =
        items
            .iter()
            .map(|t| match &t.item {
                InboundItem::Message(m) => *seen
                    .entry((m.usuario_id, m.from.as_str()))
                    .or_insert_with(|| {
                        let mut h = DefaultHasher::new();
                        m.usuario_id.hash(&mut h);
                        phone::contact_key(&m.from, None).key.hash(&mut h);
                        (h.finish() % lanes as u64) as usize
                    }),
                InboundItem::Status(_) => 0,
            })
            .collect();
    let mut out: Vec<Vec<Tagged>> = (0..lanes).map(|_| Vec::new()).collect();
    for (t, lane) in items.into_iter().zip(lane_of) {
        out[lane].push(t);
    }
    out
}

/// Stores `items` in `lanes` parallel transactions, each a task of its own (so the daemon's
/// share of the work, sealing and building the rows, runs on all the runtime's threads too; in
/// one task the lanes' gain was a third of it). Err when any
/// lane could not commit (the others may have: storing the same rows again adds nothing).
pub async fn store(
    shared: &Arc<Shared>,
    items: Vec<Tagged>,
    lanes: usize,
) -> Result<(IngestReport, Vec<NewDeadLetter>), IngestError> {
    let tasks: Vec<_> = split(items, lanes)
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|part| {
            let shared = shared.clone();
            tokio::spawn(async move { store_lane(&shared, &part).await })
        })
        .collect();
    let mut report = IngestReport::default();
    let mut dead = Vec::new();
    let mut failed = None;
    // Every lane is awaited, also after one failed: the step ends when none is writing.
    for task in tasks {
        match task.await {
            Ok(Ok((r, d))) => {
                report.add(&r);
                dead.extend(d);
            }
            Ok(Err(e)) => failed = Some(e),
            Err(e) => {
                tracing::error!(error = %e, "an ingest lane panicked; its rows will be retried");
                failed = Some(IngestError::Unavailable(format!(
                    "an ingest lane failed: {e}"
                )));
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok((report, dead)),
    }
}

/// One lane: its own connection and transaction, committed before it returns.
async fn store_lane(
    shared: &Shared,
    items: &[Tagged],
) -> Result<(IngestReport, Vec<NewDeadLetter>), IngestError> {
    let failed = |e: tokio_postgres::Error| IngestError::from_store(&e.into());
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?;
    let mut tx = client.transaction().await.map_err(failed)?;
    crate::store::status_order::lock(
        &tx,
        &super::batch::status_connections(items.iter().map(|t| &t.item)),
    )
    .await
    .map_err(|e| IngestError::from_store(&e))?;
    let stored = store_isolated(shared, &mut tx, items).await?;
    tx.commit().await.map_err(failed)?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::model::{Estado, InboundMessage, MessageKind, StatusUpdate};
    use serde_json::Value;

    fn message(n: usize, from: &str) -> Tagged {
        Tagged {
            inbox_id: n as i64,
            source: super::super::inbox::SOURCE_META,
            item: InboundItem::Message(InboundMessage {
                usuario_id: Uuid::nil(),
                connection_id: Uuid::nil(),
                external_id: format!("wamid.{n}"),
                from: from.into(),
                outgoing: false,
                profile_name: None,
                profile_picture_url: None,
                kind: MessageKind::Texto,
                text: None,
                payload: Value::Null,
                details: Value::Null,
                timestamp: time::OffsetDateTime::UNIX_EPOCH,
            }),
        }
    }

    fn external(t: &Tagged) -> &str {
        match &t.item {
            InboundItem::Message(m) => &m.external_id,
            InboundItem::Status(s) => &s.external_id,
        }
    }

    #[test]
    fn a_contact_stays_in_one_lane_in_order_and_statuses_go_first() {
        // Arrange: 40 contacts writing in turns; one contact also under its old Mexican
        // spelling (`521…`, the same contact key); a status.
        let mut items: Vec<Tagged> = (0..400)
            .map(|n| message(n, &format!("5511{:08}", 90_000_000 + n % 40)))
            .collect();
        items.push(message(400, "5215512345678"));
        items.push(message(401, "525512345678"));
        items.push(Tagged {
            inbox_id: 402,
            source: super::super::inbox::SOURCE_META,
            item: InboundItem::Status(StatusUpdate {
                usuario_id: Uuid::nil(),
                connection_id: Uuid::nil(),
                external_id: "wamid.sent".into(),
                estado: Estado::Read,
                error: None,
                timestamp: time::OffsetDateTime::UNIX_EPOCH,
                message_id: None,
            }),
        });

        // Act
        let lanes = split(items, 2);

        // Assert: nothing lost; both lanes used; each contact in one lane, in order.
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 403);
        assert!(lanes.iter().all(|l| !l.is_empty()));
        assert!(lanes[0].iter().any(|t| external(t) == "wamid.sent"));
        let lane_of = |id: &str| {
            lanes
                .iter()
                .position(|l| l.iter().any(|t| external(t) == id))
                .unwrap()
        };
        assert_eq!(lane_of("wamid.400"), lane_of("wamid.401"));
        for contact in 0..40 {
            let ids: Vec<String> = (0..10)
                .map(|k| format!("wamid.{}", contact + 40 * k))
                .collect();
            let lane = lane_of(&ids[0]);
            let got: Vec<&str> = lanes[lane]
                .iter()
                .map(external)
                .filter(|id| ids.iter().any(|x| x == id))
                .collect();
            assert_eq!(got, ids, "contact {contact} in one lane, in order");
        }
    }
}
