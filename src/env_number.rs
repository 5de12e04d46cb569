//! Single-number installs: the Business number named by `WHATSAPP_BUSINESS_*` is connected (or
//! its credentials updated) at start for the user `WHATSAPP_BUSINESS_USER_EMAIL` (created when
//! missing), through the same sequence as `POST /v1/business/numbers`
//! ([`sincro_core::business::connect`]): a refusal by Meta stops the start with what Meta
//! said.

use crate::config::EnvBusinessNumber;
use sincro_core::Shared;
use sincro_core::business::connect::{self, ConnectError, Target};
use sincro_core::business::store::{self, Credentials};
use sincro_core::business::supervisor::BusinessSupervisorMessage;
use sincro_core::secret::Secret;
use sincro_core::supervision::Slot;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum EnvNumberError {
    #[error(
        "WHATSAPP_BUSINESS_TOKEN and _PHONE_ID are set, but {0} missing: a number from the environment needs WHATSAPP_BUSINESS_WABA_ID, WHATSAPP_BUSINESS_APP_SECRET and WHATSAPP_BUSINESS_USER_EMAIL too"
    )]
    Incomplete(String),
    #[error(
        "WHATSAPP_BUSINESS_PHONE_ID {0} is connected for another user than WHATSAPP_BUSINESS_USER_EMAIL"
    )]
    OtherUser(String),
    #[error("WHATSAPP_BUSINESS_*: {0}")]
    Connect(#[from] ConnectError),
    #[error("WHATSAPP_BUSINESS_*: database: {0}")]
    Store(String),
}

/// What the start did with the number.
#[derive(Debug, Clone)]
pub struct EnvNumberOutcome {
    pub connection_id: Uuid,
    pub usuario_id: Uuid,
    /// Connected now for the first time (else its credentials were refreshed).
    pub created: bool,
}

/// Connects or updates the number; see the module comment.
pub async fn install(
    shared: &Arc<Shared>,
    supervisor: &Slot<BusinessSupervisorMessage>,
    env: &EnvBusinessNumber,
) -> Result<EnvNumberOutcome, EnvNumberError> {
    let mut missing = Vec::new();
    if env.waba_id.is_none() {
        missing.push("WHATSAPP_BUSINESS_WABA_ID");
    }
    if env.app_secret.is_none() {
        missing.push("WHATSAPP_BUSINESS_APP_SECRET");
    }
    if env.user_email.is_none() {
        missing.push("WHATSAPP_BUSINESS_USER_EMAIL");
    }
    if !missing.is_empty() {
        let verb = if missing.len() == 1 { "is" } else { "are" };
        return Err(EnvNumberError::Incomplete(format!(
            "{} {verb}",
            missing.join(", ")
        )));
    }
    let email = env.user_email.as_deref().unwrap_or_default();
    let store_err = |e: String| EnvNumberError::Store(e);
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| store_err(e.to_string()))?;
    let (usuario_id, user_created) = sincro_core::store::users::find_or_create(&mut client, email)
        .await
        .map_err(|e| store_err(e.to_string()))?;
    if user_created {
        tracing::info!(%usuario_id, "created the user of WHATSAPP_BUSINESS_USER_EMAIL (give it an API key with `sincro-whatsapp user create --email ...`)");
    }
    let existing = client
        .query_opt(
            "SELECT id, usuario_id FROM configuracion_mensajeria_usuario
             WHERE activo AND configuracion->>'tipo_conexion' = 'business'
               AND configuracion->'business_config'->>'phone_number_id' = $1
             ORDER BY created_at LIMIT 1",
            &[&env.phone_number_id],
        )
        .await
        .map_err(|e| store_err(e.to_string()))?
        .map(|r| (r.get::<_, Uuid>(0), r.get::<_, Uuid>(1)));
    let target = match existing {
        Some((_, owner)) if owner != usuario_id => {
            return Err(EnvNumberError::OtherUser(env.phone_number_id.clone()));
        }
        Some((id, _)) => Target::Existing(id),
        None => Target::New,
    };
    // Without WHATSAPP_BUSINESS_VERIFY_TOKEN: the stored one, else a new random one (it only
    // matters for Meta's handshake, which PUBLIC_URL makes automatic).
    let verify_token = match (&env.verify_token, target) {
        (Some(t), _) => t.clone(),
        (None, Target::Existing(id)) => store::credentials(&client, &shared.sealer, usuario_id, id)
            .await
            .ok()
            .flatten()
            .map(|c| c.verify_token)
            .unwrap_or_else(random_token),
        (None, Target::New) => random_token(),
    };
    drop(client);
    let creds = Credentials {
        phone_number_id: env.phone_number_id.clone(),
        waba_id: env.waba_id.clone().unwrap_or_default(),
        access_token: env.access_token.clone(),
        app_secret: env.app_secret.clone().unwrap_or_else(|| Secret::new("")),
        verify_token,
    };
    match connect::connect(shared, supervisor, usuario_id, &creds, target).await {
        Ok(done) => {
            tracing::info!(
                connection = %done.connection_id,
                phone_number_id = %creds.phone_number_id,
                created = target == Target::New,
                webhooks = ?done.webhooks,
                "Business number from the environment connected"
            );
            Ok(EnvNumberOutcome {
                connection_id: done.connection_id,
                usuario_id,
                created: target == Target::New,
            })
        }
        // Already connected and Meta is only unreachable now: keep running on what is stored.
        Err(ConnectError::Unreachable(why)) if matches!(target, Target::Existing(_)) => {
            let Target::Existing(id) = target else {
                unreachable!()
            };
            tracing::warn!(connection = %id, %why, "could not validate the Business number from the environment again; it keeps its stored credentials");
            Ok(EnvNumberOutcome {
                connection_id: id,
                usuario_id,
                created: false,
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn random_token() -> Secret {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
