//! The bookkeeping a supervisor keeps about its children: how to start each one, its current
//! incarnation, restarts, failures, state. Children are supervised by actor id (not by registry
//! name, so many daemons can run in one process, as the tests do). Used by the Daemon for its
//! fixed children and by the Lite and Business supervisors for their dynamic ones.

use super::policy::{FailureWindow, RestartPolicy, Verdict};
use super::slot::Slot;
use super::status::{ChildState, StatusNode};
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A message type of a supervised actor: it can be told to panic (fault injection, used by the
/// supervision tests) and, for supervisors, to report its own children.
pub trait Supervised: ractor::Message {
    /// The message that makes the actor panic inside its handler.
    fn panic_message() -> Self;
    /// For supervisors: the message asking for the status of their children.
    fn status_message(reply: RpcReplyPort<Vec<StatusNode>>) -> Option<Self> {
        let _ = reply;
        None
    }
}

/// How long a supervisor child may take to list its own children for `GET /v1/status`: it
/// answers from memory, so a longer wait means it is stuck, and the report shows it childless
/// rather than holding up the whole tree's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;
type CrashFn = Arc<dyn Fn(&ActorCell) -> bool + Send + Sync>;
type StatusFn = Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Vec<StatusNode>> + Send + Sync>;

/// How to start one child, and how to talk to it generically.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub kind: &'static str,
    start: StartFn,
    crash: CrashFn,
    status: Option<StatusFn>,
    /// Overrides the supervisor's policy for this child.
    policy: Option<RestartPolicy>,
}

impl ChildSpec {
    /// A child started as `make()` linked to the supervisor; `slot` always holds the current
    /// incarnation. `supervisor` children are asked for their own children in status reports.
    pub fn new<A, F>(name: impl Into<String>, supervisor: bool, slot: Slot<A::Msg>, make: F) -> Self
    where
        A: Actor,
        A::Msg: Supervised,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let start_slot = slot.clone();
        let start: StartFn = Arc::new(move |sup: ActorCell| {
            let make = make.clone();
            let slot = start_slot.clone();
            Box::pin(async move {
                let (actor, args) = make();
                let (r, _join) = Actor::spawn_linked(None, actor, args, sup).await?;
                slot.set(Some(r.clone()));
                Ok(r.get_cell())
            })
        });
        let crash: CrashFn = Arc::new(|cell: &ActorCell| {
            ActorRef::<A::Msg>::from(cell.clone())
                .cast(A::Msg::panic_message())
                .is_ok()
        });
        let status: Option<StatusFn> = supervisor.then(|| {
            let f: StatusFn = Arc::new(|cell: ActorCell| {
                Box::pin(async move {
                    let r = ActorRef::<A::Msg>::from(cell);
                    super::ask(
                        &r,
                        |reply| A::Msg::status_message(reply).expect("supervisor status"),
                        STATUS_TIMEOUT,
                    )
                    .await
                    .unwrap_or_default()
                })
            });
            f
        });
        ChildSpec {
            name: name.into(),
            kind: if supervisor { "supervisor" } else { "worker" },
            start,
            crash,
            status,
            policy: None,
        }
    }

    /// Gives this child its own restart policy, e.g. a longer window for a child that fails
    /// while PostgreSQL is down and must outlive a database restart.
    pub fn with_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}

struct ChildRecord {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    state: ChildState,
    restarts: u32,
    started: Option<(Instant, OffsetDateTime)>,
    last_error: Option<String>,
    failures: FailureWindow,
}

/// What the supervisor should do after a supervision event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (start events, expected stops, unknown actors).
    None,
    /// Restart the named child after the delay.
    Restart { name: String, after: Duration },
    /// Child `name` failed too often: it stays down; raise an alert.
    GaveUp { name: String, error: String },
}

/// The children of one supervisor.
pub struct Children {
    policy: RestartPolicy,
    records: Vec<ChildRecord>,
}

impl Children {
    pub fn new(policy: RestartPolicy) -> Self {
        Children {
            policy,
            records: Vec::new(),
        }
    }

    /// Adds a child spec and starts it.
    pub async fn add_and_start(
        &mut self,
        spec: ChildSpec,
        sup: &ActorCell,
    ) -> Result<usize, SpawnErr> {
        self.records.push(ChildRecord {
            spec,
            cell: None,
            state: ChildState::Starting,
            restarts: 0,
            started: None,
            last_error: None,
            failures: FailureWindow::default(),
        });
        let index = self.records.len() - 1;
        self.start(index, sup).await?;
        Ok(index)
    }

    /// (Re)starts child `index`.
    pub async fn start(&mut self, index: usize, sup: &ActorCell) -> Result<(), SpawnErr> {
        let rec = &mut self.records[index];
        rec.state = ChildState::Starting;
        let cell = (rec.spec.start)(sup.clone()).await?;
        rec.cell = Some(cell);
        rec.state = ChildState::Running;
        rec.started = Some((Instant::now(), OffsetDateTime::now_utc()));
        Ok(())
    }

    fn index_of(&self, cell: &ActorCell) -> Option<usize> {
        let id = cell.get_id();
        self.records
            .iter()
            .position(|r| r.cell.as_ref().map(|c| c.get_id()) == Some(id))
    }

