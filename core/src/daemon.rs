//! The root supervisor. It starts children drawn in docs/ARCHITECTURE.md §1, after the
//! Membership (this node's heartbeat and leases, section 9), in `pre_start`, linked to itself, restarts them by the [`RestartPolicy`], answers the status RPC behind
//! `GET /v1/status`, and stops them children-first on shutdown.

use crate::business::handle::BusinessSupervisorHandle;
use crate::business::supervisor::{BusinessSupervisor, BusinessSupervisorMessage};
use crate::hooks::dispatcher::{HookDispatcher, HookDispatcherMessage};
use crate::hooks::handle::HookDispatcherHandle;
use crate::hub::{Hub, HubHandle, HubMessage};
use crate::ingest::{Ingest, IngestHandle, IngestMessage};
use crate::leads::handle::LeadSyncHandle;
use crate::leads::sync::{LeadSync, LeadSyncMessage};
use crate::lite::LiteSupervisorHandle;
use crate::lite::supervisor::{LiteSupervisor, LiteSupervisorArgs, LiteSupervisorMessage};
use crate::nodes::membership::{Membership, MembershipArgs, MembershipMessage};
use crate::outbound::dispatcher::{Dispatcher, DispatcherMessage};
use crate::outbound::handle::DispatcherHandle;
use crate::privacy::handle::RetentionHandle;
use crate::privacy::retention_actor::{Retention, RetentionMessage};
use crate::rate_limiter::{RateLimiter, RateLimiterHandle, RateLimiterMessage};
use crate::shared::Shared;
use crate::supervision::{
    ChildSpec, ChildState, Children, RestartPolicy, Slot, StatusNode, Supervised, react,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The current incarnation of each child; the `*_handle` methods give the typed handles the
/// HTTP layer calls them through.
#[derive(Clone, Default)]
pub struct ChildSlots {
    pub membership: Slot<MembershipMessage>,
    pub rate_limiter: Slot<RateLimiterMessage>,
    pub lead_sync: Slot<LeadSyncMessage>,
    pub hub: Slot<HubMessage>,
    pub ingest: Slot<IngestMessage>,
    pub dispatcher: Slot<DispatcherMessage>,
    pub business: Slot<BusinessSupervisorMessage>,
    pub lite: Slot<LiteSupervisorMessage>,
    pub retention: Slot<RetentionMessage>,
    pub hooks: Slot<HookDispatcherMessage>,
}

/// `ChildSlots::NAME(&self) -> HANDLE`: the handle over one child's slot, each written once.
macro_rules! slot_handles {
    ($($name:ident: $slot:ident => $handle:ident),* $(,)?) => {
        impl ChildSlots {
            $(
                pub fn $name(&self) -> $handle {
                    $handle::new(self.$slot.clone())
                }
            )*
        }
    };
}

slot_handles! {
    lite_handle: lite => LiteSupervisorHandle,
    business_handle: business => BusinessSupervisorHandle,
    lead_sync_handle: lead_sync => LeadSyncHandle,
    rate_limiter_handle: rate_limiter => RateLimiterHandle,
    hub_handle: hub => HubHandle,
    ingest_handle: ingest => IngestHandle,
    dispatcher_handle: dispatcher => DispatcherHandle,
    retention_handle: retention => RetentionHandle,
    hooks_handle: hooks => HookDispatcherHandle,
}

/// The running tree as the rest of the daemon sees it.
#[derive(Clone)]
pub struct Actors {
    pub daemon: ActorRef<DaemonMessage>,
    pub children: ChildSlots,
}

impl Actors {
    /// The live tree, or None when the daemon does not answer in time.
    pub async fn status(&self, timeout: Duration) -> Option<StatusNode> {
        match self.daemon.call(DaemonMessage::Status, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(node)) => Some(node),
            _ => None,
        }
    }

    /// Stops the tree children-first within `deadline`; returns what was still running.
    pub async fn shutdown(&self, deadline: Duration) -> Vec<String> {
        let asked = self
            .daemon
            .call(
                |reply| DaemonMessage::Shutdown { deadline, reply },
                Some(deadline + Duration::from_secs(1)),
            )
            .await;
        match asked {
            Ok(ractor::rpc::CallResult::Success(still)) => still,
            _ => vec!["daemon".to_string()],
        }
    }
}

pub enum DaemonMessage {
    /// The live supervision tree, for `GET /v1/status`.
    Status(RpcReplyPort<StatusNode>),
    /// Restart the named child; sent to itself once the backoff has passed.
    Restart(String),
    /// Fault injection (only with `fault_injection` on): make the named child panic. Replies
    /// whether a running child of that name was told to.
    Crash {
        child: String,
        reply: RpcReplyPort<bool>,
    },
    /// Stop every child, last started first, within the deadline; replies with the names of
    /// those still running when it passed, then stops the daemon itself.
    Shutdown {
        deadline: Duration,
        reply: RpcReplyPort<Vec<String>>,
    },
}

pub struct Daemon;

pub struct DaemonArgs {
    pub shared: Arc<Shared>,
    pub policy: RestartPolicy,
    pub slots: ChildSlots,
}

pub struct DaemonState {
    shared: Arc<Shared>,
    children: Children,
    started: Instant,
    started_at: time::OffsetDateTime,
}

