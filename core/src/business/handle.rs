//! The typed ways into the Business actors: [`BusinessSupervisorHandle`] (connect, disconnect,
//! reach a number) and [`BusinessNumberHandle`] (templates, media uploads), each call with its
//! named timeout. The supervisor's refusals are [`BusinessSupervisorError`]; a number's are
//! [`BusinessError`], whose `NotRunning` and `TimedOut` say the number did not answer.

use super::BusinessError;
use super::error::BusinessSupervisorError;
use super::number::BusinessNumberMessage;
use super::supervisor::BusinessSupervisorMessage;
use super::templates::SyncReport;
use crate::supervision::{Slot, ask, ask_slot};
use ractor::ActorRef;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Connecting replaces a running actor: the old one gets up to 10 s to stop (the
/// supervisor's own stop timeout), then the new one starts.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Disconnecting waits for the number's actor to stop (up to 10 s), with a margin.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Looking up a running number is answered from the supervisor's memory.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Template calls go to Meta, sometimes several pages of them (a sync reads every template).
pub const TEMPLATE_TIMEOUT: Duration = Duration::from_secs(60);
/// An upload sends a file of up to 100 MB to Meta.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The BusinessSupervisor of one daemon, whichever incarnation runs now.
#[derive(Clone)]
pub struct BusinessSupervisorHandle {
    slot: Slot<BusinessSupervisorMessage>,
}

impl BusinessSupervisorHandle {
    pub fn new(slot: Slot<BusinessSupervisorMessage>) -> Self {
        BusinessSupervisorHandle { slot }
    }

    /// Whether a BusinessSupervisor runs now.
    pub fn is_running(&self) -> bool {
        self.slot.get().is_some()
    }

    /// Starts the number's actor, or replaces it (it reads its row anew).
    pub async fn connect(&self, connection_id: Uuid) -> Result<(), BusinessSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| BusinessSupervisorMessage::Connect {
                connection_id,
                reply,
            },
            CONNECT_TIMEOUT,
        )
        .await?
    }

    /// Stops the number's actor for good (the number was removed).
    pub async fn disconnect(&self, connection_id: Uuid) -> Result<(), BusinessSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| BusinessSupervisorMessage::Disconnect {
                connection_id,
                reply,
            },
            DISCONNECT_TIMEOUT,
        )
        .await
        .map_err(Into::into)
    }

    /// The number's running actor.
    pub async fn number(
        &self,
        connection_id: Uuid,
    ) -> Result<BusinessNumberHandle, BusinessSupervisorError> {
        ask_slot(
            &self.slot,
            |reply| BusinessSupervisorMessage::Number {
                connection_id,
                reply,
            },
            LOOKUP_TIMEOUT,
        )
        .await?
        .map(BusinessNumberHandle::new)
        .ok_or(BusinessSupervisorError::NumberNotRunning)
    }

    /// Starts, replaces or stops this node's actor of the number by what the store says now
    /// (another node changed it); nothing if the supervisor is restarting, as it loads the
    /// numbers at start.
    pub fn reload(&self, connection_id: Uuid) {
        if let Some(sup) = self.slot.get() {
            let _ = sup.cast(BusinessSupervisorMessage::Reload(connection_id));
        }
    }
}

/// One running BusinessNumber.
#[derive(Clone)]
pub struct BusinessNumberHandle {
    actor: ActorRef<BusinessNumberMessage>,
}

impl BusinessNumberHandle {
    pub fn new(actor: ActorRef<BusinessNumberMessage>) -> Self {
        BusinessNumberHandle { actor }
    }

    /// Waits until the work the number does at start (template sync, throughput level) is
    /// over, whatever its outcome.
    pub async fn start_done(&self) -> Result<(), BusinessError> {
        ask(
            &self.actor,
            BusinessNumberMessage::StartDone,
            TEMPLATE_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// Re-reads the account's templates from Meta into the store.
    pub async fn sync_templates(&self) -> Result<SyncReport, BusinessError> {
        ask(
            &self.actor,
            BusinessNumberMessage::SyncTemplates,
            TEMPLATE_TIMEOUT,
        )
        .await?
    }

    /// Creates a template at Meta (body as Meta takes it), recorded PENDING.
    pub async fn create_template(&self, body: Value) -> Result<Value, BusinessError> {
        ask(
            &self.actor,
            |reply| BusinessNumberMessage::CreateTemplate { body, reply },
            TEMPLATE_TIMEOUT,
        )
        .await?
    }

    /// Deletes a template at Meta (every language, or one) and its rows; how many rows went.
    pub async fn delete_template(
        &self,
        name: String,
        language: Option<String>,
    ) -> Result<u64, BusinessError> {
        ask(
            &self.actor,
            |reply| BusinessNumberMessage::DeleteTemplate {
                name,
                language,
                reply,
            },
            TEMPLATE_TIMEOUT,
        )
        .await?
    }

    /// Uploads a stored media file to Meta; Meta's media id.
    pub async fn upload_media(&self, media_id: Uuid) -> Result<String, BusinessError> {
        ask(
            &self.actor,
            |reply| BusinessNumberMessage::UploadMedia { media_id, reply },
            UPLOAD_TIMEOUT,
        )
        .await?
    }
}
