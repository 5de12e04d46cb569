//! Leads from phone numbers (LeadSync's store side): find-or-create by contact key
//! ([`phone::contact_key`]: E.164 with WhatsApp's own spellings folded in) for many contacts at
//! once inside the caller's transaction, keep profile changes with their history, and merge
//! leads of one user whose phones are the same number (a CRM lead typed as "(11) 98765-4321",
//! a WhatsApp contact 5511987654321 and an old account 551187654321 are one person).

use crate::phone;
use crate::store::StoreError;
use crate::store::clean;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// One contact seen in a batch.
#[derive(Debug, Clone)]
pub struct Contact {
    pub usuario_id: Uuid,
    /// The contact's key (the lead's `telefono` when it is created), with what is needed to
    /// find leads typed in other formats.
    pub key: phone::ContactKey,
    /// The contact's WhatsApp id as the provider gave it (`wa_id` digits), when known: kept
    /// on the lead's metadata.
    pub wa_id: Option<String>,
    pub profile_name: Option<String>,
    pub profile_picture_url: Option<String>,
}

/// An event the caller must append (same transaction).
#[derive(Debug, Clone)]
pub struct LeadEvent {
    pub usuario_id: Uuid,
    pub kind: &'static str,
    pub data: Value,
}

#[derive(Debug, Default)]
pub struct Resolved {
    /// `(usuario_id, contact key)` → lead id.
    pub leads: HashMap<(Uuid, String), Uuid>,
    /// Leads found with their first touch (`metadata.source`) recorded already.
    pub sourced: HashSet<Uuid>,
    pub events: Vec<LeadEvent>,
    pub created: usize,
    pub merged: usize,
}

struct Existing {
    id: Uuid,
    usuario_id: Uuid,
    telefono: Option<String>,
    nombre: Option<String>,
    metadata: Value,
}

fn existing(row: &tokio_postgres::Row) -> Existing {
    Existing {
        id: row.get("id"),
        usuario_id: row.get("usuario_id"),
        telefono: row.get("telefono"),
        nombre: row.get("nombre"),
        metadata: row.get("metadata"),
    }
}

