//! The app's webhook subscription on a number's WhatsApp Business Account, when the number is
//! removed: Meta would keep posting the account's webhooks to this daemon (and retry the ones
//! it refuses) until the app is unsubscribed, so removing the last number of an account here
//! unsubscribes the app (`DELETE /{waba_id}/subscribed_apps`). While another number of the same
//! account is still connected here the subscription stays: the webhooks are shared.

use super::graph::GraphClient;
use super::store::{self, NumberRecord};
use super::{BusinessError, GraphSettings};
use deadpool_postgres::GenericClient;
use serde::Serialize;

/// What became of the subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Released {
    /// The app no longer receives the account's webhooks.
    Unsubscribed,
    /// Another number of the account is still connected here.
    Kept,
    /// Meta refused or could not be reached: the operator must unsubscribe by hand.
    Failed { reason: String },
}

/// Called after `number` was deactivated (its record was loaded before, with its token).
pub async fn release(
    client: &impl GenericClient,
    graph: &GraphSettings,
    number: &NumberRecord,
) -> Result<Released, BusinessError> {
    if store::waba_in_use(client, &number.waba_id).await? {
        return Ok(Released::Kept);
    }
    let result = async {
        GraphClient::new(&graph.base, &graph.version, number.access_token.expose())?
            .unsubscribe_app(&number.waba_id)
            .await
    }
    .await;
    Ok(match result {
        Ok(()) => Released::Unsubscribed,
        Err(e) => {
            tracing::warn!(connection = %number.connection_id, error = %e, "could not unsubscribe the app from the account's webhooks");
            Released::Failed {
                reason: format!(
                    "Meta did not unsubscribe the app from the account's webhooks ({}); remove the subscription in Meta's app dashboard",
                    e
                ),
            }
        }
    })
}
