//! The lock that orders a connection's message statuses against the writes that make their
//! message findable.
//!
//! A status names its message by the provider's id, which the message gets from one of two
//! writers: the outbound recorder (the send's answer sets `external_id`) or the inbox drain
//! (an echo of a message the user sent from their phone is inserted with it). Meta often
//! sends the `sent` status within milliseconds of the send's answer, so a status can be
//! applied while that write is still uncommitted: it does not see the message, and is kept in
//! `pending_statuses` for when the message comes; the writer, looking for pending statuses
//! before its own commit, found none yet. Both would commit and the status would wait
//! forever. Every writer of either side takes this lock (one per connection, held until its
//! transaction ends) before its first write, so one of them always sees the other's commit.
//! Connections are locked in one order (by id) so two writers of several cannot deadlock.

use super::StoreError;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Takes the status-order lock of each of `connections` (duplicates allowed), in id order;
/// waits while another transaction holds one.
pub async fn lock(client: &impl GenericClient, connections: &[Uuid]) -> Result<(), StoreError> {
    if connections.is_empty() {
        return Ok(());
    }
    let mut ids = connections.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // A volatile function of the select list runs after the ORDER BY: the locks are taken in
    // id order.
    let statement = client
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(hashtext('sincro-status-order:' || c::text))
             FROM unnest($1::uuid[]) AS c ORDER BY c",
        )
        .await?;
    client.query(&statement, &[&ids]).await?;
    Ok(())
}
