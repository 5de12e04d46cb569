//! Connecting a Business number, one sequence for every way a number arrives: the API
//! (`POST` and `PATCH /v1/business/numbers`) and the environment of a single-number install
//! (`WHATSAPP_BUSINESS_*`, at start). The credentials are checked for shape, validated against
//! the Graph API (nothing is stored when Meta refuses), sealed and stored (or replace the
//! number's), the app is subscribed to the account's webhooks with this daemon as the callback
//! when `PUBLIC_URL` is known, the number's actor is started (or replaced) here and the other
//! nodes are told to reload it.

use super::error::BusinessSupervisorError;
use super::graph::GraphClient;
use super::handle::BusinessSupervisorHandle;
use super::store::{self, Credentials};
use super::validate::{self, ValidationError};
use super::{BusinessError, GraphSettings};
use crate::business::supervisor::BusinessSupervisorMessage;
use crate::nodes::control::{Control, broadcast};
use crate::shared::Shared;
use crate::supervision::Slot;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// Why a number was not connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A field has the wrong shape (before anything is asked of Meta).
    #[error("{0}")]
    Invalid(String),
    /// The phone number id is active already (for this user when updating was not asked, or
    /// for another user).
    #[error("phone number id {0} is already connected")]
    AlreadyConnected(String),
    /// Meta refused the credentials: the message names the step and what Meta said.
    #[error("the credentials were not accepted: {0}")]
    Rejected(String),
    /// The Graph API could not be reached; nothing was decided.
    #[error("could not validate the credentials: {0}")]
    Unreachable(String),
    /// The number to update is not the user's (or not active).
    #[error("business number not found")]
    NotFound,
    #[error(transparent)]
    Business(#[from] BusinessError),
}

impl From<ValidationError> for ConnectError {
    fn from(e: ValidationError) -> Self {
        match e {
            ValidationError::Refused(m) => ConnectError::Rejected(m),
            ValidationError::Unreachable(m) => ConnectError::Unreachable(m),
        }
    }
}

/// Which number the credentials are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A new number (refused if its phone number id is active anywhere).
    New,
    /// Replace the credentials of this number of the user.
    Existing(Uuid),
}

/// What [`connect`] did.
#[derive(Debug, Clone)]
pub struct Connected {
    pub connection_id: Uuid,
    /// The webhook subscription made with `PUBLIC_URL` (`None` without it).
    pub webhooks: Option<Value>,
}

/// Meta's numeric ids.
pub fn check_id(what: &str, v: &str) -> Result<(), ConnectError> {
    if v.is_empty() || v.len() > 32 || !v.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConnectError::Invalid(format!(
            "{what} must be Meta's numeric id"
        )));
    }
    Ok(())
}

/// Tokens and secrets.
pub fn check_secret(what: &str, v: &str) -> Result<(), ConnectError> {
    if v.trim().is_empty() || v.len() > 4096 || v.chars().any(char::is_control) {
        return Err(ConnectError::Invalid(format!(
            "{what} must be a non-empty string without control characters"
        )));
    }
    Ok(())
}

/// Every field of `c`.
pub fn check_credentials(c: &Credentials) -> Result<(), ConnectError> {
    check_id("phone_number_id", &c.phone_number_id)?;
    check_id("waba_id", &c.waba_id)?;
    check_secret("access_token", c.access_token.expose())?;
    check_secret("app_secret", c.app_secret.expose())?;
    check_secret("verify_token", c.verify_token.expose())
}

pub fn graph_settings(shared: &Shared) -> GraphSettings {
    GraphSettings {
        base: shared.settings.graph_api_base.clone(),
        version: shared.settings.graph_api_version.clone(),
    }
}

/// The callback Meta is given: `PUBLIC_URL/webhooks/whatsapp`.
pub fn callback_uri(public_url: &str) -> String {
    format!("{}/webhooks/whatsapp", public_url.trim_end_matches('/'))
}

