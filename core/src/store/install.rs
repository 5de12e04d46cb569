//! Preparing a CRM's existing tables for migration 0001, in the same transaction, just before
//! it runs (and only then: once 0001 is applied its unique index keeps the data in shape).
//!
//! Migration 0001 creates the CRM tables only where they are absent, so on a CRM database it
//! meets tables the CRM made, with whatever columns and rows they have. Two things there would
//! make 0001 (or the daemon later) fail on data nobody here wrote:
//!
//! - columns the daemon relies on may be missing (0001's indexes name `updated_at`, the
//!   daemon reads `metadata`...), or hold NULL where the daemon expects a value: missing ones
//!   are added with their default, NULLs in defaulted ones are filled;
//! - `leads` may hold one phone twice for one user, which 0001's unique index on
//!   `(usuario_id, telefono)` refuses: the oldest lead of each group is kept as it is, the later
//!   ones are merged into it the way `POST /v1/leads/merge-duplicates` merges (kept, with
//!   `merged_into` set, missing name and e-mail carried over, their ids listed in the
//!   survivor's `metadata.merged_ids`) and their phone moves to `metadata.telefono_original`
//!   (the column becomes NULL, or a spelling with a letter suffix where the CRM made it NOT
//!   NULL), so no row and no value is lost.
//!
//! 0001's statements stay as they were applied everywhere (its checksum guards them), so installs that
//! already applied it are untouched and new ones get the same schema. What was done is logged
//! and returned; [`super::migrate`] writes it to `audit_log` once that table exists.

use super::StoreError;
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

/// A column the daemon relies on: table, column, type, default (SQL) if any.
const COLUMNS: &[(&str, &str, &str, Option<&str>)] = &[
    ("usuarios", "email", "text", None),
    ("usuarios", "nombre", "text", None),
    ("usuarios", "created_at", "timestamptz", Some("now()")),
    ("leads", "nombre", "text", None),
    ("leads", "telefono", "text", None),
    ("leads", "email", "text", None),
    ("leads", "origen", "text", None),
    ("leads", "metadata", "jsonb", Some("'{}'::jsonb")),
    ("leads", "created_at", "timestamptz", Some("now()")),
    ("leads", "updated_at", "timestamptz", Some("now()")),
    (
        "configuracion_mensajeria_usuario",
        "plataforma",
        "text",
        Some("'whatsapp'"),
    ),
    (
        "configuracion_mensajeria_usuario",
        "configuracion",
        "jsonb",
        Some("'{}'::jsonb"),
    ),
    (
        "configuracion_mensajeria_usuario",
        "activo",
        "boolean",
        Some("true"),
    ),
    (
        "configuracion_mensajeria_usuario",
        "created_at",
        "timestamptz",
        Some("now()"),
    ),
    (
        "configuracion_mensajeria_usuario",
        "updated_at",
        "timestamptz",
        Some("now()"),
    ),
    ("conversaciones", "lead_id", "uuid", None),
    (
        "conversaciones",
        "servicio_origen",
        "text",
        Some("'whatsapp'"),
    ),
    ("conversaciones", "tipo", "text", None),
    ("conversaciones", "remitente", "text", None),
    ("conversaciones", "metadata", "jsonb", Some("'{}'::jsonb")),
    ("conversaciones", "created_at", "timestamptz", Some("now()")),
    ("conversaciones", "updated_at", "timestamptz", Some("now()")),
    ("mensajes_conversacion", "tipo", "text", Some("'texto'")),
    ("mensajes_conversacion", "contenido", "text", None),
    ("mensajes_conversacion", "remitente", "text", None),
    ("mensajes_conversacion", "canal", "text", Some("'whatsapp'")),
    (
        "mensajes_conversacion",
        "metadata",
        "jsonb",
        Some("'{}'::jsonb"),
    ),
    (
        "mensajes_conversacion",
        "created_at",
        "timestamptz",
        Some("now()"),
    ),
];

