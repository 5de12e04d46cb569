//! Business numbers at rest: one `configuracion_mensajeria_usuario` row each
//! (`tipo_conexion = business`), shaped as the seed design's JSON:
//!
//! ```json
//! {"tipo_conexion":"business","numero_telefono":"+15550001111","connection_status":"connected",
//!  "business_config":{"phone_number_id":"…","waba_id":"…","display_phone_number":"…",
//!    "verified_name":"…","access_token":"<sealed>","app_secret":"<sealed>",
//!    "verify_token":"<sealed>","verify_token_sha256":"<hex>"},
//!  "settings":{}}
//! ```
//!
//! Secrets are sealed (`Purpose::Secret`); the verify token's SHA-256 is kept in clear so
//! Meta's handshake (which names only the token) finds its number without opening every row.
//! Status changes append a `business.status` event in the same transaction.

use super::{ACTIVE, BusinessError};
use crate::seal::{Purpose, Sealer};
use crate::secret::Secret;
use crate::store::events;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

/// `connection_status` values of a Business number.
pub mod status {
    pub const CONNECTED: &str = "connected";
    /// Meta refused the token (0/190): nothing is sent until new credentials arrive.
    pub const NEEDS_CREDENTIALS: &str = "needs_credentials";
    /// Meta blocked or locked the account (368/131031).
    pub const RESTRICTED: &str = "restricted";
    pub const DISCONNECTED: &str = "disconnected";
}

/// A number with its secrets opened, for the actor that owns it.
#[derive(Clone, Debug)]
pub struct NumberRecord {
    pub connection_id: Uuid,
    pub usuario_id: Uuid,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: Option<String>,
    pub status: String,
    pub access_token: Secret,
}

