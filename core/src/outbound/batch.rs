//! `POST /v1/messages/batch` as one call: the body read as up to [`MAX_MESSAGES`] messages,
//! each shaped like a `POST /v1/messages` body plus its own optional `idempotency_key`, then
//! handed to [`submit::submit_many`], the one path single messages take too, so every rule
//! applies to each item exactly as it would alone. Items are independent: the valid ones are
//! queued together (one transaction) and each refused one is reported in its place, so a
//! CRM retrying a batch after fixing some items re-sends it whole with the same keys and gets
//! the first messages back for those already queued. A body that is not a batch, or one over
//! the limit, queues nothing.

use super::submit::{self, Item, Submit, SubmitError, Submitted};
use crate::store::StoreError;
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

/// The most messages one batch may carry.
pub const MAX_MESSAGES: usize = 1000;

/// Why a batch queued nothing.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(
        "the body must be {{\"messages\": [...]}}: a list of up to 1000 messages, each shaped \
         like a POST /v1/messages body with an optional \"idempotency_key\" ({0})"
    )]
    Malformed(&'static str),
    #[error("a batch carries at most {MAX_MESSAGES} messages; this one has {0}: split it")]
    TooMany(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An idempotency key: 1 to 255 visible ASCII characters (the `Idempotency-Key` header's
/// rule too).
pub fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Validates, checks and queues a batch: one result per message, in the batch's order.
pub async fn submit_batch(
    pool: &Pool,
    s: &Submit<'_>,
    usuario_id: Uuid,
    body: Value,
) -> Result<Vec<Result<Submitted, SubmitError>>, BatchError> {
    let Value::Object(mut list) = body else {
        return Err(BatchError::Malformed("the body is not an object"));
    };
    if let Some(k) = list.keys().find(|k| *k != "messages") {
        return Err(BatchError::Malformed(
            if k == "connection_id" || k == "to" {
                "a message was sent instead of a batch"
            } else {
                "unknown field next to \"messages\""
            },
        ));
    }
    let Some(Value::Array(messages)) = list.remove("messages") else {
        return Err(BatchError::Malformed(
            "\"messages\" is missing or not a list",
        ));
    };
    if messages.is_empty() {
        return Err(BatchError::Malformed("\"messages\" is empty"));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(BatchError::TooMany(messages.len()));
    }
    // Each item without its key is the body a single message would have (its hash too).
    let mut bodies: Vec<Value> = Vec::with_capacity(messages.len());
    let mut keys: Vec<Result<Option<String>, SubmitError>> = Vec::with_capacity(messages.len());
    for mut m in messages {
        let key = match m.as_object_mut().and_then(|o| o.remove("idempotency_key")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(k)) if key_ok(&k) => Ok(Some(k)),
            Some(_) => Err(SubmitError::InvalidKey),
        };
        bodies.push(m);
        keys.push(key);
    }
    let items: Vec<Item> = bodies
        .iter()
        .zip(&keys)
        .filter_map(|(body, key)| {
            let key = key.as_ref().ok()?;
            Some(Item {
                body,
                idempotency_key: key.as_deref(),
            })
        })
        .collect();
    let mut done = submit::submit_many(pool, s, usuario_id, &items)
        .await?
        .into_iter();
    Ok(keys
        .into_iter()
        .map(|key| match key {
            Ok(_) => done
                .next()
                .unwrap_or(Err(SubmitError::Internal("message left unanswered"))),
            Err(e) => Err(e),
        })
        .collect())
}
