//! Message templates in `whatsapp_templates`, one row per (connection, name, language): kept
//! in step with Meta by a sync (list → upsert, rows Meta no longer has removed), by the
//! create/delete routes, and by `message_template_status_update` webhooks. Every status change
//! appends a `template.status` event for the owning user. A new template is checked here as
//! Meta checks it ([`create_body`]) before it is sent to Meta.

use super::BusinessError;
use super::webhook::TemplateUpdate;
use crate::seal::Sealer;
use crate::store::events;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub total: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

fn status_event(
    connection_id: Uuid,
    name: &str,
    language: &str,
    status: &str,
    reason: Option<&str>,
    id: Option<&str>,
) -> Value {
    json!({
        "connection_id": connection_id,
        "name": name,
        "language": language,
        "status": status,
        "reason": reason,
        "meta_template_id": id,
    })
}

/// Replaces the connection's templates with Meta's list, in the caller's transaction.
pub async fn replace_all(
    tx: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    connection_id: Uuid,
    meta: &[Value],
) -> Result<SyncReport, BusinessError> {
    let mut report = SyncReport {
        total: meta.len(),
        ..Default::default()
    };
    let mut keep_names = Vec::new();
    let mut keep_langs = Vec::new();
    for t in meta {
        let text = |k: &str| t.get(k).and_then(Value::as_str).map(String::from);
        let (Some(name), Some(language)) = (text("name"), text("language")) else {
            continue;
        };
        let status = text("status").unwrap_or_else(|| "PENDING".into());
        let reason = text("rejected_reason").filter(|r| r != "NONE");
        let id = t.get("id").map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        });
        let before = tx
            .query_opt(
                "SELECT status FROM whatsapp_templates WHERE connection_id = $1 AND name = $2 AND language = $3",
                &[&connection_id, &name, &language],
            )
            .await?
            .map(|r| r.get::<_, String>(0));
        tx.execute(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, meta_template_id, name, language,
                 category, status, components, rejection_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (connection_id, name, language) DO UPDATE SET
                 meta_template_id = EXCLUDED.meta_template_id, category = EXCLUDED.category,
                 status = EXCLUDED.status, components = EXCLUDED.components,
                 rejection_reason = EXCLUDED.rejection_reason, updated_at = now()",
            &[
                &usuario_id,
                &connection_id,
                &id,
                &name,
                &language,
                &text("category"),
                &status,
                &t.get("components").cloned().unwrap_or(json!([])),
                &reason,
            ],
        )
        .await?;
        match before {
            None => report.added += 1,
            Some(b) if b != status => {
                report.changed += 1;
                let data = status_event(
                    connection_id,
                    &name,
                    &language,
                    &status,
                    reason.as_deref(),
                    id.as_deref(),
                );
                events::append(tx, sealer, usuario_id, "template.status", &data).await?;
            }
            Some(_) => {}
        }
        keep_names.push(name);
        keep_langs.push(language);
    }
    report.removed = tx
        .execute(
            "DELETE FROM whatsapp_templates t WHERE t.connection_id = $1 AND NOT EXISTS (
                 SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(n, l) WHERE k.n = t.name AND k.l = t.language)",
            &[&connection_id, &keep_names, &keep_langs],
        )
        .await? as usize;
    Ok(report)
}

/// Records a template just created at Meta.
#[allow(clippy::too_many_arguments)]
pub async fn insert_created(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
    meta_template_id: Option<&str>,
    name: &str,
    language: &str,
    category: Option<&str>,
    status: &str,
    components: &Value,
) -> Result<Value, BusinessError> {
    let row = client
        .query_one(
            "INSERT INTO whatsapp_templates (usuario_id, connection_id, meta_template_id, name, language,
                 category, status, components)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (connection_id, name, language) DO UPDATE SET
                 meta_template_id = EXCLUDED.meta_template_id, category = EXCLUDED.category,
                 status = EXCLUDED.status, components = EXCLUDED.components,
                 rejection_reason = NULL, updated_at = now()
             RETURNING id, usuario_id, connection_id, meta_template_id, name, language, category, status,
                 components, rejection_reason, created_at, updated_at",
            &[&usuario_id, &connection_id, &meta_template_id, &name, &language, &category, &status, components],
        )
        .await?;
    Ok(row_json(&row))
}

