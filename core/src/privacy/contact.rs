//! One contact of one user and everything stored of it ([`Footprint`]): the export and the
//! erasure both start here, so what one shows is what the other removes. A contact is named by
//! any spelling of its number and found the way lead sync finds leads: the number read in the
//! user's region ([`users::read_phone`]), folded to its contact key ([`phone::contact_key`]),
//! and leads typed in other formats found by the digits of its [`phone::spellings`].

use super::PrivacyError;
use crate::phone::{self, ContactKey};
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::users;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

/// The contact key of a number or WhatsApp id the API was given, read in the user's region
/// (else `fallback`, the daemon's `DEFAULT_REGION`).
pub async fn key_of(
    client: &impl GenericClient,
    usuario_id: Uuid,
    raw: &str,
    fallback: Option<&str>,
) -> Result<ContactKey, PrivacyError> {
    let raw = raw.trim();
    // A WhatsApp id that is not a number (`<id>@lid`) is its own key.
    if raw.contains('@') && raw.len() <= 64 && !raw.chars().any(char::is_whitespace) {
        return Ok(phone::contact_key(raw, None));
    }
    match users::read_phone(client, usuario_id, raw, None, fallback).await {
        Ok(n) => Ok(phone::contact_key(&n.e164, None)),
        Err(users::UserError::Store(e)) => Err(e.into()),
        // A WhatsApp id libphonenumber cannot place is keyed by its digits, as ingest keys it.
        Err(_)
            if raw.chars().filter(char::is_ascii_digit).count() >= 5
                && raw
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c)) =>
        {
            let region = users::region(client, usuario_id, fallback).await?;
            Ok(phone::contact_key(raw, region.as_deref()))
        }
        Err(_) => Err(PrivacyError::InvalidContact(
            "write the number in E.164, e.g. +5511987654321".into(),
        )),
    }
}

/// The contact key of the user's lead `lead_id` (its number as stored).
pub async fn key_of_lead(
    client: &impl GenericClient,
    usuario_id: Uuid,
    lead_id: Uuid,
) -> Result<ContactKey, PrivacyError> {
    let row = client
        .query_opt(
            "SELECT telefono FROM leads WHERE id = $1 AND usuario_id = $2",
            &[&lead_id, &usuario_id],
        )
        .await?
        .ok_or(PrivacyError::LeadNotFound)?;
    let telefono: Option<String> = row.get(0);
    let telefono = telefono.ok_or(PrivacyError::LeadNotFound)?;
    let region = users::region(client, usuario_id, None).await?;
    Ok(phone::contact_key(&telefono, region.as_deref()))
}

/// Everything stored of one contact of one user.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub usuario_id: Uuid,
    pub key: ContactKey,
    /// Its leads, and every lead merged into them.
    pub leads: Vec<Uuid>,
    pub conversations: Vec<Uuid>,
    pub messages: Vec<Uuid>,
    /// The provider's ids of its messages (wamids, WhatsApp Web ids): statuses name them.
    pub external_ids: Vec<String>,
    /// Its media files (those its messages name or are linked to) that no other message of
    /// the user names or is linked to: an erasure removes these.
    pub media: Vec<Uuid>,
    /// Files its messages name that other messages use too (one upload or link sent to many
    /// contacts, a received file forwarded): exported with the contact, kept by an erasure so
    /// the other messages, queued ones too, keep their file.
    pub shared_media: Vec<Uuid>,
    /// How many consent rows it has.
    pub consent_rows: i64,
}

impl Footprint {
    /// Whether nothing at all is stored of the contact.
    pub fn is_empty(&self) -> bool {
        self.leads.is_empty() && self.conversations.is_empty() && self.consent_rows == 0
    }

