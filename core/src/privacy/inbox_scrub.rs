//! Erasing a contact from the inbound inbox (`webhook_inbox`), whose sealed bodies are kept
//! after they are drained (replays, retention). A Lite row holds one page event's items; a
//! Meta body may batch several contacts and several numbers. Only the erased contact's part is
//! removed: the items, messages, statuses and contact entries that name it (by number, WhatsApp
//! id, message id or external id), and only in changes of the user's own numbers; the rest is
//! sealed again in place. A body left with nothing is deleted, with the dead letters naming it.

use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

/// What scrubbing did to one body.
#[derive(Debug, Clone, PartialEq)]
pub enum Scrubbed {
    /// It never named the contact.
    Unchanged,
    /// The contact's part was removed; the rest is this body.
    Rewritten(Value),
    /// Nothing is left.
    Emptied,
}

/// Whether `v`'s JSON text contains one of `markers`.
fn names(v: &Value, markers: &[String]) -> bool {
    let text = v.to_string();
    markers.iter().any(|m| text.contains(m.as_str()))
}

/// Removes the elements of `items` that name the contact; whether any did.
fn drop_naming(items: &mut Vec<Value>, markers: &[String]) -> bool {
    let before = items.len();
    items.retain(|x| !names(x, markers));
    items.len() != before
}

/// Scrubs a Lite body (`{"items": [...]}`).
pub fn scrub_lite(mut body: Value, markers: &[String]) -> Scrubbed {
    let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) else {
        return if names(&body, markers) {
            Scrubbed::Emptied
        } else {
            Scrubbed::Unchanged
        };
    };
    if !drop_naming(items, markers) {
        return Scrubbed::Unchanged;
    }
    if items.is_empty() {
        Scrubbed::Emptied
    } else {
        Scrubbed::Rewritten(body)
    }
}

/// Scrubs a Meta webhook body: in each change of one of `own_numbers` (phone number ids; a
/// change without one, such as a template update, counts as the user's), the array elements
/// naming the contact are dropped; a change still naming it afterwards, or left without any
/// element, goes whole; an entry without changes goes.
pub fn scrub_meta(mut body: Value, markers: &[String], own_numbers: &[String]) -> Scrubbed {
    if !names(&body, markers) {
        return Scrubbed::Unchanged;
    }
    let Some(entries) = body.get_mut("entry").and_then(Value::as_array_mut) else {
        return Scrubbed::Emptied;
    };
    for entry in entries.iter_mut() {
        let Some(changes) = entry.get_mut("changes").and_then(Value::as_array_mut) else {
            continue;
        };
        changes.retain_mut(|change| {
            let number = change.pointer("/value/metadata/phone_number_id");
            let ours = number
                .and_then(Value::as_str)
                .is_none_or(|n| own_numbers.iter().any(|o| o == n));
            if !ours || !names(change, markers) {
                return true;
            }
            let Some(value) = change.get_mut("value").and_then(Value::as_object_mut) else {
                return false;
            };
            let mut had = false;
            let mut left = false;
            for v in value.values_mut() {
                if let Value::Array(items) = v {
                    had |= !items.is_empty();
                    drop_naming(items, markers);
                    left |= !items.is_empty();
                }
            }
            had && left && !names(change, markers)
        });
    }
    entries.retain(|e| {
        e.get("changes")
            .and_then(Value::as_array)
            .is_none_or(|c| !c.is_empty())
    });
    if entries.is_empty() {
        Scrubbed::Emptied
    } else {
        Scrubbed::Rewritten(body)
    }
}

/// Rows rewritten and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxScrub {
    pub rewritten: u64,
    pub deleted: u64,
}

