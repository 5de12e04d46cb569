//! What an ingest batch asks of this feature, inside its transaction: the connections'
//! settings ([`CrmBatch::load`]: `sync_contacts` decides whether a message's profile name
//! reaches the lead), the contact keys that changed number, and, once the batch's messages
//! are stored ([`CrmBatch::after_messages`]), a linked Lite session's activity, lead sources,
//! number changes and automatic answers. The inbound path calls it from one place (`ingest::batch`).

use super::auto_reply;
use super::identity;
use super::reply::Due;
use super::settings::CrmSettings;
use super::source;
use crate::ingest::model::InboundMessage;
use crate::store::StoreError;
use crate::store::events::NewEvent;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// One message the batch stored just now (not a duplicate).
pub struct Stored<'a> {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub lead_id: Uuid,
    /// The contact's key (the conversation's `remitente`).
    pub contact: &'a str,
    pub message: &'a InboundMessage,
    /// The lead had its first touch (`metadata.source`) already when the batch read it.
    pub lead_sourced: bool,
}

/// The settings of the connections one batch touches.
pub struct CrmBatch {
    settings: HashMap<Uuid, CrmSettings>,
    /// The batch's Lite sessions (their activity is recorded).
    lite: HashSet<Uuid>,
}

impl CrmBatch {
    /// Reads the settings of every connection of `messages` (one query; none when empty).
    pub async fn load(
        tx: &impl GenericClient,
        messages: &[&InboundMessage],
    ) -> Result<CrmBatch, StoreError> {
        let mut ids: Vec<Uuid> = messages.iter().map(|m| m.connection_id).collect();
        ids.sort();
        ids.dedup();
        let mut settings = HashMap::new();
        let mut lite = HashSet::new();
        if !ids.is_empty() {
            // Prepared once per pooled connection: every ingest batch runs it.
            let statement = tx
                .prepare_cached(
                    "SELECT id, configuracion->'settings', configuracion->>'tipo_conexion' = 'lite'
                     FROM configuracion_mensajeria_usuario WHERE id = ANY($1)",
                )
                .await?;
            for r in tx.query(&statement, &[&ids]).await? {
                let s: Option<Value> = r.get(1);
                let conf = json!({ "settings": s.unwrap_or(Value::Null) });
                settings.insert(r.get(0), CrmSettings::from_configuracion(&conf));
                if r.get::<_, Option<bool>>(2) == Some(true) {
                    lite.insert(r.get(0));
                }
            }
        }
        Ok(CrmBatch { settings, lite })
    }

    fn of(&self, connection_id: Uuid) -> CrmSettings {
        self.settings
            .get(&connection_id)
            .cloned()
            .unwrap_or_else(|| CrmSettings::from_configuracion(&Value::Null))
    }

    /// The profile name `m` gives its lead: none when the connection does not sync contacts.
    pub fn profile_name(&self, m: &InboundMessage) -> Option<String> {
        let sync = self
            .settings
            .get(&m.connection_id)
            .is_none_or(|s| s.sync_contacts);
        if sync { m.profile_name.clone() } else { None }
    }