/// Applies a status webhook to every connection of its WABA (`connections`: (usuario,
/// connection) pairs). Returns how many rows changed.
///
/// Webhooks arrive late, twice, or out of order, so an update moves a template forward only:
/// one older than the last applied (`at`, the entry's time) is a replay and is ignored; at the
/// same second a later lifecycle stage wins (a decision over `PENDING`, deletion over both);
/// and nothing leaves `DELETED`.
pub async fn apply_update(
    tx: &impl GenericClient,
    sealer: &Sealer,
    connections: &[(Uuid, Uuid)],
    u: &TemplateUpdate,
    at: Option<time::OffsetDateTime>,
) -> Result<usize, BusinessError> {
    let mut changed = 0;
    for (usuario_id, connection_id) in connections {
        let language = u.language.clone().unwrap_or_default();
        // Known by Meta id, else by name and language; unknown templates are recorded.
        let rows = tx
            .query(
                &format!(
                    "UPDATE whatsapp_templates SET status = $4, rejection_reason = $5,
                         meta_template_id = COALESCE(meta_template_id, $6),
                         status_event_at = COALESCE($7, status_event_at), updated_at = now()
                     WHERE connection_id = $1 AND status IS DISTINCT FROM $4 AND status <> 'DELETED'
                       AND ($7::timestamptz IS NULL OR status_event_at IS NULL OR status_event_at < $7
                            OR (status_event_at = $7 AND {STAGE_NEW} > {STAGE_OLD}))
                       AND ((meta_template_id IS NOT NULL AND meta_template_id = $6)
                            OR (name = $2 AND ($3 = '' OR language = $3)))
                     RETURNING name, language"
                ),
                &[
                    connection_id,
                    &u.name,
                    &language,
                    &u.status,
                    &u.reason,
                    &u.template_id,
                    &at,
                ],
            )
            .await?;
        if rows.is_empty() && !language.is_empty() {
            let inserted = tx
                .execute(
                    "INSERT INTO whatsapp_templates (usuario_id, connection_id, meta_template_id, name, language,
                         status, rejection_reason, status_event_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (connection_id, name, language) DO NOTHING",
                    &[usuario_id, connection_id, &u.template_id, &u.name, &language, &u.status, &u.reason, &at],
                )
                .await?;
            if inserted == 1 {
                let data = status_event(
                    *connection_id,
                    &u.name,
                    &language,
                    &u.status,
                    u.reason.as_deref(),
                    u.template_id.as_deref(),
                );
                events::append(tx, sealer, *usuario_id, "template.status", &data).await?;
                changed += 1;
            }
        }
        for r in rows {
            let (name, lang): (String, String) = (r.get(0), r.get(1));
            let data = status_event(
                *connection_id,
                &name,
                &lang,
                &u.status,
                u.reason.as_deref(),
                u.template_id.as_deref(),
            );
            events::append(tx, sealer, *usuario_id, "template.status", &data).await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Lifecycle stage of a status, for updates stamped with the same second: under review, then
/// decided (approved, rejected, paused, flagged, disabled...), then being deleted or deleted.
const STAGE_NEW: &str = "(CASE $4 WHEN 'PENDING' THEN 0 WHEN 'PENDING_DELETION' THEN 2 WHEN 'DELETED' THEN 3 ELSE 1 END)";
const STAGE_OLD: &str = "(CASE status WHEN 'PENDING' THEN 0 WHEN 'PENDING_DELETION' THEN 2 WHEN 'DELETED' THEN 3 ELSE 1 END)";

/// The stored status of a template (None: not known for this connection): the same lookup
/// the API does before queueing a template message.
pub async fn status_of(
    client: &impl GenericClient,
    connection_id: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<String>, BusinessError> {
    Ok(crate::outbound::enqueue::template_status(client, connection_id, name, language).await?)
}

/// Removes a template's rows (every language, or one).
pub async fn delete(
    client: &impl GenericClient,
    connection_id: Uuid,
    name: &str,
    language: Option<&str>,
) -> Result<u64, BusinessError> {
    Ok(client
        .execute(
            "DELETE FROM whatsapp_templates WHERE connection_id = $1 AND name = $2 AND ($3::text IS NULL OR language = $3)",
            &[&connection_id, &name, &language],
        )
        .await?)
}

/// The Meta id of one language version of a template, for deleting just that one.
pub async fn meta_id(
    client: &impl GenericClient,
    connection_id: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<String>, BusinessError> {
    Ok(client
        .query_opt(
            "SELECT meta_template_id FROM whatsapp_templates WHERE connection_id = $1 AND name = $2 AND language = $3",
            &[&connection_id, &name, &language],
        )
        .await?
        .and_then(|r| r.get(0)))
}

pub fn row_json(r: &tokio_postgres::Row) -> Value {
    let ts = |k: &str| {
        r.get::<_, time::OffsetDateTime>(k)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    json!({
        "id": r.get::<_, Uuid>("id"),
        "connection_id": r.get::<_, Uuid>("connection_id"),
        "meta_template_id": r.get::<_, Option<String>>("meta_template_id"),
        "name": r.get::<_, String>("name"),
        "language": r.get::<_, String>("language"),
        "category": r.get::<_, Option<String>>("category"),
        "status": r.get::<_, String>("status"),
        "components": r.get::<_, Value>("components"),
        "rejection_reason": r.get::<_, Option<String>>("rejection_reason"),
        "created_at": ts("created_at"),
        "updated_at": ts("updated_at"),
    })
}

/// The user's templates, optionally of one connection and status, by name.
pub async fn list(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Option<Uuid>,
    status: Option<&str>,
) -> Result<Vec<Value>, BusinessError> {
    let rows = client
        .query(
            "SELECT t.id, t.usuario_id, t.connection_id, t.meta_template_id, t.name, t.language, t.category,
                    t.status, t.components, t.rejection_reason, t.created_at, t.updated_at
             FROM whatsapp_templates t
             JOIN configuracion_mensajeria_usuario c ON c.id = t.connection_id AND c.activo
             WHERE t.usuario_id = $1 AND ($2::uuid IS NULL OR t.connection_id = $2)
               AND ($3::text IS NULL OR t.status = upper($3))
             ORDER BY t.name, t.language",
            &[&usuario_id, &connection_id, &status],
        )
        .await?;
    Ok(rows.iter().map(row_json).collect())
}

/// Whether the user's number `connection_id` has the template `name` (in `language`, or in any
/// language when none is given).
pub async fn known(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
    name: &str,
    language: Option<&str>,
) -> Result<bool, BusinessError> {
    Ok(list(client, usuario_id, Some(connection_id), None)
        .await?
        .iter()
        .any(|t| t["name"] == name && language.is_none_or(|l| t["language"] == l)))
}

/// The categories Meta accepts for a new template.
pub const CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];

/// Why a new template was refused before it reached Meta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a template name is 1-512 lowercase letters, digits and underscores")]
    InvalidName,
    #[error("language is a code such as en_US or pt_BR")]
    InvalidLanguage,
    #[error("category is MARKETING, UTILITY or AUTHENTICATION")]
    InvalidCategory,
    #[error("a template needs components (at least a BODY)")]
    NoComponents,
}

/// A template as the API asks for it.
#[derive(Debug)]
pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub language: &'a str,
    pub category: &'a str,
    pub components: &'a [Value],
    pub parameter_format: Option<&'a str>,
}

/// Meta's rule for template names. The Graph simulator checks the same rule on its own side,
/// on purpose: it stands for Meta and shares no code with the daemon (docs/ARCHITECTURE.md §6).
pub fn valid_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// The Graph API body creating `t` (its category upper-cased), or why Meta would refuse it.
pub fn create_body(t: &NewTemplate<'_>) -> Result<Value, TemplateError> {
    if !valid_name(t.name) {
        return Err(TemplateError::InvalidName);
    }
    if t.language.trim().is_empty() || t.language.len() > 16 {
        return Err(TemplateError::InvalidLanguage);
    }
    let category = t.category.to_ascii_uppercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(TemplateError::InvalidCategory);
    }
    if t.components.is_empty() {
        return Err(TemplateError::NoComponents);
    }
    let mut body = json!({
        "name": t.name,
        "language": t.language,
        "category": category,
        "components": t.components,
    });
    if let Some(f) = t.parameter_format {
        body["parameter_format"] = json!(f);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, language: &str, category: &str, components: &[Value]) -> Value {
        let t = NewTemplate {
            name,
            language,
            category,
            components,
            parameter_format: None,
        };
        match create_body(&t) {
            Ok(body) => body,
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    #[test]
    fn create_body_checks_as_meta_does() {
        let body = [json!({"type": "BODY", "text": "hi"})];
        let ok = new("order_update_2", "pt_BR", "utility", &body);
        assert_eq!(ok["category"], "UTILITY");
        let refused = |v: Value| v["error"].as_str().map(str::to_string);
        let cases = [
            (
                new("", "en_US", "UTILITY", &body),
                TemplateError::InvalidName,
            ),
            (
                new("Hello", "en_US", "UTILITY", &body),
                TemplateError::InvalidName,
            ),
            (
                new(&"a".repeat(513), "en_US", "UTILITY", &body),
                TemplateError::InvalidName,
            ),
            (
                new("a", " ", "UTILITY", &body),
                TemplateError::InvalidLanguage,
            ),
            (
                new("a", "en_US", "PROMO", &body),
                TemplateError::InvalidCategory,
            ),
            (
                new("a", "en_US", "MARKETING", &[]),
                TemplateError::NoComponents,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(refused(got), Some(want.to_string()));
        }
        assert!(valid_name(&"a".repeat(512)));
    }
}