/// Credentials as the API received them, already validated against the Graph API.
#[derive(Debug)]
pub struct Credentials {
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

/// What Meta told us about the number during validation.
#[derive(Debug, Clone, Default)]
pub struct NumberInfo {
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    /// `throughput.level`: `STANDARD`, `HIGH`... (the Dispatcher paces sends by it).
    pub throughput_level: Option<String>,
}

fn business_config(sealer: &Sealer, c: &Credentials, info: &NumberInfo) -> Value {
    let mut config = json!({
        "phone_number_id": c.phone_number_id,
        "waba_id": c.waba_id,
        "display_phone_number": info.display_phone_number,
        "verified_name": info.verified_name,
        "quality_rating": info.quality_rating,
        "access_token": sealer.seal_str(Purpose::Secret, c.access_token.expose()),
        "app_secret": sealer.seal_str(Purpose::Secret, c.app_secret.expose()),
        "verify_token": sealer.seal_str(Purpose::Secret, c.verify_token.expose()),
        "verify_token_sha256": crate::digest::sha256_hex(c.verify_token.expose()),
    });
    if let Some(level) = &info.throughput_level {
        config["throughput"] = super::throughput::stored(
            level,
            time::OffsetDateTime::now_utc(),
            super::throughput::Source::Graph,
        );
    }
    config
}

fn numero(info: &NumberInfo) -> Option<String> {
    info.display_phone_number
        .as_deref()
        .map(|d| d.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| !d.is_empty())
        .map(|d| format!("+{d}"))
}

/// Stores a new number. A phone_number_id already active (for any user) is a conflict.
pub async fn insert(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    c: &Credentials,
    info: &NumberInfo,
) -> Result<Uuid, BusinessError> {
    let config = json!({
        "tipo_conexion": "business",
        "numero_telefono": numero(info),
        "connection_status": status::CONNECTED,
        "business_config": business_config(sealer, c, info),
        "settings": crate::crm::settings::defaults(),
    });
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO configuracion_mensajeria_usuario (id, usuario_id, plataforma, configuracion)
             VALUES ($1, $2, 'whatsapp', $3)",
            &[&id, &usuario_id, &config],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(id)
}

/// Replaces the credentials of a number of `usuario_id` and marks it connected again.
pub async fn replace_credentials(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    connection_id: Uuid,
    c: &Credentials,
    info: &NumberInfo,
) -> Result<bool, BusinessError> {
    let n = client
        .execute(
            &format!(
                "UPDATE configuracion_mensajeria_usuario
                 SET configuracion = configuracion || jsonb_build_object(
                         'business_config', $3::jsonb, 'connection_status', $4::text,
                         'numero_telefono', COALESCE($5::text, configuracion->>'numero_telefono')),
                     updated_at = now()
                 WHERE id = $1 AND usuario_id = $2 AND {ACTIVE}"
            ),
            &[
                &connection_id,
                &usuario_id,
                &business_config(sealer, c, info),
                &status::CONNECTED,
                &numero(info),
            ],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(n == 1)
}

/// Marks a number of `usuario_id` inactive and drops its secrets. Its conversations, messages
/// and templates stay (the CRM's history).
pub async fn deactivate(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
) -> Result<bool, BusinessError> {
    let n = client
        .execute(
            &format!(
                "UPDATE configuracion_mensajeria_usuario
                 SET activo = false,
                     configuracion = jsonb_set(configuracion, '{{connection_status}}', '\"disconnected\"')
                         #- '{{business_config,access_token}}' #- '{{business_config,app_secret}}'
                         #- '{{business_config,verify_token}}' #- '{{business_config,verify_token_sha256}}',
                     updated_at = now()
                 WHERE id = $1 AND usuario_id = $2 AND {ACTIVE}"
            ),
            &[&connection_id, &usuario_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(n == 1)
}

/// The active number `connection_id` with its token opened.
pub async fn load(
    client: &impl GenericClient,
    sealer: &Sealer,
    connection_id: Uuid,
) -> Result<Option<NumberRecord>, BusinessError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT usuario_id, configuracion FROM configuracion_mensajeria_usuario
                 WHERE id = $1 AND {ACTIVE}"
            ),
            &[&connection_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    let Some(row) = row else { return Ok(None) };
    let config: Value = row.get(1);
    let bc = &config["business_config"];
    let text = |k: &str| bc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let token = Secret::new(sealer.open_str(Purpose::Secret, &text("access_token"))?);
    Ok(Some(NumberRecord {
        connection_id,
        usuario_id: row.get(0),
        phone_number_id: text("phone_number_id"),
        waba_id: text("waba_id"),
        display_phone_number: bc
            .get("display_phone_number")
            .and_then(Value::as_str)
            .map(String::from),
        status: config
            .get("connection_status")
            .and_then(Value::as_str)
            .unwrap_or(status::CONNECTED)
            .to_string(),
        access_token: token,
    }))
}

/// Ids and phone_number_ids of every active number (the supervisor starts one actor each).
pub async fn active(client: &impl GenericClient) -> Result<Vec<(Uuid, String)>, BusinessError> {
    let rows = client
        .query(
            &format!(
                "SELECT id, configuracion->'business_config'->>'phone_number_id'
                 FROM configuracion_mensajeria_usuario WHERE {ACTIVE} ORDER BY created_at"
            ),
            &[],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect())
}

/// Where webhook events of a phone_number_id or WABA go.
#[derive(Clone)]
pub struct Route {
    pub connection_id: Uuid,
    pub usuario_id: Uuid,
    pub phone_number_id: String,
    pub waba_id: String,
    /// Digits only: Meta's number-level webhooks (`phone_number_quality_update`) name the
    /// number by it alone.
    pub display_digits: String,
    /// The app secret, opened (only filled by [`routes`] with `with_secret`).
    pub app_secret: Option<String>,
}

/// The app secret is never shown.
impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("connection_id", &self.connection_id)
            .field("usuario_id", &self.usuario_id)
            .field("phone_number_id", &self.phone_number_id)
            .field("waba_id", &self.waba_id)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The active numbers named by phone_number_id or WABA id.
pub async fn routes(
    client: &impl GenericClient,
    sealer: &Sealer,
    phone_ids: &[String],
    waba_ids: &[String],
    with_secret: bool,
) -> Result<Vec<Route>, BusinessError> {
    // Prepared once per pooled connection: every drain step with Meta bodies runs it.
    let statement = client
        .prepare_cached(&format!(
            "SELECT id, usuario_id, configuracion->'business_config'
             FROM configuracion_mensajeria_usuario
             WHERE {ACTIVE} AND (configuracion->'business_config'->>'phone_number_id' = ANY($1)
                 OR configuracion->'business_config'->>'waba_id' = ANY($2))"
        ))
        .await
        .map_err(crate::store::StoreError::from)?;
    let rows = client
        .query(&statement, &[&phone_ids, &waba_ids])
        .await
        .map_err(crate::store::StoreError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bc: Value = r.get(2);
        let text = |k: &str| bc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let app_secret = if with_secret {
            Some(sealer.open_str(Purpose::Secret, &text("app_secret"))?)
        } else {
            None
        };
        out.push(Route {
            connection_id: r.get(0),
            usuario_id: r.get(1),
            phone_number_id: text("phone_number_id"),
            waba_id: text("waba_id"),
            display_digits: crate::phone::digits_of(&text("display_phone_number")),
            app_secret,
        });
    }
    Ok(out)
}

/// Whether some active number (or `extra`, the environment's verify token) uses this verify
/// token; compared by digest, never in clear.
pub async fn verify_token_known(
    client: &impl GenericClient,
    token: &str,
) -> Result<bool, BusinessError> {
    let row = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM configuracion_mensajeria_usuario
                 WHERE {ACTIVE} AND configuracion->'business_config'->>'verify_token_sha256' = $1)"
            ),
            &[&crate::digest::sha256_hex(token)],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(row.get(0))
}

/// Sets `connection_status` and appends a `business.status` event, in one transaction.
/// Returns false when the number was already in that status (no event then).
pub async fn set_status(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    number: &NumberRecord,
    new_status: &str,
    reason: Option<&str>,
) -> Result<bool, BusinessError> {
    let tx = client
        .transaction()
        .await
        .map_err(crate::store::StoreError::from)?;
    let n = tx
        .execute(
            &format!(
                "UPDATE configuracion_mensajeria_usuario
                 SET configuracion = jsonb_set(configuracion, '{{connection_status}}', to_jsonb($2::text)),
                     updated_at = now()
                 WHERE id = $1 AND {ACTIVE} AND configuracion->>'connection_status' IS DISTINCT FROM $2"
            ),
            &[&number.connection_id, &new_status],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    if n == 1 {
        events::append(
            &tx,
            sealer,
            number.usuario_id,
            "business.status",
            &json!({
                "connection_id": number.connection_id,
                "phone_number_id": number.phone_number_id,
                "status": new_status,
                "reason": reason,
            }),
        )
        .await?;
    }
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(n == 1)
}

/// The public view of a number (never its secrets).
pub fn public_json(id: Uuid, config: &Value, created_at: time::OffsetDateTime) -> Value {
    let bc = &config["business_config"];
    json!({
        "id": id,
        "type": "business",
        "phone_number_id": bc.get("phone_number_id"),
        "waba_id": bc.get("waba_id"),
        "display_phone_number": bc.get("display_phone_number"),
        "verified_name": bc.get("verified_name"),
        "quality_rating": bc.get("quality_rating"),
        "throughput_level": bc.pointer("/throughput/level"),
        "phone": config.get("numero_telefono"),
        "status": config.get("connection_status"),
        "created_at": created_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
    })
}

/// The user's active numbers, oldest first.
pub async fn list_for_user(
    client: &impl GenericClient,
    usuario_id: Uuid,
) -> Result<Vec<Value>, BusinessError> {
    let rows = client
        .query(
            &format!(
                "SELECT id, configuracion, created_at FROM configuracion_mensajeria_usuario
                 WHERE usuario_id = $1 AND {ACTIVE} ORDER BY created_at, id"
            ),
            &[&usuario_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(rows
        .iter()
        .map(|r| public_json(r.get(0), &r.get(1), r.get(2)))
        .collect())
}

/// One active number of `usuario_id` (None: absent or another user's).
pub async fn get_for_user(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
) -> Result<Option<Value>, BusinessError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT id, configuracion, created_at FROM configuracion_mensajeria_usuario
                 WHERE id = $1 AND usuario_id = $2 AND {ACTIVE}"
            ),
            &[&connection_id, &usuario_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(row.map(|r| public_json(r.get(0), &r.get(1), r.get(2))))
}

/// The user's only active number, when there is exactly one (routes where `connection_id` is
/// optional).
pub async fn only_number(
    client: &impl GenericClient,
    usuario_id: Uuid,
) -> Result<Option<Uuid>, BusinessError> {
    let rows = client
        .query(
            &format!(
                "SELECT id FROM configuracion_mensajeria_usuario WHERE usuario_id = $1 AND {ACTIVE} LIMIT 2"
            ),
            &[&usuario_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok((rows.len() == 1).then(|| rows[0].get(0)))
}

/// The stored credentials of an active number of `usuario_id`, opened (to validate a partial
/// replacement: omitted secrets keep their stored value).
pub async fn credentials(
    client: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    connection_id: Uuid,
) -> Result<Option<Credentials>, BusinessError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT configuracion->'business_config' FROM configuracion_mensajeria_usuario
                 WHERE id = $1 AND usuario_id = $2 AND {ACTIVE}"
            ),
            &[&connection_id, &usuario_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let bc: Value = row.get(0);
    let text = |k: &str| bc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let open = |k: &str| sealer.open_str(Purpose::Secret, &text(k)).map(Secret::new);
    Ok(Some(Credentials {
        phone_number_id: text("phone_number_id"),
        waba_id: text("waba_id"),
        access_token: open("access_token")?,
        app_secret: open("app_secret")?,
        verify_token: open("verify_token")?,
    }))
}

/// Whether some active number here belongs to the WhatsApp Business Account `waba_id`.
pub async fn waba_in_use(
    client: &impl GenericClient,
    waba_id: &str,
) -> Result<bool, BusinessError> {
    let row = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM configuracion_mensajeria_usuario
                 WHERE {ACTIVE} AND configuracion->'business_config'->>'waba_id' = $1)"
            ),
            &[&waba_id],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(row.get(0))
}

/// Whether a phone_number_id is already connected (by anyone).
pub async fn phone_taken(
    client: &impl GenericClient,
    phone_number_id: &str,
) -> Result<bool, BusinessError> {
    let row = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM configuracion_mensajeria_usuario
                 WHERE {ACTIVE} AND configuracion->'business_config'->>'phone_number_id' = $1)"
            ),
            &[&phone_number_id],
        )
        .await?;
    Ok(row.get(0))
}