/// Finds or creates the lead of every contact, merging duplicates on the way.
/// `regions` gives each user's default region for reading CRM-typed numbers.
pub async fn resolve(
    tx: &impl GenericClient,
    contacts: &[Contact],
    regions: &HashMap<Uuid, Option<String>>,
) -> Result<Resolved, StoreError> {
    let mut out = Resolved::default();
    // The last sighting of each contact carries the freshest profile (and WhatsApp id), made
    // storable in clear.
    let mut cleaned: HashMap<(Uuid, String), Contact> = HashMap::new();
    for c in contacts {
        let mut c = c.clone();
        c.profile_name = clean::opt_text(c.profile_name);
        c.profile_picture_url = clean::opt_text(c.profile_picture_url);
        c.wa_id = clean::opt_text(c.wa_id);
        c.key.key = clean::owned_text(c.key.key);
        let k = (c.usuario_id, c.key.key.clone());
        // A sighting without an id does not forget the one an earlier sighting gave.
        if c.wa_id.is_none() {
            c.wa_id = cleaned.get(&k).and_then(|p| p.wa_id.clone());
        }
        cleaned.insert(k, c);
    }
    let by_key: HashMap<(Uuid, String), &Contact> =
        cleaned.iter().map(|(k, c)| (k.clone(), c)).collect();
    if by_key.is_empty() {
        return Ok(out);
    }
    let users: Vec<Uuid> = by_key.keys().map(|k| k.0).collect();
    let phones: Vec<String> = by_key.keys().map(|k| k.1.clone()).collect();

    // 1. Exact matches (merged leads left out).
    let by_number = tx.prepare_cached(BY_NUMBER_SQL).await?;
    let rows = tx.query(&by_number, &[&users, &phones]).await?;
    let mut found: HashMap<(Uuid, String), Existing> = rows
        .iter()
        .filter(|r| r.get::<_, bool>("live"))
        .map(existing)
        .map(|e| ((e.usuario_id, e.telefono.clone().unwrap_or_default()), e))
        .collect();

    // 2. The same numbers typed in other formats (by their digits), to merge. A lead already
    //    checked (flag in its metadata) is not looked up again: CRM duplicates created later
    //    are found by `merge_duplicates`.
    let checked_keys: HashSet<(Uuid, String)> = found
        .iter()
        .filter(|(_, e)| e.metadata.get(CHECKED).and_then(Value::as_bool) == Some(true))
        .map(|(k, _)| k.clone())
        .collect();
    let checked = |k: &(Uuid, String)| checked_keys.contains(k);
    let mut du = Vec::new();
    let mut dd = Vec::new();
    for (k, c) in &by_key {
        if checked(k) {
            continue;
        }
        for digits in phone::spellings(&c.key) {
            du.push(c.usuario_id);
            dd.push(digits);
        }
    }
    let rows = if du.is_empty() {
        Vec::new()
    } else {
        let lookalikes = tx.prepare_cached(LOOKALIKES_SQL).await?;
        tx.query(&lookalikes, &[&du, &dd]).await?
    };
    let mut lookalikes: HashMap<(Uuid, String), Vec<Existing>> = HashMap::new();
    let mut seen = HashSet::new();
    for row in &rows {
        let e = existing(row);
        if !seen.insert(e.id) {
            continue;
        }
        let region = regions.get(&e.usuario_id).cloned().flatten();
        let Some(raw) = e.telefono.as_deref() else {
            continue;
        };
        let key = (e.usuario_id, phone::contact_key(raw, region.as_deref()).key);
        if !by_key.contains_key(&key) {
            continue;
        }
        if found.get(&key).is_some_and(|f| f.id == e.id) {
            continue;
        }
        lookalikes.entry(key).or_default().push(e);
    }

    // 3. Merge: the exact match survives, else the oldest look-alike takes the E.164 number.
    for (key, mut others) in lookalikes {
        let survivor = match found.remove(&key) {
            Some(s) => s,
            None => {
                let s = others.remove(0);
                tx.execute(
                    "UPDATE leads SET telefono = $2,
                         metadata = metadata || jsonb_build_object('telefono_original', telefono),
                         updated_at = now()
                     WHERE id = $1",
                    &[&s.id, &key.1],
                )
                .await?;
                out.events.push(LeadEvent {
                    usuario_id: key.0,
                    kind: "lead.updated",
                    data: json!({"lead_id": s.id, "changes": {"telefono": key.1}}),
                });
                s
            }
        };
        if !others.is_empty() {
            let ids: Vec<Uuid> = others.iter().map(|o| o.id).collect();
            merge_into(tx, survivor.id, &ids).await?;
            out.merged += ids.len();
            out.events.push(LeadEvent {
                usuario_id: key.0,
                kind: "lead.merged",
                data: json!({"lead_id": survivor.id, "merged_ids": ids, "telefono": key.1}),
            });
        }
        found.insert(key, survivor);
    }

    // 4. Profile changes of existing leads; mark them checked for look-alikes.
    let unchecked: Vec<Uuid> = found
        .iter()
        .filter(|(k, _)| !checked(k))
        .map(|(_, e)| e.id)
        .collect();
    if !unchecked.is_empty() {
        tx.execute(
            "UPDATE leads SET metadata = metadata || jsonb_build_object($2::text, true) WHERE id = ANY($1)",
            &[&unchecked, &CHECKED],
        )
        .await?;
    }
    // The contact's WhatsApp id, when it is new to the lead (one statement for the batch).
    let (wa_leads, wa_ids): (Vec<Uuid>, Vec<String>) = found
        .iter()
        .filter_map(|(k, e)| {
            let wa = by_key[k].wa_id.as_ref()?;
            (e.metadata.get(WA_ID).and_then(Value::as_str) != Some(wa.as_str()))
                .then(|| (e.id, wa.clone()))
        })
        .unzip();
    if !wa_leads.is_empty() {
        tx.execute(
            "UPDATE leads l SET metadata = l.metadata || jsonb_build_object($3::text, w.wa), updated_at = now()
             FROM unnest($1::uuid[], $2::text[]) AS w(id, wa) WHERE l.id = w.id",
            &[&wa_leads, &wa_ids, &WA_ID],
        )
        .await?;
    }
    for (key, lead) in &found {
        let contact = by_key[key];
        if let Some(changes) = profile_update(tx, lead, contact).await? {
            out.events.push(LeadEvent {
                usuario_id: key.0,
                kind: "lead.updated",
                data: json!({"lead_id": lead.id, "changes": changes}),
            });
        }
        if lead.metadata.get("source").is_some() {
            out.sourced.insert(lead.id);
        }
        out.leads.insert(key.clone(), lead.id);
    }

    // 5. New leads; a concurrent creator (another node) wins and is re-read.
    let missing: Vec<&Contact> = by_key
        .iter()
        .filter(|(k, _)| !out.leads.contains_key(*k))
        .map(|(_, c)| *c)
        .collect();
    if !missing.is_empty() {
        let ids: Vec<Uuid> = missing.iter().map(|_| Uuid::now_v7()).collect();
        let users: Vec<Uuid> = missing.iter().map(|c| c.usuario_id).collect();
        let phones: Vec<String> = missing.iter().map(|c| c.key.key.clone()).collect();
        let names: Vec<Option<String>> = missing.iter().map(|c| c.profile_name.clone()).collect();
        let metas: Vec<Value> = missing.iter().map(|c| initial_metadata(c)).collect();
        let inserted = tx
            .query(
                "INSERT INTO leads (id, usuario_id, telefono, nombre, origen, metadata)
                 SELECT i, u, t, n, 'WhatsApp', m FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[]) AS x(i, u, t, n, m)
                 ORDER BY u, t
                 ON CONFLICT (usuario_id, telefono) DO NOTHING
                 RETURNING id, usuario_id, telefono, nombre",
                &[&ids, &users, &phones, &names, &metas],
            )
            .await?;
        for row in &inserted {
            let (id, u, t, n): (Uuid, Uuid, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            out.events.push(LeadEvent {
                usuario_id: u,
                kind: "lead.created",
                data: json!({"lead_id": id, "telefono": t, "nombre": n, "origen": "WhatsApp"}),
            });
            out.leads.insert((u, t), id);
            out.created += 1;
        }
        let lost: Vec<&&Contact> = missing
            .iter()
            .filter(|c| !out.leads.contains_key(&(c.usuario_id, c.key.key.clone())))
            .collect();
        if !lost.is_empty() {
            let users: Vec<Uuid> = lost.iter().map(|c| c.usuario_id).collect();
            let phones: Vec<String> = lost.iter().map(|c| c.key.key.clone()).collect();
            for row in tx.query(&by_number, &[&users, &phones]).await? {
                out.leads.insert((row.get(1), row.get(2)), row.get(0));
            }
        }
    }
    Ok(out)
}