/// Scrubs every inbox row of `usuario_id` (its Lite rows, and the Meta bodies its numbers'
/// secrets signed) inside the caller's transaction.
pub async fn scrub_rows(
    tx: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    markers: &[String],
) -> Result<InboxScrub, StoreError> {
    let own_numbers: Vec<String> = tx
        .query(
            "SELECT configuracion->'business_config'->>'phone_number_id' FROM configuracion_mensajeria_usuario
             WHERE usuario_id = $1 AND configuracion->'business_config' ? 'phone_number_id'",
            &[&usuario_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows = tx
        .query(
            "SELECT id, source, body FROM webhook_inbox
             WHERE usuario_id = $1 OR $1 = ANY(signed_by) ORDER BY id FOR UPDATE",
            &[&usuario_id],
        )
        .await?;
    let mut out = InboxScrub::default();
    let mut emptied: Vec<i64> = Vec::new();
    for row in &rows {
        let (id, source, sealed): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        // A body that no longer opens holds nothing readable.
        let Ok(plain) = sealer.open(Purpose::Webhook, &sealed) else {
            continue;
        };
        let Ok(body) = serde_json::from_slice::<Value>(&plain) else {
            continue;
        };
        let scrubbed = if source == crate::ingest::inbox::SOURCE_LITE {
            scrub_lite(body, markers)
        } else {
            scrub_meta(body, markers, &own_numbers)
        };
        match scrubbed {
            Scrubbed::Unchanged => {}
            Scrubbed::Emptied => emptied.push(id),
            Scrubbed::Rewritten(body) => {
                let resealed = sealer.seal(Purpose::Webhook, body.to_string().as_bytes());
                tx.execute(
                    "UPDATE webhook_inbox SET body = $2 WHERE id = $1",
                    &[&id, &resealed],
                )
                .await?;
                out.rewritten += 1;
            }
        }
    }
    if !emptied.is_empty() {
        tx.execute(
            "DELETE FROM inbound_dead_letters WHERE inbox_id = ANY($1)",
            &[&emptied],
        )
        .await?;
        out.deleted = tx
            .execute("DELETE FROM webhook_inbox WHERE id = ANY($1)", &[&emptied])
            .await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(number: &str, from: &[&str]) -> Value {
        json!({"field": "messages", "value": {
            "metadata": {"phone_number_id": number},
            "contacts": from.iter().map(|f| json!({"wa_id": f, "profile": {"name": "N"}})).collect::<Vec<_>>(),
            "messages": from.iter().map(|f| json!({"from": f, "id": format!("wamid.{f}"), "text": {"body": "hi"}})).collect::<Vec<_>>(),
        }})
    }

    #[test]
    fn only_the_contacts_part_of_a_batch_goes() {
        let markers = vec!["5511987654321".to_string()];
        let own = vec!["P1".to_string()];
        let body = json!({"entry": [{"id": "W", "changes": [
            change("P1", &["5511987654321", "5521999990000"]),
            change("P2", &["5511987654321"]),
        ]}]});
        let Scrubbed::Rewritten(out) = scrub_meta(body, &markers, &own) else {
            panic!("rewritten");
        };
        let changes = &out["entry"][0]["changes"];
        // Our number's change keeps the other contact only; another user's number is untouched.
        assert_eq!(changes[0]["value"]["messages"].as_array().unwrap().len(), 1);
        assert_eq!(changes[0]["value"]["messages"][0]["from"], "5521999990000");
        assert_eq!(changes[0]["value"]["contacts"].as_array().unwrap().len(), 1);
        assert_eq!(changes[1]["value"]["messages"][0]["from"], "5511987654321");

        let alone = json!({"entry": [{"id": "W", "changes": [change("P1", &["5511987654321"])]}]});
        assert_eq!(scrub_meta(alone, &markers, &own), Scrubbed::Emptied);
        let other = json!({"entry": [{"id": "W", "changes": [change("P1", &["5521999990000"])]}]});
        assert_eq!(scrub_meta(other, &markers, &own), Scrubbed::Unchanged);
    }

    #[test]
    fn lite_items_naming_the_contact_go() {
        let markers = vec!["5511987654321".to_string()];
        let body = json!({"items": [{"from": "5511987654321"}, {"from": "5521999990000"}]});
        let Scrubbed::Rewritten(out) = scrub_lite(body, &markers) else {
            panic!("rewritten");
        };
        assert_eq!(out["items"].as_array().unwrap().len(), 1);
        let only = json!({"items": [{"from": "+5511987654321"}]});
        assert_eq!(scrub_lite(only, &markers), Scrubbed::Emptied);
    }
}