    pub fn index_by_name(&self, name: &str) -> Option<usize> {
        self.records.iter().position(|r| r.spec.name == name)
    }

    /// Interprets a supervision event about one of the children.
    pub fn on_event(&mut self, evt: &SupervisionEvent) -> Decision {
        let (cell, error) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!(
                    "stopped unexpectedly ({})",
                    reason.as_deref().unwrap_or("no reason")
                ),
            ),
            _ => return Decision::None,
        };
        let Some(index) = self.index_of(cell) else {
            return Decision::None;
        };
        let rec = &mut self.records[index];
        rec.cell = None;
        rec.started = None;
        if matches!(rec.state, ChildState::Stopping | ChildState::Stopped) {
            rec.state = ChildState::Stopped;
            return Decision::None;
        }
        self.fail(index, error)
    }

    /// Records a failure of child `index` (it died, or a restart could not start it).
    fn fail(&mut self, index: usize, error: String) -> Decision {
        let rec = &mut self.records[index];
        let policy = rec
            .spec
            .policy
            .clone()
            .unwrap_or_else(|| self.policy.clone());
        rec.cell = None;
        rec.started = None;
        rec.last_error = Some(error.clone());
        let jitter: f64 = rand::random();
        match rec.failures.record(&policy, Instant::now(), jitter) {
            Verdict::RestartAfter(after) => {
                rec.state = ChildState::Restarting;
                rec.restarts += 1;
                tracing::warn!(child = %rec.spec.name, after_ms = after.as_millis() as u64, error = %error, "child failed; restarting");
                Decision::Restart {
                    name: rec.spec.name.clone(),
                    after,
                }
            }
            Verdict::GiveUp => {
                rec.state = ChildState::Failed;
                tracing::error!(child = %rec.spec.name, error = %error, "child failed too often; not restarting");
                Decision::GaveUp {
                    name: rec.spec.name.clone(),
                    error,
                }
            }
        }
    }

    /// Runs a scheduled restart of the named child, unless it was stopped or removed meanwhile.
    /// A child that cannot be started counts as failed again.
    pub async fn restart(&mut self, name: &str, sup: &ActorCell) -> Decision {
        let Some(index) = self.index_by_name(name) else {
            return Decision::None;
        };
        if self.records[index].state != ChildState::Restarting {
            return Decision::None;
        }
        match self.start(index, sup).await {
            Ok(()) => Decision::None,
            Err(e) => self.fail(index, format!("restart failed: {e}")),
        }
    }

    /// Makes the named child panic (fault injection). False when there is no such running child.
    pub fn crash(&self, name: &str) -> bool {
        self.records
            .iter()
            .find(|r| r.spec.name == name)
            .and_then(|r| r.cell.as_ref().map(|c| (r.spec.crash)(c)))
            .unwrap_or(false)
    }

    /// Status of every child, asking child supervisors for theirs.
    pub async fn status(&self) -> Vec<StatusNode> {
        let mut out = Vec::with_capacity(self.records.len());
        for rec in &self.records {
            let children = match (&rec.spec.status, &rec.cell) {
                (Some(f), Some(cell)) if rec.state == ChildState::Running => f(cell.clone()).await,
                _ => Vec::new(),
            };
            out.push(StatusNode {
                name: rec.spec.name.clone(),
                kind: rec.spec.kind.to_string(),
                state: rec.state,
                actor_id: rec.cell.as_ref().map(|c| c.get_id().to_string()),
                restarts: rec.restarts,
                uptime_secs: rec.started.map(|(i, _)| i.elapsed().as_secs_f64()),
                started_at: rec.started.and_then(|(_, t)| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                last_error: rec.last_error.clone(),
                children,
            });
        }
        out
    }

    /// Stops child `index` on purpose (no restart follows).
    pub async fn stop_one(&mut self, index: usize, timeout: Duration) -> bool {
        let rec = &mut self.records[index];
        rec.state = ChildState::Stopping;
        let Some(cell) = rec.cell.clone() else {
            rec.state = ChildState::Stopped;
            return true;
        };
        let ok = cell
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await
            .is_ok();
        if ok {
            rec.state = ChildState::Stopped;
            rec.cell = None;
            rec.started = None;
        }
        ok
    }

    /// Stops every child, last started first, within `deadline`; returns the names of those
    /// still running when it passed.
    pub async fn stop_all(&mut self, deadline: Duration) -> Vec<String> {
        let until = Instant::now() + deadline;
        let mut still_running = Vec::new();
        for index in (0..self.records.len()).rev() {
            let left = until.saturating_duration_since(Instant::now());
            if !self
                .stop_one(index, left.max(Duration::from_millis(1)))
                .await
            {
                still_running.push(self.records[index].spec.name.clone());
            }
        }
        still_running
    }

    /// [`Self::stop_all`] for a supervisor's `post_stop`: what is still running is logged.
    pub async fn stop_all_or_warn(&mut self, supervisor: &str, deadline: Duration) {
        let still = self.stop_all(deadline).await;
        if !still.is_empty() {
            tracing::warn!(supervisor, ?still, "children still running after stop");
        }
    }

    /// Removes the named child from the records after it was stopped.
    pub fn forget(&mut self, name: &str) {
        self.records.retain(|r| r.spec.name != name);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}