/// The lead of each `($1[i], $2[i])` (user, number exactly as stored), merged or not (`live`
/// says which): one probe of the `(usuario_id, telefono)` key per contact. As a plain join,
/// or with `merged_into IS NULL` inside the probe, a table without statistics (a new CRM, or
/// autovacuum off) made the planner take the digits index, which also starts with the user
/// and is partial on that condition, and filter every lead of the user by number for each
/// contact: 4.5 s for a batch of 1,000 at 40,000 leads, against 2 ms here. `OFFSET 0` keeps
/// the lateral subquery a parameterised index scan, so it is safe to prepare: its generic
/// plan is the same probe.
pub const BY_NUMBER_SQL: &str = "SELECT l.id, l.usuario_id, l.telefono, l.nombre, l.metadata,
         l.merged_into IS NULL AS live
     FROM unnest($1::uuid[], $2::text[]) AS k(u, t)
     CROSS JOIN LATERAL (
         SELECT * FROM leads l WHERE l.usuario_id = k.u AND l.telefono = k.t OFFSET 0) l";

/// The leads of each `($1[i], $2[i])` (user, digits of one spelling) whose number has those
/// digits however it is typed: one probe of the digits index per spelling. Written as a plain
/// join, the planner cannot tell how many leads a spelling's digits match (an expression
/// joined to an array), so it hashes every lead of the user through `regexp_replace`
/// instead: 29 ms a batch at 50,000 leads, growing with the CRM, for every batch holding a new
/// contact. `OFFSET 0` keeps the lateral subquery from being flattened into such a join, so it
/// stays a parameterised index scan (0.2 ms for 20 contacts, 12 ms for 2,000).
pub const LOOKALIKES_SQL: &str = "SELECT l.id, l.usuario_id, l.telefono, l.nombre, l.metadata
     FROM unnest($1::uuid[], $2::text[]) AS k(u, d)
     CROSS JOIN LATERAL (
         SELECT * FROM leads l
         WHERE l.usuario_id = k.u AND l.merged_into IS NULL
           AND regexp_replace(l.telefono, '\\D', '', 'g') = k.d
         OFFSET 0) l
     ORDER BY l.created_at, l.id";

/// Metadata flag: this lead was already checked for look-alike duplicates.
const CHECKED: &str = "dupes_checked";
/// Metadata key: the contact's WhatsApp id as the provider gave it (it may differ from the
/// lead's number: Mexico's `521…`, Brazil's ids without the ninth digit).
pub const WA_ID: &str = "wa_id";

fn initial_metadata(c: &Contact) -> Value {
    let mut m = json!({"fuente": "whatsapp", CHECKED: true});
    if let Some(wa) = &c.wa_id {
        m[WA_ID] = json!(wa);
    }
    if c.profile_name.is_some() || c.profile_picture_url.is_some() {
        m["profile"] = json!({"name": c.profile_name, "picture_url": c.profile_picture_url});
    }
    m
}