/// Starts the tree; returns the typed handles and the daemon's join handle.
pub async fn start_tree(
    shared: Arc<Shared>,
    policy: RestartPolicy,
) -> Result<(Actors, tokio::task::JoinHandle<()>), SpawnErr> {
    // The RateLimiter's slot is the one in `Shared`, so actors that only hold `Shared` (the
    // Dispatcher's lanes) reach its current incarnation too.
    let slots = ChildSlots {
        rate_limiter: shared.rate_limiter.clone(),
        ..ChildSlots::default()
    };
    let args = DaemonArgs {
        shared,
        policy,
        slots: slots.clone(),
    };
    let (daemon, join) = Actor::spawn(None, Daemon, args).await?;
    Ok((
        Actors {
            daemon,
            children: slots,
        },
        join,
    ))
}

fn specs(shared: &Arc<Shared>, slots: &ChildSlots) -> Vec<ChildSpec> {
    // First started, last stopped: it hands the node's leases back once the sessions and
    // lanes that used them have ended.
    let args = MembershipArgs {
        shared: shared.clone(),
        business: slots.business_handle(),
        lite: slots.lite_handle(),
    };
    let membership = ChildSpec::new("membership", false, slots.membership.clone(), move || {
        (Membership, args.clone())
    });
    let rate_limiter = shared_spec(shared, "rate_limiter", false, &slots.rate_limiter, |s| {
        (RateLimiter, s.settings.clone())
    });
    let lead_sync = shared_spec(shared, "lead_sync", false, &slots.lead_sync, |s| {
        (LeadSync, s)
    });
    // The Hub holds a LISTEN connection and fails when PostgreSQL goes away; it must keep
    // being restarted through a database restart (about two and a half minutes of retries).
    let hub =
        shared_spec(shared, "hub", false, &slots.hub, |s| (Hub, s)).with_policy(RestartPolicy {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_failures: 20,
            window: Duration::from_secs(300),
        });
    let ingest = shared_spec(shared, "ingest", false, &slots.ingest, |s| (Ingest, s));
    let retention = shared_spec(shared, "retention", false, &slots.retention, |s| {
        (Retention, s)
    });
    let business = shared_spec(shared, "business_supervisor", true, &slots.business, |s| {
        (BusinessSupervisor, s)
    });
    let lite = shared_spec(shared, "lite_supervisor", true, &slots.lite, |shared| {
        (LiteSupervisor, LiteSupervisorArgs { shared })
    });
    // Last started, first stopped: it stops sending, waits for the sends it started and
    // records their outcomes while the connection actors they went through still run (a
    // message left in a stopped actor's mailbox would be `uncertain`, though never sent).
    let dispatcher = shared_spec(shared, "dispatcher", false, &slots.dispatcher, |s| {
        (Dispatcher, s)
    });
    // Event webhooks read only the event log: started last, stopped first, handing their
    // endpoints' leases back for another node to take at once.
    let hooks = shared_spec(shared, "hook_dispatcher", false, &slots.hooks, |s| {
        (HookDispatcher, s)
    });
    vec![
        membership,
        rate_limiter,
        lead_sync,
        hub,
        ingest,
        retention,
        business,
        lite,
        dispatcher,
        hooks,
    ]
}

/// A child made from the shared state on every start.
fn shared_spec<A>(
    shared: &Arc<Shared>,
    name: &str,
    supervisor: bool,
    slot: &Slot<A::Msg>,
    make: fn(Arc<Shared>) -> (A, A::Arguments),
) -> ChildSpec
where
    A: Actor,
    A::Msg: Supervised,
{
    let s = shared.clone();
    ChildSpec::new(name, supervisor, slot.clone(), move || make(s.clone()))
}

impl Actor for Daemon {
    type Msg = DaemonMessage;
    type State = DaemonState;
    type Arguments = DaemonArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DaemonArgs,
    ) -> Result<DaemonState, ActorProcessingErr> {
        let mut children = Children::new(args.policy);
        for spec in specs(&args.shared, &args.slots) {
            children.add_and_start(spec, &myself.get_cell()).await?;
        }
        tracing::info!(node = %args.shared.node_id, children = children.len(), "supervision tree started");
        Ok(DaemonState {
            shared: args.shared,
            children,
            started: Instant::now(),
            started_at: time::OffsetDateTime::now_utc(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: DaemonMessage,
        state: &mut DaemonState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DaemonMessage::Status(reply) => {
                let node = StatusNode {
                    name: "daemon".into(),
                    kind: "supervisor".into(),
                    state: ChildState::Running,
                    actor_id: Some(myself.get_id().to_string()),
                    restarts: 0,
                    uptime_secs: Some(state.started.elapsed().as_secs_f64()),
                    started_at: state
                        .started_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok(),
                    last_error: None,
                    children: state.children.status().await,
                };
                let _ = reply.send(node);
            }
            DaemonMessage::Restart(name) => {
                let decision = state.children.restart(&name, &myself.get_cell()).await;
                react(
                    &myself,
                    &state.shared,
                    "daemon",
                    decision,
                    DaemonMessage::Restart,
                );
            }
            DaemonMessage::Crash { child, reply } => {
                let done = state.shared.settings.fault_injection && state.children.crash(&child);
                let _ = reply.send(done);
            }
            DaemonMessage::Shutdown { deadline, reply } => {
                let still = state.children.stop_all(deadline).await;
                let _ = reply.send(still);
                myself.stop(Some("shutdown".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut DaemonState,
    ) -> Result<(), ActorProcessingErr> {
        let decision = state.children.on_event(&evt);
        react(
            &myself,
            &state.shared,
            "daemon",
            decision,
            DaemonMessage::Restart,
        );
        Ok(())
    }
}