    /// The strings an event or webhook body names the contact by: its ids and its number's
    /// spellings (international digits, and the WhatsApp id forms).
    pub fn markers(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .leads
            .iter()
            .chain(&self.conversations)
            .chain(&self.messages)
            .chain(&self.media)
            .map(Uuid::to_string)
            .chain(self.external_ids.iter().cloned())
            .collect();
        out.push(self.key.key.clone());
        let digits: String = self.key.key.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            out.push(phone::whatsapp_digits(&digits));
            out.extend(
                phone::spellings(&self.key)
                    .into_iter()
                    .filter(|s| s.len() >= 8 && s.starts_with(&self.key.country_code.to_string())),
            );
            out.push(digits);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Finds everything stored of contact `key` of `usuario_id`.
pub async fn footprint(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    key: ContactKey,
    fallback: Option<&str>,
) -> Result<Footprint, PrivacyError> {
    let region = users::region(client, usuario_id, fallback).await?;
    let leads = leads_of(client, usuario_id, &key, region.as_deref()).await?;
    let conversations: Vec<Uuid> = client
        .query(
            "SELECT id FROM conversaciones WHERE usuario_id = $1 AND (remitente = $2 OR lead_id = ANY($3))
             ORDER BY created_at, id",
            &[&usuario_id, &key.key, &leads],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows = client
        .query(
            "SELECT id, metadata, external_id FROM mensajes_conversacion WHERE conversacion_id = ANY($1)",
            &[&conversations],
        )
        .await?;
    let messages: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let external_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(2))
        .filter(|e| e.len() >= 8)
        .collect();
    // Media a message names: linked inbound files (`media_id`), and the ids in the sealed
    // request of a message sent with an uploaded file.
    let mut named: Vec<String> = Vec::new();
    for row in &rows {
        let meta: Value = row.get(1);
        if let Some(id) = meta.get("media_id").and_then(Value::as_str) {
            named.push(id.to_string());
        }
        if let Some(sealed) = meta.get("payload_sealed").and_then(Value::as_str)
            && let Ok(plain) = sealer.open(Purpose::MessageBody, sealed)
            && let Ok(payload) = serde_json::from_slice::<Value>(&plain)
        {
            strings(&payload, &mut named);
        }
    }
    let candidates: Vec<MediaRow> = client
        .query(
            "SELECT id, provider_id, message_id, created_at FROM media WHERE usuario_id = $1
               AND (message_id = ANY($2) OR id::text = ANY($3) OR provider_id = ANY($3))
             ORDER BY created_at, id",
            &[&usuario_id, &messages, &named],
        )
        .await?
        .iter()
        .map(|r| MediaRow {
            id: r.get(0),
            provider_id: r.get(1),
            message_id: r.get(2),
            created_at: r.get(3),
        })
        .collect();
    let used = used_elsewhere(
        client,
        sealer,
        usuario_id,
        &conversations,
        &messages,
        &candidates,
    )
    .await?;
    let (shared_media, media): (Vec<Uuid>, Vec<Uuid>) = candidates
        .iter()
        .map(|m| m.id)
        .partition(|id| used.contains(id));
    let consent_rows: i64 = client
        .query_one(
            "SELECT count(*) FROM contact_consent WHERE usuario_id = $1 AND contact = $2",
            &[&usuario_id, &key.key],
        )
        .await?
        .get(0);
    Ok(Footprint {
        usuario_id,
        key,
        leads,
        conversations,
        messages,
        external_ids,
        media,
        shared_media,
        consent_rows,
    })
}

/// A media row a contact's messages name or are linked to.
struct MediaRow {
    id: Uuid,
    provider_id: Option<String>,
    message_id: Option<Uuid>,
    created_at: time::OffsetDateTime,
}

/// Which of `candidates` another message of the user (outside `conversations`) is linked to
/// or names in its sealed request. Only messages written since the oldest candidate can name
/// one, so an erasure reads those, not the user's whole history.
async fn used_elsewhere(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    conversations: &[Uuid],
    messages: &[Uuid],
    candidates: &[MediaRow],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut used: HashSet<Uuid> = candidates
        .iter()
        .filter(|m| m.message_id.is_some_and(|id| !messages.contains(&id)))
        .map(|m| m.id)
        .collect();
    let Some(oldest) = candidates.iter().map(|m| m.created_at).min() else {
        return Ok(used);
    };
    let rows = client
        .query(
            "SELECT metadata->>'payload_sealed' FROM mensajes_conversacion
             WHERE usuario_id = $1 AND NOT (conversacion_id = ANY($2))
               AND metadata ? 'payload_sealed' AND created_at >= $3",
            &[&usuario_id, &conversations, &oldest],
        )
        .await?;
    let mut named: HashSet<String> = HashSet::new();
    for row in &rows {
        let sealed: Option<String> = row.get(0);
        if let Some(sealed) = sealed
            && let Ok(plain) = sealer.open(Purpose::MessageBody, &sealed)
            && let Ok(payload) = serde_json::from_slice::<Value>(&plain)
        {
            let mut found = Vec::new();
            strings(&payload, &mut found);
            named.extend(found);
        }
    }
    used.extend(
        candidates
            .iter()
            .filter(|m| {
                named.contains(&m.id.to_string())
                    || m.provider_id.as_ref().is_some_and(|p| named.contains(p))
            })
            .map(|m| m.id),
    );
    Ok(used)
}

/// Every string leaf of `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The user's leads of contact `key` (its number as stored, or typed in another format that
/// folds to the same key), with every lead merged into them.
async fn leads_of(
    client: &impl GenericClient,
    usuario_id: Uuid,
    key: &ContactKey,
    region: Option<&str>,
) -> Result<Vec<Uuid>, StoreError> {
    let spellings = phone::spellings(key);
    let rows = client
        .query(
            "SELECT id, telefono FROM leads WHERE usuario_id = $1
               AND (telefono = $2 OR regexp_replace(telefono, '\\D', '', 'g') = ANY($3))
             ORDER BY created_at, id",
            &[&usuario_id, &key.key, &spellings],
        )
        .await?;
    let mut ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| {
            let telefono: String = r.get(1);
            telefono == key.key || phone::contact_key(&telefono, region).key == key.key
        })
        .map(|r| r.get(0))
        .collect();
    let mut frontier = ids.clone();
    while !frontier.is_empty() {
        frontier = client
            .query(
                "SELECT id FROM leads WHERE merged_into = ANY($1) AND NOT (id = ANY($2))",
                &[&frontier, &ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.extend(&frontier);
    }
    Ok(ids)
}