/// Checks, validates, stores, subscribes and starts; see the module comment.
pub async fn connect(
    shared: &Arc<Shared>,
    supervisor: &Slot<BusinessSupervisorMessage>,
    usuario_id: Uuid,
    creds: &Credentials,
    target: Target,
) -> Result<Connected, ConnectError> {
    check_credentials(creds)?;
    if target == Target::New {
        let client = shared.pool.get().await.map_err(store_error)?;
        if store::phone_taken(&client, &creds.phone_number_id).await? {
            return Err(ConnectError::AlreadyConnected(
                creds.phone_number_id.clone(),
            ));
        }
    }
    let info = validate::validate(&graph_settings(shared), creds).await?;
    let client = shared.pool.get().await.map_err(store_error)?;
    let connection_id = match target {
        Target::New => {
            match store::insert(&client, &shared.sealer, usuario_id, creds, &info).await {
                Ok(id) => id,
                Err(BusinessError::Store(e)) if e.is_unique_violation() => {
                    return Err(ConnectError::AlreadyConnected(
                        creds.phone_number_id.clone(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Target::Existing(id) => {
            if !store::replace_credentials(&client, &shared.sealer, usuario_id, id, creds, &info)
                .await?
            {
                return Err(ConnectError::NotFound);
            }
            id
        }
    };
    drop(client);
    let webhooks = match &shared.settings.public_url {
        Some(public) => Some(subscribe(shared, creds, public).await),
        None => None,
    };
    start(shared, supervisor, connection_id).await;
    Ok(Connected {
        connection_id,
        webhooks,
    })
}

fn store_error(e: deadpool_postgres::PoolError) -> ConnectError {
    ConnectError::Business(BusinessError::Store(e.into()))
}

/// Subscribes the app to the account's webhooks with this daemon as the callback (Meta first
/// performs the verification handshake against it, with the number's verify token). A refusal
/// does not undo the connection: the number sends, and the answer says why webhooks are not
/// wired.
async fn subscribe(shared: &Shared, creds: &Credentials, public_url: &str) -> Value {
    let uri = callback_uri(public_url);
    let settings = graph_settings(shared);
    let done = match GraphClient::new(
        &settings.base,
        &settings.version,
        creds.access_token.expose(),
    ) {
        Ok(client) => client
            .subscribe_app(&creds.waba_id, Some((&uri, creds.verify_token.expose())))
            .await
            .map_err(|e| match e {
                super::graph::GraphError::Api(m) => format!("Meta said {}", m.describe()),
                other => other.to_string(),
            }),
        Err(e) => Err(e.to_string()),
    };
    match done {
        Ok(()) => {
            tracing::info!(waba_id = %creds.waba_id, callback = %uri, "app subscribed to the account's webhooks");
            json!({"state": "subscribed", "callback_uri": uri})
        }
        Err(reason) => {
            tracing::warn!(waba_id = %creds.waba_id, callback = %uri, %reason, "could not subscribe the app to the account's webhooks");
            json!({"state": "failed", "callback_uri": uri, "reason": reason})
        }
    }
}

/// Starts (or replaces) the number's actor here and tells the other nodes to reload it.
pub async fn start(
    shared: &Shared,
    supervisor: &Slot<BusinessSupervisorMessage>,
    connection_id: Uuid,
) {
    match BusinessSupervisorHandle::new(supervisor.clone())
        .connect(connection_id)
        .await
    {
        Ok(()) => {}
        Err(BusinessSupervisorError::NotRunning) => {
            tracing::error!(%connection_id, "the business supervisor is restarting; it starts the number when it loads the numbers")
        }
        Err(e) => {
            tracing::error!(%connection_id, error = %e, "business number actor did not start; the supervisor retries at its next start");
        }
    }
    reload_elsewhere(shared, connection_id).await;
}

/// Tells the other nodes to reload the number (new credentials, or removed).
pub async fn reload_elsewhere(shared: &Shared, connection_id: Uuid) {
    let control = Control::BusinessReload {
        from: shared.node_id.clone(),
        id: connection_id,
    };
    let sent = match shared.pool.get().await {
        Ok(client) => broadcast(&client, &control)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::warn!(%connection_id, error = %e, "could not tell the other nodes about the number");
    }
}

/// The webhook state Meta reports for the number's account (`GET /{waba_id}/subscribed_apps`):
/// `{"state": "subscribed", "apps": [...]}` with each app's callback as Meta shows it,
/// `{"state": "not_subscribed"}`, or `{"state": "unknown", "reason"}` when Meta could not say.
/// With `expected` (the callback made from `PUBLIC_URL`), `points_here` says whether Meta
/// sends the account's webhooks to it.
pub async fn webhook_configuration(
    settings: &GraphSettings,
    access_token: &str,
    waba_id: &str,
    expected: Option<&str>,
) -> Value {
    let client = match GraphClient::new(&settings.base, &settings.version, access_token) {
        Ok(c) => c,
        Err(e) => return json!({"state": "unknown", "reason": e.to_string()}),
    };
    match client.subscribed_apps(waba_id).await {
        Ok(apps) if apps.is_empty() => json!({"state": "not_subscribed", "apps": []}),
        Ok(apps) => {
            let callback = apps
                .iter()
                .find_map(|a| a.get("override_callback_uri").and_then(Value::as_str))
                .map(String::from);
            let mut v = json!({"state": "subscribed", "apps": apps, "callback_uri": callback});
            if let Some(expected) = expected {
                v["points_here"] = json!(callback.as_deref() == Some(expected));
            }
            v
        }
        Err(e) => json!({"state": "unknown", "reason": match e {
            super::graph::GraphError::Api(m) => format!("Meta said {}", m.describe()),
            other => other.to_string(),
        }}),
    }
}
