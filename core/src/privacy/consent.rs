//! A contact's consent to be messaged: the opt-out keywords an inbound message may be (the
//! whole text, trimmed, compared without case or accents), the consent history of a contact
//! (`contact_consent`, newest row wins), and the rule sends obey: `bulk` priority messages and
//! MARKETING templates are refused to an opted-out contact, service replies still go.
//!
//! [`opted_out`] is the one question other features ask (the send check here, the CRM's
//! auto-reply): whether a contact of a user is opted out now, named by any spelling of its
//! number or by its lead.

use super::PrivacyError;
use crate::store::StoreError;
use crate::store::events::NewEvent;
use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};
use std::collections::HashSet;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;

/// The keywords used when `OPT_OUT_KEYWORDS` is not set.
pub const DEFAULT_KEYWORDS: &[&str] = &["STOP", "PARAR", "SAIR", "BAJA", "CANCELAR"];

/// `contact_consent.source` of an opt-out a contact's own message gave.
pub const SOURCE_KEYWORD: &str = "keyword";

/// Opt-out keywords, kept folded ([`fold`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords(Vec<String>);

impl Default for Keywords {
    fn default() -> Self {
        Keywords::new(DEFAULT_KEYWORDS.iter().copied())
    }
}

impl Keywords {
    /// The keywords of a comma-separated list (`OPT_OUT_KEYWORDS`); empty entries are left out,
    /// so an empty list turns detection off.
    pub fn parse(list: &str) -> Keywords {
        Keywords::new(list.split(','))
    }

    fn new<'a>(words: impl Iterator<Item = &'a str>) -> Keywords {
        let mut folded: Vec<String> = words.map(fold).filter(|w| !w.is_empty()).collect();
        folded.sort();
        folded.dedup();
        Keywords(folded)
    }

    /// Whether the whole of `text` (trimmed) is one of the keywords.
    pub fn matches(&self, text: &str) -> bool {
        let folded = fold(text);
        !folded.is_empty() && self.0.contains(&folded)
    }
}

/// `text` trimmed, without accents (decomposed, combining marks dropped) and lower-case:
/// "  Cancelár " and "CANCELAR" fold alike.
pub fn fold(text: &str) -> String {
    text.trim()
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// A contact as callers name it.
#[derive(Debug, Clone, Copy)]
pub enum ContactRef<'a> {
    /// Any spelling of its number (national formats read in the user's region), or its
    /// WhatsApp id.
    Phone(&'a str),
    /// One of the user's leads (a lead merged into another stands for the same person).
    Lead(Uuid),
}

/// Whether the contact is opted out now (its newest consent row says so). A contact never
/// seen is not. The question the CRM's auto-reply and the send check ask.
pub async fn opted_out(
    pool: &Pool,
    usuario_id: Uuid,
    contact: ContactRef<'_>,
) -> Result<bool, PrivacyError> {
    let client = pool.get().await?;
    let key = match contact {
        ContactRef::Phone(raw) => super::contact::key_of(&client, usuario_id, raw, None).await?,
        ContactRef::Lead(id) => super::contact::key_of_lead(&client, usuario_id, id).await?,
    };
    Ok(state(&client, usuario_id, &key.key).await?.unwrap_or(false))
}

/// The newest consent of contact `key` (`Some(true)`: opted out), None when none is recorded.
pub async fn state(
    client: &impl GenericClient,
    usuario_id: Uuid,
    key: &str,
) -> Result<Option<bool>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT opted_out FROM contact_consent WHERE usuario_id = $1 AND contact = $2
             ORDER BY id DESC LIMIT 1",
            &[&usuario_id, &key],
        )
        .await?
        .map(|r| r.get(0)))
}

/// One consent given: by a keyword message, or recorded through the API with its source.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub usuario_id: Uuid,
    /// The contact key (the lead's `telefono`).
    pub contact: &'a str,
    pub opted_out: bool,
    /// Where it was given (`keyword`, or what the CRM names: `web_form`, `phone_call`...).
    pub source: &'a str,
    /// The message that gave it, for a keyword.
    pub message_id: Option<Uuid>,
}

