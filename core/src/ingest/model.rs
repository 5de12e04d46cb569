//! The one normalised shape of inbound traffic, shared by Business (webhooks) and Lite (page
//! events): a message from a contact, or a status update of a message we sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// `mensajes_conversacion.tipo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Texto,
    Imagen,
    Audio,
    Video,
    Documento,
    Sticker,
    Ubicacion,
    Contacto,
    Interactivo,
    Plantilla,
    Reaccion,
    Sistema,
    /// A type the provider marks unsupported, or one we do not know: stored as such.
    Desconocido,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Texto => "texto",
            MessageKind::Imagen => "imagen",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Documento => "documento",
            MessageKind::Sticker => "sticker",
            MessageKind::Ubicacion => "ubicacion",
            MessageKind::Contacto => "contacto",
            MessageKind::Interactivo => "interactivo",
            MessageKind::Plantilla => "plantilla",
            MessageKind::Reaccion => "reaccion",
            MessageKind::Sistema => "sistema",
            MessageKind::Desconocido => "desconocido",
        }
    }
}

/// A message a contact sent to one of the user's connections, or one the user sent to a contact
/// from their own phone or Business app (`outgoing`). Serializable: the durable inbox keeps Lite
/// items in this shape until Ingest has stored them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundMessage {
    pub usuario_id: Uuid,
    /// `configuracion_mensajeria_usuario.id` of the Lite session or Business number.
    pub connection_id: Uuid,
    /// wamid (Business) or WhatsApp Web message id (Lite): the dedupe key per connection.
    pub external_id: String,
    /// The contact's number as the provider gives it (`wa_id` digits, or `+E.164`). For an
    /// `outgoing` message, the contact it was sent to.
    pub from: String,
    /// Sent from the user's own phone (Lite `fromMe` not sent by the daemon) or Business app
    /// (coexistence echoes), not by the daemon: stored as `saliente`, estado `sent`.
    #[serde(default)]
    pub outgoing: bool,
    /// The contact's WhatsApp profile name and picture, when known.
    pub profile_name: Option<String>,
    pub profile_picture_url: Option<String>,
    pub kind: MessageKind,
    /// Body or caption; sealed at rest.
    pub text: Option<String>,
    /// The provider's type-specific object (media ids, location, contacts...); sealed at rest.
    pub payload: Value,
    /// Non-content details kept in clear in `metadata` (mime type, context ids, flags).
    pub details: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// Where a sent message is now. Ordered: a status only ever moves up this order
/// (`Failed` is final), whatever order updates arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estado {
    Queued = 0,
    Sent = 1,
    Delivered = 2,
    Read = 3,
    Failed = 4,
}

impl Estado {
    pub fn as_str(self) -> &'static str {
        match self {
            Estado::Queued => "queued",
            Estado::Sent => "sent",
            Estado::Delivered => "delivered",
            Estado::Read => "read",
            Estado::Failed => "failed",
        }
    }

    /// Parses a provider status; `played` (a voice note was played) counts as read.
    pub fn parse(status: &str) -> Option<Estado> {
        Some(match status {
            "queued" => Estado::Queued,
            "sent" => Estado::Sent,
            "delivered" => Estado::Delivered,
            "read" | "played" => Estado::Read,
            "failed" => Estado::Failed,
            _ => return None,
        })
    }

    pub fn rank(self) -> i32 {
        self as i32
    }
}

/// A status update of a message sent through one of the user's connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub usuario_id: Uuid,
    pub connection_id: Uuid,
    pub external_id: String,
    pub estado: Estado,
    /// Provider error (code and title), for `failed`.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Our message id when the provider echoed it (Business: `biz_opaque_callback_data` set
    /// on the send): resolves a send whose answer was lost.
    pub message_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum InboundItem {
    Message(InboundMessage),
    Status(StatusUpdate),
}

/// What one batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub messages_inserted: usize,
    pub messages_duplicate: usize,
    pub statuses_applied: usize,
    pub statuses_ignored: usize,
    pub statuses_pending: usize,
    pub leads_created: usize,
    pub leads_merged: usize,
    pub events: usize,
    /// Automatic answers decided in the batch, queued once it committed.
    pub auto_replies: Vec<crate::crm::reply::Due>,
}

impl IngestReport {
    /// Adds another batch's counts (a step that stored its items in several batches).
    pub fn add(&mut self, o: &IngestReport) {
        self.messages_inserted += o.messages_inserted;
        self.messages_duplicate += o.messages_duplicate;
        self.statuses_applied += o.statuses_applied;
        self.statuses_ignored += o.statuses_ignored;
        self.statuses_pending += o.statuses_pending;
        self.leads_created += o.leads_created;
        self.leads_merged += o.leads_merged;
        self.events += o.events;
        self.auto_replies.extend(o.auto_replies.iter().cloned());
    }
}
