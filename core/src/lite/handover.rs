//! Handing Lite sessions over to a node below its fair share (docs/ARCHITECTURE.md §5). The
//! LiteSupervisor drives it: it [`pick`]s a few sessions, marks them leaving (their lanes stop
//! taking messages), waits until their sends finished, stops each session (it closes its
//! browser and saves its profile snapshot, as on a graceful stop), then [`finish`]es: the
//! local profile goes (the snapshot is the newer copy) and the lease is given back, so the
//! node with room starts the session from its snapshot, WORKING without a QR.

use crate::connection::ConnectionKind;
use crate::lite::{profile, store};
use crate::nodes::rebalance;
use crate::shared::Shared;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// The sessions among `running` (those this node runs) to hand over now: none unless this
/// node runs more than its fair share of the wanted sessions; only WORKING ones with a
/// snapshot; a few at a time ([`rebalance::HANDOVER_BATCH`]).
pub async fn pick(shared: &Shared, running: Vec<Uuid>) -> Result<Vec<Uuid>, String> {
    let total = store::autostart(&shared.pool)
        .await
        .map_err(|e| e.to_string())?
        .len();
    let n = {
        let client = shared.pool.get().await.map_err(|e| e.to_string())?;
        rebalance::surplus(&client, &shared.ownership, ConnectionKind::Lite, total)
            .await
            .map_err(|e| e.to_string())?
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut movable = store::movable(&shared.pool, &running)
        .await
        .map_err(|e| e.to_string())?;
    use rand::seq::SliceRandom;
    movable.shuffle(&mut rand::rng());
    movable.truncate(n);
    Ok(movable)
}

/// When the session's snapshot was saved before it was stopped, to tell whether stopping
/// saved a newer one.
pub async fn snapshot_before(shared: &Shared, id: Uuid) -> Option<OffsetDateTime> {
    store::snapshot_at(&shared.pool, id).await.ok().flatten()
}

/// After the session stopped here: drops its local profile if stopping saved a newer snapshot
/// (should the session come back to this node, it starts from that snapshot, not from an
/// older copy), then gives its lease back.
pub async fn finish(shared: Arc<Shared>, id: Uuid, before: Option<OffsetDateTime>) {
    let after = store::snapshot_at(&shared.pool, id).await.ok().flatten();
    if after.is_some() && after > before {
        let dir = shared.settings.lite.profile_dir(id);
        match tokio::task::spawn_blocking(move || profile::wipe(&dir)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(session = %id, error = %e, "could not drop the local profile")
            }
            Err(e) => tracing::warn!(session = %id, error = %e, "could not drop the local profile"),
        }
    }
    if give_back(&shared, id).await {
        tracing::info!(session = %id, "handed the Lite session over to another node");
    }
}

/// Gives the session's lease back (it ended here, or left this node) so another node may run
/// it at once; on failure it expires by itself. Returns whether it was given back.
pub async fn give_back(shared: &Shared, id: Uuid) -> bool {
    let released = match shared.pool.get().await {
        Ok(client) => shared
            .ownership
            .release(&client, ConnectionKind::Lite, &[id])
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &released {
        tracing::warn!(session = %id, error = %e, "could not give the session's lease back; it expires");
    }
    released.is_ok()
}
