//! A contact that changed number. WhatsApp says so with a Business `system` message of type
//! `user_changed_number` (`from` the old number, `system.wa_id` the new one; the Cloud API
//! parser keeps them in `details.system_type` / `details.new_wa_id`). The lead follows the
//! person: its `telefono` becomes the new number (the old one is kept in
//! `metadata.telefonos_anteriores`), the contact's conversations are re-keyed so the history
//! continues, a lead that already held the new number is merged into it, and a `lead.updated`
//! event says so. The change is recorded (`contact_number_changes`) so that messages still
//! arriving from the old number are filed under the new one ([`current_keys`]).

use crate::ingest::model::InboundMessage;
use crate::leads::store as leads;
use crate::phone;
use crate::store::StoreError;
use crate::store::events::NewEvent;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// `system.type` of a number change.
pub const USER_CHANGED_NUMBER: &str = "user_changed_number";

/// The new WhatsApp id (digits) a stored message reports for its sender, if it reports one.
pub fn new_number(m: &InboundMessage) -> Option<String> {
    if m.details.get("system_type").and_then(Value::as_str) != Some(USER_CHANGED_NUMBER) {
        return None;
    }
    let digits: String = m
        .details
        .get("new_wa_id")
        .and_then(Value::as_str)?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// For each `(usuario_id, contact key)`, the key it stands for now when the contact changed
/// number; keys that did not change are absent. One query, none for an empty input.
pub async fn current_keys(
    tx: &impl GenericClient,
    keys: &[(Uuid, String)],
) -> Result<HashMap<(Uuid, String), String>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (users, olds): (Vec<Uuid>, Vec<String>) = keys.iter().cloned().unzip();
    // Prepared once per pooled connection: every ingest batch runs it.
    let statement = tx
        .prepare_cached(
            "SELECT c.usuario_id, c.old_key, c.new_key FROM contact_number_changes c
             JOIN unnest($1::uuid[], $2::text[]) AS k(u, t) ON c.usuario_id = k.u AND c.old_key = k.t",
        )
        .await?;
    let rows = tx.query(&statement, &[&users, &olds]).await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// Moves lead `lead_id` (found by `old_key`) to the number `new_wa_id`, inside the ingest
/// transaction, and appends what changed to `events`.
pub async fn apply(
    tx: &impl GenericClient,
    usuario_id: Uuid,
    lead_id: Uuid,
    old_key: &str,
    new_wa_id: &str,
    events: &mut Vec<NewEvent>,
) -> Result<(), StoreError> {
    let new_key = phone::contact_key(&format!("+{new_wa_id}"), None).key;
    if new_key == old_key {
        return Ok(());
    }
    // Record the change; earlier changes that led to the old number now lead to the new one.
    tx.execute(
        "INSERT INTO contact_number_changes (usuario_id, old_key, new_key, lead_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (usuario_id, old_key) DO UPDATE SET new_key = EXCLUDED.new_key,
             lead_id = EXCLUDED.lead_id, changed_at = now()",
        &[&usuario_id, &old_key, &new_key, &lead_id],
    )
    .await?;
    tx.execute(
        "UPDATE contact_number_changes SET new_key = $3, changed_at = now()
         WHERE usuario_id = $1 AND new_key = $2",
        &[&usuario_id, &old_key, &new_key],
    )
    .await?;
    tx.execute(
        "DELETE FROM contact_number_changes WHERE usuario_id = $1 AND old_key = $2",
        &[&usuario_id, &new_key],
    )
    .await?;
    // A lead that already holds the new number is the same person: merged into this one,
    // its number set aside as a merged lead's is.
    let others: Vec<Uuid> = tx
        .query(
            "UPDATE leads SET telefono = NULL,
                 metadata = metadata || jsonb_build_object('telefono_original', telefono), updated_at = now()
             WHERE usuario_id = $1 AND telefono = $2 AND id <> $3 AND merged_into IS NULL
             RETURNING id",
            &[&usuario_id, &new_key, &lead_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !others.is_empty() {
        leads::merge_into(tx, lead_id, &others).await?;
        events.push(NewEvent {
            usuario_id,
            kind: "lead.merged",
            data: json!({"lead_id": lead_id, "merged_ids": others, "telefono": new_key}),
        });
    }
    tx.execute(
        "UPDATE leads SET telefono = $2,
             metadata = metadata || jsonb_build_object('wa_id', $3::text, 'telefonos_anteriores',
                 COALESCE(metadata->'telefonos_anteriores', '[]'::jsonb) || to_jsonb($4::text)),
             updated_at = now()
         WHERE id = $1",
        &[&lead_id, &new_key, &new_wa_id, &old_key],
    )
    .await?;
    // The history continues: the contact's conversations take the new key, except where
    // the connection already has one under it (that one is the lead's now, by the merge).
    tx.execute(
        "UPDATE conversaciones c SET remitente = $3, lead_id = $4,
             metadata = c.metadata || jsonb_build_object('wa_id', $5::text), updated_at = now()
         WHERE c.usuario_id = $1 AND c.remitente = $2 AND c.servicio_origen = 'whatsapp'
           AND NOT EXISTS (SELECT 1 FROM conversaciones x WHERE x.usuario_id = c.usuario_id
                   AND x.connection_id = c.connection_id AND x.remitente = $3
                   AND x.servicio_origen = 'whatsapp')",
        &[&usuario_id, &old_key, &new_key, &lead_id, &new_wa_id],
    )
    .await?;
    events.push(NewEvent {
        usuario_id,
        kind: "lead.updated",
        data: json!({
            "lead_id": lead_id,
            "reason": USER_CHANGED_NUMBER,
            "previous_telefono": old_key,
            "changes": {"telefono": new_key, "wa_id": new_wa_id},
        }),
    });
    Ok(())
}
