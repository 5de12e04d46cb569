//! Rebalancing between nodes (docs/ARCHITECTURE.md §5): a node holding more connections of a
//! kind than its fair share (`ceil(total / live nodes)`) hands the surplus over to nodes below
//! theirs, a few at a time. Taking is already capped by the fair share
//! ([`crate::nodes::ownership::Ownership::acquire_share`]); this is the other half, giving.
//!
//! The giving node decides alone, from the lease rows: what it holds, what each other live
//! node holds. It moves nothing unless it is over its share by at least one and some other
//! node has room, so two nodes never trade a connection back and forth. The hand-over itself
//! (stop the lane, let its sends finish, stop the connection, give the lease back) is done by
//! the owner of the kind: the LiteSupervisor for Lite sessions, the Dispatcher for Business
//! numbers; [`drained`] is the step both share.

use super::ownership::{Ownership, prefix};
use crate::connection::ConnectionKind;
use crate::shared::Shared;
use deadpool_postgres::GenericClient;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most connections of a kind one node hands over in one round: the receiving node starts
/// them all at once (a browser each, for Lite), so a larger batch would stall it.
pub const HANDOVER_BATCH: usize = 2;

/// How many connections a node holding `mine` of `total` should hand over now, when the
/// other live nodes hold `others`: its surplus over the fair share, at most what the others
/// have room for, at most [`HANDOVER_BATCH`].
pub fn to_hand_over(mine: usize, total: usize, others: &[usize]) -> usize {
    let live = others.len() + 1;
    let fair = total.div_ceil(live);
    if mine <= fair {
        return 0;
    }
    let room: usize = others.iter().map(|o| fair.saturating_sub(*o)).sum();
    (mine - fair).min(room).min(HANDOVER_BATCH)
}

/// How many of its connections of `kind` this node should hand over now, `total` being how
/// many of the kind want a node ([`to_hand_over`] on the live nodes' lease counts).
pub async fn surplus(
    client: &impl GenericClient,
    ownership: &Ownership,
    kind: ConnectionKind,
    total: usize,
) -> Result<usize, tokio_postgres::Error> {
    let like = format!("{}%", prefix(kind));
    let others: Vec<usize> = client
        .query(
            "SELECT count(l.resource) FROM nodes n
             LEFT JOIN leases l ON l.node_id = n.id AND l.resource LIKE $3 AND l.expires_at > now()
             WHERE n.id <> $1 AND n.stopped_at IS NULL
               AND n.heartbeat_at > now() - make_interval(secs => $2)
             GROUP BY n.id",
            &[&ownership.node_id(), &ownership.ttl().as_secs_f64(), &like],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0) as usize)
        .collect();
    let mine = ownership
        .count(kind)
        .saturating_sub(ownership.leaving(kind).len());
    // Every held lease wants a node too (a Lite session still waiting for its QR is not
    // counted among the wanted ones yet).
    let held = mine + others.iter().sum::<usize>();
    Ok(to_hand_over(mine, total.max(held), &others))
}

/// Whether this node's Dispatchers hold none of the connection's queued rows any more (none
/// claimed, none in flight): after its lane stopped, the connection may leave this node
/// without a send cut off halfway.
pub async fn drained(
    client: &impl GenericClient,
    node_id: &str,
    connection_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT NOT EXISTS (
                 SELECT 1 FROM outbox o JOIN outbox_owners w ON w.owner = o.lease_owner
                 WHERE o.connection_id = $1 AND o.state = 'sending' AND w.node_id = $2)",
            &[&connection_id, &node_id],
        )
        .await?
        .get(0))
}

/// Waits until [`drained`], at most `limit` (a send that takes longer is cut off: it becomes
/// uncertain, never sent twice). Returns whether it drained.
pub async fn wait_drained(shared: &Shared, connection_id: Uuid, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if let Ok(client) = shared.pool.get().await
            && let Ok(true) = drained(&client, &shared.node_id, connection_id).await
        {
            return true;
        }
        if Instant::now() >= until {
            tracing::warn!(connection = %connection_id, "sends still in flight at the hand-over deadline");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_gets_the_surplus_of_the_busier_ones() {
        // 9 over 3 nodes: fair share 3; the nodes at 5 and 4 give 2 and 1.
        assert_eq!(to_hand_over(5, 9, &[4, 0]), 2);
        assert_eq!(to_hand_over(4, 9, &[5, 0]), 1);
        assert_eq!(to_hand_over(3, 9, &[3, 3]), 0);
    }

    #[test]
    fn at_or_under_the_fair_share_nothing_moves() {
        // 10 over 3: fair share 4; 4/4/2 is within it everywhere (no ping-pong).
        assert_eq!(to_hand_over(4, 10, &[4, 2]), 0);
        // Alone: everything is this node's share.
        assert_eq!(to_hand_over(7, 7, &[]), 0);
    }

    #[test]
    fn never_more_than_a_batch_or_than_the_others_have_room_for() {
        assert_eq!(to_hand_over(20, 20, &[0]), HANDOVER_BATCH);
        // 4 over 2: fair share 2, but the other node is full already.
        assert_eq!(to_hand_over(3, 4, &[2]), 0);
        assert_eq!(to_hand_over(4, 4, &[1]), 1);
    }
}
