//! Errors of the WhatsApp Web simulator's control routes, answered as
//! `{"error":{"code":"snake_case","message":"..."}}` with a 4xx status.

use warp::http::StatusCode;

/// What a control route can refuse.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("invalid phone number {0:?}: expected 5 to 20 digits")]
    InvalidPhone(String),
    #[error("that QR is not shown by any page right now (expired, already scanned or unknown)")]
    QrNotCurrent,
    #[error("unknown pairing code")]
    UnknownPairingCode,
    #[error("the pairing code was requested for another phone number")]
    PairingPhoneMismatch,
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("account {0} has no linked device")]
    NoLinkedDevice(String),
    #[error("unknown message {0}")]
    UnknownMessage(String),
    #[error("message {0} was not sent by a linked account; acks apply to sent messages")]
    NotOutgoing(String),
    #[error("not found")]
    NotFound,
}

impl SimError {
    /// The snake_case code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::BadRequest(_) => "invalid_request",
            SimError::InvalidPhone(_) => "invalid_phone",
            SimError::QrNotCurrent => "qr_not_current",
            SimError::UnknownPairingCode => "unknown_pairing_code",
            SimError::PairingPhoneMismatch => "pairing_phone_mismatch",
            SimError::UnknownAccount(_) => "unknown_account",
            SimError::NoLinkedDevice(_) => "no_linked_device",
            SimError::UnknownMessage(_) => "unknown_message",
            SimError::NotOutgoing(_) => "not_outgoing",
            SimError::NotFound => "not_found",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            SimError::BadRequest(_) | SimError::InvalidPhone(_) => StatusCode::BAD_REQUEST,
            SimError::QrNotCurrent
            | SimError::PairingPhoneMismatch
            | SimError::NoLinkedDevice(_)
            | SimError::NotOutgoing(_) => StatusCode::CONFLICT,
            SimError::UnknownPairingCode
            | SimError::UnknownAccount(_)
            | SimError::UnknownMessage(_)
            | SimError::NotFound => StatusCode::NOT_FOUND,
        }
    }
}
