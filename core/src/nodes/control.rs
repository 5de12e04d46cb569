//! The control channel between nodes (docs/ARCHITECTURE.md §5): commands one node sends the
//! others through PostgreSQL's `NOTIFY sincro_control`, delivered at the sender's commit, so a
//! command never overtakes the row change it is about. The Membership actor listens to it.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The NOTIFY channel of commands between nodes.
pub const CONTROL_CHANNEL: &str = "sincro_control";

/// A command between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// Stop a Lite session; only `node`, which runs its browser, acts on it.
    LiteStop {
        node: String,
        id: Uuid,
        logout: bool,
    },
    /// A Business number was connected, changed or removed on node `from`: every other node
    /// reloads its actor from the store.
    BusinessReload { from: String, id: Uuid },
}

/// Sends a command to the other nodes (and this one) at commit.
pub async fn broadcast(
    client: &impl GenericClient,
    control: &Control,
) -> Result<(), tokio_postgres::Error> {
    let payload = serde_json::to_string(control).expect("control serializes");
    client
        .execute("SELECT pg_notify($1, $2)", &[&CONTROL_CHANNEL, &payload])
        .await?;
    Ok(())
}