/// Records `change` in the contact's history and on its lead (`metadata.opted_out`), inside
/// the caller's transaction; returns the lead's `lead.updated` event for the caller to append
/// (none when the contact has no lead).
pub async fn record(
    tx: &impl GenericClient,
    change: &Change<'_>,
) -> Result<Option<NewEvent>, StoreError> {
    tx.execute(
        "INSERT INTO contact_consent (usuario_id, contact, opted_out, source, message_id)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &change.usuario_id,
            &change.contact,
            &change.opted_out,
            &change.source,
            &change.message_id,
        ],
    )
    .await?;
    let lead = tx
        .query_opt(
            "UPDATE leads SET metadata = metadata || jsonb_build_object('opted_out', $3::bool,
                 'consent_source', $4::text, 'consent_at', now()), updated_at = now()
             WHERE usuario_id = $1 AND telefono = $2 AND merged_into IS NULL RETURNING id",
            &[
                &change.usuario_id,
                &change.contact,
                &change.opted_out,
                &change.source,
            ],
        )
        .await?;
    Ok(lead.map(|row| NewEvent {
        usuario_id: change.usuario_id,
        kind: "lead.updated",
        data: json!({
            "lead_id": row.get::<_, Uuid>(0),
            "changes": {"opted_out": change.opted_out, "consent_source": change.source},
        }),
    }))
}

/// An inbound message just stored, as the opt-out detector needs it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub usuario_id: Uuid,
    /// The sender's contact key.
    pub contact: &'a str,
    pub text: &'a str,
    pub message_id: Uuid,
}

/// The opt-out detector of the inbound path (called by the ingest batch, in its transaction):
/// each message that is exactly a keyword opts its sender out, unless already opted out,
/// with a consent row, the lead's change and an audit row (no content). Returns the events.
pub async fn detect_opt_outs(
    tx: &impl GenericClient,
    keywords: &Keywords,
    messages: &[Inbound<'_>],
) -> Result<Vec<NewEvent>, StoreError> {
    let mut events = Vec::new();
    for m in messages.iter().filter(|m| keywords.matches(m.text)) {
        if state(tx, m.usuario_id, m.contact).await? == Some(true) {
            continue;
        }
        let change = Change {
            usuario_id: m.usuario_id,
            contact: m.contact,
            opted_out: true,
            source: SOURCE_KEYWORD,
            message_id: Some(m.message_id),
        };
        let event = record(tx, &change).await?;
        let lead = event.as_ref().map(|e| e.data["lead_id"].clone());
        audit(
            tx,
            m.usuario_id,
            "contact.opted_out",
            lead.as_ref(),
            m.message_id,
        )
        .await?;
        metrics::counter!("sincro_privacy_opt_outs_total").increment(1);
        events.extend(event);
    }
    Ok(events)
}

/// An audit row written by the daemon itself (no API key): the action, the lead and the
/// message that caused it.
async fn audit(
    tx: &impl GenericClient,
    usuario_id: Uuid,
    action: &str,
    lead: Option<&Value>,
    message_id: Uuid,
) -> Result<(), StoreError> {
    let target = lead.and_then(Value::as_str);
    tx.execute(
        "INSERT INTO audit_log (usuario_id, action, target, outcome, details)
         VALUES ($1, $2, $3, 'ok', $4)",
        &[
            &usuario_id,
            &action,
            &target,
            &json!({"source": SOURCE_KEYWORD, "message_id": message_id}),
        ],
    )
    .await?;
    Ok(())
}

/// Which of the contact keys `keys` of `usuario_id` are opted out now (each one's newest
/// consent row says so): one query for a whole batch of sends.
pub async fn opted_out_among(
    client: &impl GenericClient,
    usuario_id: Uuid,
    keys: &[String],
) -> Result<HashSet<String>, StoreError> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (contact) contact, opted_out FROM contact_consent
              WHERE usuario_id = $1 AND contact = ANY($2)
              ORDER BY contact, id DESC",
            &[&usuario_id, &keys],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect())
}

