//! Credential validation before a number is stored (Meta's documented steps): the token
//! is valid with the WhatsApp scopes and reaches the WABA (`debug_token`), the phone number
//! exists for this token and belongs to the WABA, and the app is subscribed to the WABA's
//! webhooks (`POST /{waba_id}/subscribed_apps`). A short-lived client of its own: no actor
//! owns these credentials yet.

use super::GraphSettings;
use super::graph::{GraphClient, GraphError};
use super::store::{Credentials, NumberInfo};
use serde_json::Value;

const SCOPES: &[&str] = &[
    "whatsapp_business_messaging",
    "whatsapp_business_management",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValidationError {
    /// Meta answered and said no; the message names the step and what Meta said.
    #[error("{0}")]
    Refused(String),
    /// The Graph API could not be reached or answered nonsense; nothing was decided.
    #[error("the Graph API could not be reached: {0}")]
    Unreachable(String),
}

fn step(what: &str, e: GraphError) -> ValidationError {
    match e {
        GraphError::Api(m) => {
            ValidationError::Refused(format!("{what}: Meta said {}", m.describe()))
        }
        GraphError::Status { status } if status < 500 => {
            ValidationError::Refused(format!("{what}: Meta answered HTTP {status}"))
        }
        other => ValidationError::Unreachable(format!("{what}: {other}")),
    }
}

/// Runs the checks; returns what Meta says about the number.
pub async fn validate(
    settings: &GraphSettings,
    c: &Credentials,
) -> Result<NumberInfo, ValidationError> {
    let client = GraphClient::new(&settings.base, &settings.version, c.access_token.expose())
        .map_err(|e| ValidationError::Unreachable(e.to_string()))?;

    let debug = client
        .debug_token()
        .await
        .map_err(|e| step("checking the access token", e))?;
    check_token(&debug, &c.waba_id)?;

    let number = client.phone_number(&c.phone_number_id).await.map_err(|e| {
        step(
            &format!("looking up phone number id {}", c.phone_number_id),
            e,
        )
    })?;

    let listed = client
        .waba_phone_numbers(&c.waba_id)
        .await
        .map_err(|e| step(&format!("listing the numbers of WABA {}", c.waba_id), e))?;
    let belongs = listed
        .iter()
        .any(|n| n.get("id").and_then(Value::as_str) == Some(c.phone_number_id.as_str()));
    if !belongs {
        return Err(ValidationError::Refused(format!(
            "phone number id {} does not belong to WABA {}",
            c.phone_number_id, c.waba_id
        )));
    }

    client
        .subscribe_app(&c.waba_id, None)
        .await
        .map_err(|e| step(&format!("subscribing the app to WABA {}", c.waba_id), e))?;

    let text = |k: &str| number.get(k).and_then(Value::as_str).map(String::from);
    Ok(NumberInfo {
        display_phone_number: text("display_phone_number"),
        verified_name: text("verified_name"),
        quality_rating: text("quality_rating"),
        throughput_level: super::throughput::level_of(&number),
    })
}

/// `debug_token`'s verdict: valid, with both WhatsApp scopes, and granted on this WABA when
/// Meta lists granular targets. Pure, for unit tests.
pub fn check_token(debug: &Value, waba_id: &str) -> Result<(), ValidationError> {
    let data = debug.get("data").unwrap_or(&Value::Null);
    if data.get("is_valid").and_then(Value::as_bool) != Some(true) {
        let why = data
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(ValidationError::Refused(format!(
            "checking the access token: Meta says it is not valid ({why})"
        )));
    }
    let scopes: Vec<&str> = data
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let missing: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| !scopes.contains(s))
        .collect();
    if !missing.is_empty() {
        return Err(ValidationError::Refused(format!(
            "checking the access token: it lacks the scopes {}",
            missing.join(", ")
        )));
    }
    let granular = data.get("granular_scopes").and_then(Value::as_array);
    for g in granular.into_iter().flatten() {
        let scope = g.get("scope").and_then(Value::as_str).unwrap_or("");
        let Some(targets) = g.get("target_ids").and_then(Value::as_array) else {
            continue;
        };
        if SCOPES.contains(&scope) && !targets.iter().any(|t| t.as_str() == Some(waba_id)) {
            return Err(ValidationError::Refused(format!(
                "checking the access token: its {scope} scope does not include WABA {waba_id}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"data":{"is_valid":true,"scopes":["whatsapp_business_management","whatsapp_business_messaging"],
            "granular_scopes":[{"scope":"whatsapp_business_messaging","target_ids":["W1"]}]}})
    }

    #[test]
    fn token_checks() {
        assert_eq!(check_token(&good(), "W1"), Ok(()));
        assert!(
            check_token(&good(), "W2")
                .unwrap_err()
                .to_string()
                .contains("WABA W2")
        );
        let invalid = json!({"data":{"is_valid":false,"error":{"message":"expired"}}});
        assert!(
            check_token(&invalid, "W1")
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        let scopes = json!({"data":{"is_valid":true,"scopes":["whatsapp_business_messaging"]}});
        assert!(
            check_token(&scopes, "W1")
                .unwrap_err()
                .to_string()
                .contains("whatsapp_business_management")
        );
    }
}
