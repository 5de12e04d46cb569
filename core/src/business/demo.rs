//! `sincro-whatsapp demo`'s Business number: an account on the in-process Graph simulator,
//! connected for the demo user through the same sequence as `POST /v1/business/numbers`
//! ([`super::connect::connect`]: validated, sealed, actor started, other nodes told), then the
//! simulator's webhooks pointed at the daemon (the simulator first performs Meta's handshake
//! against it). Numbers left by an earlier demo run (whose simulator is gone) are removed first.

use super::connect::{self, Target};
use super::error::BusinessSupervisorError;
use super::graph::GraphClient;
use super::handle::BusinessSupervisorHandle;
use super::store::{self, Credentials};
use super::{BusinessError, GraphSettings};
use crate::business::supervisor::BusinessSupervisorMessage;
use crate::shared::Shared;
use crate::supervision::Slot;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What the demo prints.
#[derive(Debug, Clone)]
pub struct DemoNumber {
    pub connection_id: Uuid,
    pub phone_number_id: String,
    pub display_phone_number: String,
}

/// Creates, connects and subscribes the demo account. `daemon_base`: `http://host:port`.
pub async fn connect(
    shared: &Arc<Shared>,
    supervisor_slot: &Slot<BusinessSupervisorMessage>,
    usuario_id: Uuid,
    sim_base: &str,
    daemon_base: &str,
) -> Result<DemoNumber, BusinessError> {
    let client = shared.pool.get().await?;
    let supervisor = BusinessSupervisorHandle::new(supervisor_slot.clone());
    if !supervisor.is_running() {
        return Err(BusinessError::Io(
            BusinessSupervisorError::NotRunning.to_string(),
        ));
    }
    for old in store::list_for_user(&client, usuario_id).await? {
        if let Some(id) = old["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) {
            if let Err(e) = supervisor.disconnect(id).await {
                tracing::warn!(connection = %id, error = %e, "the old demo number's actor did not confirm its stop");
            }
            store::deactivate(&client, usuario_id, id).await?;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BusinessError::Io(e.to_string()))?;
    let account: Value = http
        .post(format!("{sim_base}/sim/accounts"))
        .json(&json!({}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| BusinessError::Io(format!("create the simulator account: {e}")))?
        .json()
        .await
        .map_err(|e| BusinessError::Io(format!("simulator account: {e}")))?;
    let text = |k: &str| account[k].as_str().unwrap_or_default().to_string();
    let creds = Credentials {
        phone_number_id: text("phone_number_id"),
        waba_id: text("waba_id"),
        access_token: text("access_token").into(),
        app_secret: text("app_secret").into(),
        verify_token: text("verify_token").into(),
    };
    let settings = GraphSettings {
        base: shared.settings.graph_api_base.clone(),
        version: shared.settings.graph_api_version.clone(),
    };
    let connection_id = connect::connect(shared, supervisor_slot, usuario_id, &creds, Target::New)
        .await
        .map_err(|e| BusinessError::Invalid(e.to_string()))?
        .connection_id;
    GraphClient::new(
        &settings.base,
        &settings.version,
        creds.access_token.expose(),
    )?
    .subscribe_app(
        &creds.waba_id,
        Some((
            &format!("{daemon_base}/webhooks/whatsapp"),
            creds.verify_token.expose(),
        )),
    )
    .await?;
    Ok(DemoNumber {
        connection_id,
        phone_number_id: creds.phone_number_id,
        display_phone_number: text("display_phone_number"),
    })
}