/// Which of `(connection, name, language)` are MARKETING templates: what an opted-out contact
/// must not receive.
pub async fn marketing_templates(
    client: &impl GenericClient,
    wanted: &[(Uuid, String, String)],
) -> Result<HashSet<(Uuid, String, String)>, StoreError> {
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let (ids, (names, languages)): (Vec<Uuid>, (Vec<String>, Vec<String>)) =
        wanted.iter().cloned().map(|(c, n, l)| (c, (n, l))).unzip();
    let rows = client
        .query(
            "SELECT t.connection_id, t.name, t.language FROM whatsapp_templates t
               JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS w(c, n, l)
                 ON t.connection_id = w.c AND t.name = w.n AND t.language = w.l
              WHERE upper(t.category) = 'MARKETING'",
            &[&ids, &names, &languages],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// A contact's consent as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The contact key.
    pub contact: String,
    pub opted_out: bool,
    /// Oldest first.
    pub history: Vec<Value>,
}

async fn status_of(
    client: &impl GenericClient,
    usuario_id: Uuid,
    contact: String,
) -> Result<Status, StoreError> {
    Ok(Status {
        opted_out: state(client, usuario_id, &contact).await? == Some(true),
        history: history(client, usuario_id, &contact).await?,
        contact,
    })
}

/// The consent of contact `raw` (any spelling of its number) of `usuario_id`.
pub async fn status(
    pool: &Pool,
    usuario_id: Uuid,
    raw: &str,
    fallback_region: Option<&str>,
) -> Result<Status, PrivacyError> {
    let client = pool.get().await?;
    let key = super::contact::key_of(&client, usuario_id, raw, fallback_region).await?;
    Ok(status_of(&client, usuario_id, key.key).await?)
}

/// Records an opt-in or opt-out given elsewhere (`POST /v1/contacts/{phone}/consent`) with its
/// source, in one transaction with the lead's change and its event.
pub async fn give(
    pool: &Pool,
    sealer: &crate::seal::Sealer,
    usuario_id: Uuid,
    raw: &str,
    fallback_region: Option<&str>,
    opted_out: bool,
    source: &str,
) -> Result<Status, PrivacyError> {
    let source = source.trim();
    if source.is_empty() || source.chars().count() > 64 || source.chars().any(char::is_control) {
        return Err(PrivacyError::Invalid(
            "invalid_source",
            "source must be 1 to 64 printable characters naming where consent was given".into(),
        ));
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let key = super::contact::key_of(&tx, usuario_id, raw, fallback_region).await?;
    let change = Change {
        usuario_id,
        contact: &key.key,
        opted_out,
        source,
        message_id: None,
    };
    if let Some(event) = record(&tx, &change).await? {
        crate::store::events::append_many(&tx, sealer, &[event]).await?;
    }
    let status = status_of(&tx, usuario_id, key.key.clone()).await?;
    tx.commit().await?;
    Ok(status)
}

/// A contact's consent history, oldest first, for its export.
pub async fn history(
    client: &impl GenericClient,
    usuario_id: Uuid,
    key: &str,
) -> Result<Vec<Value>, StoreError> {
    let rows = client
        .query(
            "SELECT opted_out, source, message_id, created_at FROM contact_consent
             WHERE usuario_id = $1 AND contact = $2 ORDER BY id",
            &[&usuario_id, &key],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "opted_out": r.get::<_, bool>(0),
                "source": r.get::<_, String>(1),
                "message_id": r.get::<_, Option<Uuid>>(2),
                "at": r.get::<_, time::OffsetDateTime>(3).unix_timestamp(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_the_whole_text_without_case_or_accents() {
        let k = Keywords::default();
        for yes in [
            "STOP",
            " stop ",
            "Parar",
            "sAIR",
            "baja",
            "Cancelár",
            "CANCELAR\n",
        ] {
            assert!(k.matches(yes), "{yes:?}");
        }
        for no in ["stop please", "", "  ", "cancel", "STOPP", "não pare"] {
            assert!(!k.matches(no), "{no:?}");
        }
        let custom = Keywords::parse("Descadastrar, ÁLTO,,");
        assert!(custom.matches("descadastrar"));
        assert!(custom.matches("alto"));
        assert!(!custom.matches("stop"));
        assert!(!Keywords::parse("").matches("stop"));
    }
}