    /// Lead sources (on the messages, first touch on the leads), number changes and the
    /// automatic answers to queue after the commit; events appended to `events`.
    pub async fn after_messages(
        &self,
        tx: &impl GenericClient,
        stored: &[Stored<'_>],
        events: &mut Vec<NewEvent>,
    ) -> Result<Vec<Due>, StoreError> {
        let mut lite: Vec<Uuid> = stored
            .iter()
            .map(|s| s.message.connection_id)
            .filter(|c| self.lite.contains(c))
            .collect();
        lite.sort();
        lite.dedup();
        if !lite.is_empty() {
            super::sync::lite_activity(tx, &lite).await?;
        }
        let inbound: Vec<&Stored> = stored.iter().filter(|s| !s.message.outgoing).collect();
        if inbound.is_empty() {
            return Ok(Vec::new());
        }
        self.sources(tx, &inbound, events).await?;
        for s in &inbound {
            if let Some(new) = identity::new_number(s.message) {
                identity::apply(tx, s.message.usuario_id, s.lead_id, s.contact, &new, events)
                    .await?;
            }
        }
        self.auto_replies(tx, &inbound).await
    }

    async fn sources(
        &self,
        tx: &impl GenericClient,
        inbound: &[&Stored<'_>],
        events: &mut Vec<NewEvent>,
    ) -> Result<(), StoreError> {
        let (mut ids, mut sources) = (Vec::new(), Vec::new());
        // The earliest message of each lead in the batch without a first touch yet, with what
        // it said.
        let mut firsts: HashMap<Uuid, (&Stored, Option<Value>)> = HashMap::new();
        for s in inbound {
            let src = source::of_message(s.message, &self.of(s.message.connection_id).wa_me_links);
            if let Some(v) = &src {
                ids.push(s.message_id);
                sources.push(v.clone());
            }
            if s.lead_sourced {
                continue;
            }
            let earlier = firsts
                .get(&s.lead_id)
                .is_some_and(|(f, _)| f.message.timestamp <= s.message.timestamp);
            if !earlier {
                firsts.insert(s.lead_id, (s, src));
            }
        }
        if !ids.is_empty() {
            let statement = tx
                .prepare_cached(
                    "UPDATE mensajes_conversacion m SET metadata = m.metadata || jsonb_build_object('source', x.s)
                     FROM unnest($1::uuid[], $2::jsonb[]) AS x(i, s) WHERE m.id = x.i",
                )
                .await?;
            tx.execute(&statement, &[&ids, &sources]).await?;
        }
        let (leads, touches): (Vec<Uuid>, Vec<Value>) = firsts
            .iter()
            .map(|(lead, (s, src))| {
                let at = s.message.timestamp.unix_timestamp();
                (*lead, source::first_touch(src.as_ref(), s.message_id, at))
            })
            .unzip();
        // A lead's first touch is written once; most messages come from leads that have it
        // (the batch read their metadata), and the update would change nothing.
        if leads.is_empty() {
            return Ok(());
        }
        // Prepared once per pooled connection: every batch with a new lead runs it.
        let first_touch = tx
            .prepare_cached(
                "UPDATE leads l SET metadata = jsonb_set(l.metadata, '{source}', x.s), updated_at = now()
                 FROM unnest($1::uuid[], $2::jsonb[]) AS x(i, s)
                 WHERE l.id = x.i AND NOT (l.metadata ? 'source')
                 RETURNING l.id, l.usuario_id, l.metadata->'source'",
            )
            .await?;
        let rows = tx.query(&first_touch, &[&leads, &touches]).await?;
        for r in rows {
            let (lead, source): (Uuid, Value) = (r.get(0), r.get(2));
            // A lead created by this batch says it in its `lead.created`; an older one gets
            // a `lead.updated`.
            let created = events
                .iter_mut()
                .find(|e| e.kind == "lead.created" && e.data["lead_id"] == json!(lead));
            match created {
                Some(e) => e.data["source"] = source,
                None => events.push(NewEvent {
                    usuario_id: r.get(1),
                    kind: "lead.updated",
                    data: json!({"lead_id": lead, "changes": {"source": source}}),
                }),
            }
        }
        Ok(())
    }

    /// At most one answer per contact per batch: to its newest message, decided by
    /// [`auto_reply::decide`].
    async fn auto_replies(
        &self,
        tx: &impl GenericClient,
        inbound: &[&Stored<'_>],
    ) -> Result<Vec<Due>, StoreError> {
        let enabled: Vec<&&Stored> = inbound
            .iter()
            .filter(|s| self.of(s.message.connection_id).auto_reply)
            .collect();
        if enabled.is_empty() {
            return Ok(Vec::new());
        }
        let convs: Vec<Uuid> = enabled.iter().map(|s| s.conversation_id).collect();
        let batch_ids: Vec<Uuid> = inbound.iter().map(|s| s.message_id).collect();
        let wrote_before: HashSet<Uuid> = tx
            .query(
                "SELECT DISTINCT conversacion_id FROM mensajes_conversacion
                 WHERE conversacion_id = ANY($1) AND direccion = 'entrante' AND NOT (id = ANY($2))",
                &[&convs, &batch_ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut newest: HashMap<Uuid, &Stored> = HashMap::new();
        for s in enabled {
            let keep = newest
                .get(&s.conversation_id)
                .is_some_and(|n| n.message.timestamp > s.message.timestamp);
            if !keep {
                newest.insert(s.conversation_id, s);
            }
        }
        let mut due = Vec::new();
        for (conv, s) in newest {
            let first = !wrote_before.contains(&conv);
            let settings = self.of(s.message.connection_id);
            if let Some(d) =
                auto_reply::decide(tx, &settings, s.message, s.message_id, s.contact, first).await?
            {
                due.push(d);
            }
        }
        Ok(due)
    }
}