/// Records a changed WhatsApp profile (name, picture) with its history; renames the lead only
/// when its name still is the old profile name (a name the CRM user typed is kept).
async fn profile_update(
    tx: &impl GenericClient,
    lead: &Existing,
    contact: &Contact,
) -> Result<Option<Value>, StoreError> {
    let old = lead.metadata.get("profile").cloned().unwrap_or(Value::Null);
    let old_name = old.get("name").and_then(Value::as_str).map(String::from);
    let old_pic = old
        .get("picture_url")
        .and_then(Value::as_str)
        .map(String::from);
    let name_changed = contact.profile_name.is_some() && contact.profile_name != old_name;
    let pic_changed =
        contact.profile_picture_url.is_some() && contact.profile_picture_url != old_pic;
    if !name_changed && !pic_changed {
        return Ok(None);
    }
    let new_profile = json!({
        "name": contact.profile_name.clone().or(old_name.clone()),
        "picture_url": contact.profile_picture_url.clone().or(old_pic),
    });
    let rename = name_changed && (lead.nombre.is_none() || lead.nombre == old_name);
    let nombre = if rename {
        contact.profile_name.clone()
    } else {
        lead.nombre.clone()
    };
    let history_entry =
        json!([{"profile": old, "replaced_at": time::OffsetDateTime::now_utc().unix_timestamp()}]);
    tx.execute(
        "UPDATE leads SET nombre = $2,
             metadata = jsonb_set(
                 jsonb_set(metadata, '{profile}', $3::jsonb),
                 '{profile_history}',
                 COALESCE(metadata->'profile_history', '[]'::jsonb) || CASE WHEN metadata ? 'profile' THEN $4::jsonb ELSE '[]'::jsonb END),
             updated_at = now()
         WHERE id = $1",
        &[&lead.id, &nombre, &new_profile, &history_entry],
    )
    .await?;
    let mut changes = json!({"profile": new_profile});
    if rename {
        changes["nombre"] = json!(nombre);
    }
    Ok(Some(changes))
}

/// Merges `others` into `survivor`: conversations re-pointed, the merged rows kept with
/// `merged_into` set, their ids and missing fields carried over to the survivor.
pub async fn merge_into(
    tx: &impl GenericClient,
    survivor: Uuid,
    others: &[Uuid],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE conversaciones SET lead_id = $1, updated_at = now() WHERE lead_id = ANY($2)",
        &[&survivor, &others],
    )
    .await?;
    tx.execute(
        "UPDATE leads s SET
             nombre = COALESCE(s.nombre, (SELECT o.nombre FROM leads o WHERE o.id = ANY($2) AND o.nombre IS NOT NULL ORDER BY o.created_at LIMIT 1)),
             email = COALESCE(s.email, (SELECT o.email FROM leads o WHERE o.id = ANY($2) AND o.email IS NOT NULL ORDER BY o.created_at LIMIT 1)),
             metadata = jsonb_set(s.metadata, '{merged_ids}', COALESCE(s.metadata->'merged_ids', '[]'::jsonb) || to_jsonb($2::uuid[])),
             updated_at = now()
         WHERE s.id = $1",
        &[&survivor, &others],
    )
    .await?;
    tx.execute(
        "UPDATE leads SET merged_into = $1, updated_at = now() WHERE id = ANY($2)",
        &[&survivor, &others],
    )
    .await?;
    Ok(())
}

/// Scans all leads of one user and merges those whose phones are the same number (one contact
/// key; numbers that cannot be placed are left alone), for leads the CRM created before the
/// daemon saw them. Returns the merge events.
pub async fn merge_duplicates(
    tx: &impl GenericClient,
    usuario_id: Uuid,
    region: Option<&str>,
) -> Result<Vec<LeadEvent>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, telefono FROM leads WHERE usuario_id = $1 AND merged_into IS NULL
               AND telefono IS NOT NULL ORDER BY created_at, id FOR UPDATE",
            &[&usuario_id],
        )
        .await?;
    let mut groups: HashMap<String, Vec<(Uuid, String)>> = HashMap::new();
    let mut order = Vec::new();
    for row in &rows {
        let (id, raw): (Uuid, String) = (row.get(0), row.get(1));
        let k = phone::contact_key(&raw, region);
        if k.placed {
            if !groups.contains_key(&k.key) {
                order.push(k.key.clone());
            }
            groups.entry(k.key).or_default().push((id, raw));
        }
    }
    let mut events = Vec::new();
    for e164 in order {
        let members = &groups[&e164];
        if members.len() < 2 {
            continue;
        }
        let survivor = members
            .iter()
            .find(|(_, raw)| *raw == e164)
            .unwrap_or(&members[0])
            .0;
        let others: Vec<Uuid> = members
            .iter()
            .map(|m| m.0)
            .filter(|id| *id != survivor)
            .collect();
        merge_into(tx, survivor, &others).await?;
        tx.execute(
            "UPDATE leads SET metadata = metadata || jsonb_build_object('telefono_original', telefono),
                 telefono = $2 WHERE id = $1 AND telefono <> $2",
            &[&survivor, &e164],
        )
        .await?;
        events.push(LeadEvent {
            usuario_id,
            kind: "lead.merged",
            data: json!({"lead_id": survivor, "merged_ids": others, "telefono": e164}),
        });
    }
    Ok(events)
}