/// What [`prepare`] changed; `None` when nothing needed changing.
pub async fn prepare(client: &impl GenericClient) -> Result<Option<Value>, StoreError> {
    let mut added = Vec::new();
    let mut filled = serde_json::Map::new();
    for (table, column, kind, default) in COLUMNS {
        let info = client
            .query_opt(
                "SELECT CASE WHEN c.column_name IS NULL THEN NULL
                             ELSE c.column_default IS NOT NULL END
                 FROM information_schema.tables t
                 LEFT JOIN information_schema.columns c
                   ON c.table_schema = t.table_schema AND c.table_name = t.table_name
                  AND c.column_name = $2
                 WHERE t.table_schema = current_schema() AND t.table_name = $1",
                &[table, column],
            )
            .await?;
        let Some(row) = info else { continue }; // no such table: 0001 creates it whole
        match row.get::<_, Option<bool>>(0) {
            None => {
                let default_sql = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {table} ADD COLUMN {column} {kind}{default_sql}"
                    ))
                    .await?;
                added.push(format!("{table}.{column}"));
            }
            Some(has_default) => {
                if let Some(d) = default {
                    if !has_default {
                        client
                            .batch_execute(&format!(
                                "ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {d}"
                            ))
                            .await?;
                    }
                    let n = client
                        .execute(
                            &format!("UPDATE {table} SET {column} = {d} WHERE {column} IS NULL"),
                            &[],
                        )
                        .await?;
                    if n > 0 {
                        filled.insert(format!("{table}.{column}"), json!(n));
                    }
                }
            }
        }
    }
    let merged = merge_duplicate_phones(client).await?;
    if added.is_empty() && filled.is_empty() && merged.is_null() {
        return Ok(None);
    }
    let report = json!({
        "columns_added": added,
        "nulls_filled": filled,
        "duplicate_leads": merged,
    });
    tracing::warn!(
        report = %report,
        "existing CRM tables adapted before migration 0001 (no row removed)"
    );
    Ok(Some(report))
}

/// Leads sharing one `(usuario_id, telefono)`: the later ones merged into the oldest.
async fn merge_duplicate_phones(client: &impl GenericClient) -> Result<Value, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.leads', current_schema())) IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(Value::Null);
    }
    // As 0001 adds it; here first, to mark the duplicates.
    client
        .batch_execute(
            "ALTER TABLE leads ADD COLUMN IF NOT EXISTS merged_into uuid REFERENCES leads (id) ON DELETE SET NULL",
        )
        .await?;
    let groups = client
        .query(
            "SELECT usuario_id, telefono,
                    array_agg(id ORDER BY created_at NULLS LAST, id) AS ids
             FROM leads WHERE telefono IS NOT NULL
             GROUP BY usuario_id, telefono HAVING count(*) > 1",
            &[],
        )
        .await?;
    if groups.is_empty() {
        return Ok(Value::Null);
    }
    let nullable: bool = client
        .query_one(
            "SELECT is_nullable = 'YES' FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'leads' AND column_name = 'telefono'",
            &[],
        )
        .await?
        .get(0);
    let repoint = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'conversaciones'
                   AND column_name = 'lead_id')",
            &[],
        )
        .await?
        .get::<_, bool>(0);
    let mut merged_rows = 0usize;
    let mut listed = Vec::new();
    for g in &groups {
        let ids: Vec<uuid::Uuid> = g.get(2);
        let (survivor, others) = (ids[0], &ids[1..]);
        if repoint {
            client
                .execute(
                    "UPDATE conversaciones SET lead_id = $1 WHERE lead_id = ANY($2)",
                    &[&survivor, &others],
                )
                .await?;
        }
        client
            .execute(
                "UPDATE leads s SET
                     nombre = COALESCE(s.nombre, (SELECT o.nombre FROM leads o WHERE o.id = ANY($2) AND o.nombre IS NOT NULL ORDER BY o.created_at LIMIT 1)),
                     email = COALESCE(s.email, (SELECT o.email FROM leads o WHERE o.id = ANY($2) AND o.email IS NOT NULL ORDER BY o.created_at LIMIT 1)),
                     metadata = jsonb_set(s.metadata, '{merged_ids}', COALESCE(s.metadata->'merged_ids', '[]'::jsonb) || to_jsonb($2::uuid[]))
                 WHERE s.id = $1",
                &[&survivor, &others],
            )
            .await?;
        // The later duplicates give up the phone the unique index allows once: kept in
        // metadata, and the column NULL (or, where NULL is refused, a spelling with a letter
        // suffix: digits would make it another phone number).
        let spelling = if nullable {
            "NULL"
        } else {
            "telefono || ' (duplicate ' || translate(ord::text, '0123456789', 'abcdefghij') || ')'"
        };
        client
            .execute(
                &format!(
                    "UPDATE leads l SET merged_into = $1,
                         metadata = l.metadata || jsonb_build_object(
                             'telefono_original', l.telefono, 'merged_at_install', true),
                         telefono = {spelling}
                     FROM unnest($2::uuid[]) WITH ORDINALITY AS d(id, ord)
                     WHERE l.id = d.id"
                ),
                &[&survivor, &others],
            )
            .await?;
        merged_rows += others.len();
        if listed.len() < 100 {
            listed.push(json!({
                "usuario_id": g.get::<_, Option<uuid::Uuid>>(0),
                "kept": survivor,
                "merged": others,
            }));
        }
    }
    Ok(json!({
        "groups": groups.len(),
        "merged": merged_rows,
        "telefono_of_merged": if nullable { "null (original in metadata.telefono_original)" } else { "suffixed (original in metadata.telefono_original)" },
        "first_groups": listed,
    }))
}
