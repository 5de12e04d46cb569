//! Which node runs which connection (docs/ARCHITECTURE.md §5). Nodes sharing one PostgreSQL
//! heartbeat in `nodes`; a Lite session (`lite:<id>`) or a Business number (`business:<id>`)
//! is run by the node holding its row in `leases`, which expires unless renewed. A node takes
//! a free or expired lease (a stopped or dead node's) only up to its fair share of the live
//! nodes, so two nodes started together split the work instead of the first taking it all.
//!
//! What a lease guards: one Chromium per WhatsApp account (two browsers would throw each other
//! out), and one sender per Business number (each node paces its own sends, so two senders
//! would together exceed Meta's throughput). Business numbers' Graph clients run on every node
//! for the HTTP routes and webhook media; only the lease holder gets a Dispatcher lane.
//!
//! Fencing: a node counts a lease as its own only until three quarters of the TTL after the
//! renewal that last confirmed it (measured from before the query left), so a node cut off
//! from the store stops sending and closes its browsers before another node may take over.

use crate::connection::ConnectionKind;
use deadpool_postgres::GenericClient;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Default lease time to live (`NODE_LEASE_SECS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The `leases.resource` key of a connection.
pub fn resource(kind: ConnectionKind, id: Uuid) -> String {
    format!("{}{id}", prefix(kind))
}

/// The start of the `leases.resource` keys of a kind (`lite:`, `business:`).
pub fn prefix(kind: ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::Business => "business:",
        ConnectionKind::Lite => "lite:",
    }
}

/// This node's view of its leases.
pub struct Ownership {
    node_id: String,
    ttl: Duration,
    /// Resource → until when this node may act on it.
    held: Mutex<HashMap<String, Instant>>,
    /// Whether the leases of an earlier run under this node id were dropped yet.
    cleared: std::sync::atomic::AtomicBool,
    /// Resources being handed over to another node (docs/ARCHITECTURE.md §5): still held
    /// (the connection runs on until its sends finished), but no new send starts.
    leaving: Mutex<HashSet<String>>,
}

impl Ownership {
    pub fn new(node_id: impl Into<String>, ttl: Duration) -> Ownership {
        Ownership {
            node_id: node_id.into(),
            ttl: ttl.max(Duration::from_secs(1)),
            held: Mutex::default(),
            cleared: Default::default(),
            leaving: Mutex::default(),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often leases are renewed and free ones looked for: a third of the TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    fn valid_for(&self, asked: Instant) -> Instant {
        asked + self.ttl * 3 / 4
    }

    /// Whether this node may run the connection now.
    pub fn holds(&self, kind: ConnectionKind, id: Uuid) -> bool {
        let key = resource(kind, id);
        self.held
            .lock()
            .expect("ownership lock")
            .get(&key)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Whether this node may start sends for the connection: it holds it and is not handing
    /// it over.
    pub fn may_send(&self, kind: ConnectionKind, id: Uuid) -> bool {
        self.holds(kind, id)
            && !self
                .leaving
                .lock()
                .expect("ownership lock")
                .contains(&resource(kind, id))
    }

    /// Starts handing the connection over: no new send starts here; the lease is kept until
    /// [`Self::release`].
    pub fn leave(&self, kind: ConnectionKind, id: Uuid) {
        self.leaving
            .lock()
            .expect("ownership lock")
            .insert(resource(kind, id));
    }

    /// The connections of `kind` being handed over.
    pub fn leaving(&self, kind: ConnectionKind) -> Vec<Uuid> {
        let prefix = prefix(kind);
        self.leaving
            .lock()
            .expect("ownership lock")
            .iter()
            .filter_map(|k| k.strip_prefix(prefix)?.parse().ok())
            .collect()
    }

    /// The connections of `kind` this node holds now.
    pub fn held(&self, kind: ConnectionKind) -> Vec<Uuid> {
        let prefix = prefix(kind);
        let now = Instant::now();
        self.held
            .lock()
            .expect("ownership lock")
            .iter()
            .filter(|(k, until)| **until > now && k.starts_with(prefix))
            .filter_map(|(k, _)| k[prefix.len()..].parse().ok())
            .collect()
    }

    /// How many connections of `kind` this node holds now.
    pub fn count(&self, kind: ConnectionKind) -> usize {
        self.held(kind).len()
    }

    /// Once per process: drops the leases an earlier run under the same node id left (it was
    /// killed or restarted), so this run starts from nothing and takes its fair share anew.
    pub async fn clear_earlier_run(
        &self,
        client: &impl GenericClient,
    ) -> Result<u64, tokio_postgres::Error> {
        use std::sync::atomic::Ordering;
        // One attempt: if the store is down now, those leases expire by themselves (a node
        // renews only the leases it took itself).
        if self.cleared.swap(true, Ordering::SeqCst) {
            return Ok(0);
        }
        client
            .execute("DELETE FROM leases WHERE node_id = $1", &[&self.node_id])
            .await
    }

    /// Records this node's heartbeat and renews every lease it took; returns the resources it
    /// held before and no longer holds (taken over after this node failed to renew in time).
    pub async fn heartbeat(
        &self,
        client: &impl GenericClient,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let asked = Instant::now();
        let ttl = self.ttl.as_secs_f64();
        client
            .execute(
                "INSERT INTO nodes (id, hostname, version) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL",
                &[&self.node_id, &hostname(), &env!("CARGO_PKG_VERSION")],
            )
            .await?;
        let mine: Vec<String> = self
            .held
            .lock()
            .expect("ownership lock")
            .keys()
            .cloned()
            .collect();
        let rows = client
            .query(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $2), updated_at = now()
                 WHERE node_id = $1 AND resource = ANY($3) RETURNING resource",
                &[&self.node_id, &ttl, &mine],
            )
            .await?;
        let until = self.valid_for(asked);
        let renewed: std::collections::HashSet<String> =
            rows.iter().map(|r| r.get::<_, String>(0)).collect();
        // Only the leases this round asked about: one taken meanwhile stays as it is.
        let mut held = self.held.lock().expect("ownership lock");
        let mut lost = Vec::new();
        for key in mine {
            if renewed.contains(&key) {
                held.insert(key, until);
            } else if held.remove(&key).is_some() {
                lost.push(key);
            }
        }
        // A connection lost while being handed over is gone already.
        self.leaving
            .lock()
            .expect("ownership lock")
            .retain(|k| held.contains_key(k));
        Ok(lost)
    }

    /// Takes the leases of `ids` that are free, expired or already this node's; returns the
    /// ids now held.
    pub async fn acquire(
        &self,
        client: &impl GenericClient,
        kind: ConnectionKind,
        ids: &[Uuid],
    ) -> Result<Vec<Uuid>, tokio_postgres::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let asked = Instant::now();
        let keys: Vec<String> = ids.iter().map(|id| resource(kind, *id)).collect();
        let ttl = self.ttl.as_secs_f64();
        // The node row first (the lease references it), in the same statement.
        let rows = client
            .query(
                "WITH node AS (
                     INSERT INTO nodes (id, hostname, version) VALUES ($1, $4, $5)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL)
                 INSERT INTO leases (resource, node_id, expires_at)
                 SELECT r, $1, now() + make_interval(secs => $3) FROM unnest($2::text[]) r
                 ON CONFLICT (resource) DO UPDATE
                     SET node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at, updated_at = now()
                     WHERE leases.node_id = EXCLUDED.node_id OR leases.expires_at < now()
                 RETURNING resource",
                &[
                    &self.node_id,
                    &keys,
                    &ttl,
                    &hostname(),
                    &env!("CARGO_PKG_VERSION"),
                ],
            )
            .await?;
        let until = self.valid_for(asked);
        let mut held = self.held.lock().expect("ownership lock");
        let mut got = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.get(0);
            if let Some(id) = key.split_once(':').and_then(|(_, id)| id.parse().ok()) {
                got.push(id);
            }
            held.insert(key, until);
        }
        Ok(got)
    }

    /// Takes free or expired leases among `candidates`, up to this node's fair share of
    /// `total` connections of the kind (less those it holds); returns the ids now held.
    /// Candidates another live node holds are passed over, and the rest taken in random
    /// order, so nodes asking at once do not all want the same ones.
    pub async fn acquire_share(
        &self,
        client: &impl GenericClient,
        kind: ConnectionKind,
        candidates: &[Uuid],
        total: usize,
    ) -> Result<Vec<Uuid>, tokio_postgres::Error> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = candidates.iter().map(|id| resource(kind, *id)).collect();
        let taken: std::collections::HashSet<String> = client
            .query(
                "SELECT resource FROM leases
                 WHERE resource = ANY($1) AND node_id <> $2 AND expires_at > now()",
                &[&keys, &self.node_id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut free: Vec<Uuid> = candidates
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !taken.contains(*k))
            .map(|(id, _)| *id)
            .collect();
        let room = self
            .fair_share(client, total)
            .await?
            .saturating_sub(self.count(kind));
        if free.is_empty() || room == 0 {
            return Ok(Vec::new());
        }
        use rand::seq::SliceRandom;
        free.shuffle(&mut rand::rng());
        free.truncate(room);
        self.acquire(client, kind, &free).await
    }

    /// Gives leases up (the connection stopped for good, or left this node); another node
    /// may take them at once.
    pub async fn release(
        &self,
        client: &impl GenericClient,
        kind: ConnectionKind,
        ids: &[Uuid],
    ) -> Result<(), tokio_postgres::Error> {
        let keys: Vec<String> = ids.iter().map(|id| resource(kind, *id)).collect();
        {
            let mut held = self.held.lock().expect("ownership lock");
            let mut leaving = self.leaving.lock().expect("ownership lock");
            for k in &keys {
                held.remove(k);
                leaving.remove(k);
            }
        }
        client
            .execute(
                "DELETE FROM leases WHERE node_id = $1 AND resource = ANY($2)",
                &[&self.node_id, &keys],
            )
            .await?;
        Ok(())
    }

    /// On a graceful stop: every lease goes back and the node is marked stopped, so the other
    /// nodes take its connections on their next round instead of after the TTL.
    pub async fn release_all(
        &self,
        client: &impl GenericClient,
    ) -> Result<u64, tokio_postgres::Error> {
        self.held.lock().expect("ownership lock").clear();
        self.leaving.lock().expect("ownership lock").clear();
        let n = client
            .execute("DELETE FROM leases WHERE node_id = $1", &[&self.node_id])
            .await?;
        client
            .execute(
                "UPDATE nodes SET stopped_at = now() WHERE id = $1",
                &[&self.node_id],
            )
            .await?;
        Ok(n)
    }

    /// How many connections of a kind this node should hold when `total` of them want a
    /// node: an even share of the live nodes (those that heartbeat within the TTL), rounded up.
    pub async fn fair_share(
        &self,
        client: &impl GenericClient,
        total: usize,
    ) -> Result<usize, tokio_postgres::Error> {
        let live: i64 = client
            .query_one(
                "SELECT count(*) FROM nodes
                 WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $2)
                    OR id = $1",
                &[&self.node_id, &self.ttl.as_secs_f64()],
            )
            .await?
            .get(0);
        Ok(total.div_ceil(live.max(1) as usize))
    }

    /// The node holding a live lease on the connection, if any.
    pub async fn owner(
        client: &impl GenericClient,
        kind: ConnectionKind,
        id: Uuid,
    ) -> Result<Option<String>, tokio_postgres::Error> {
        Ok(client
            .query_opt(
                "SELECT node_id FROM leases WHERE resource = $1 AND expires_at > now()",
                &[&resource(kind, id)],
            )
            .await?
            .map(|r| r.get(0)))
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
