//! How a waiting session gets linked to a phone: by the QR it shows now, or by a pairing code
//! typed on the phone. Both need the session waiting for login (`SCAN_QR_CODE`); otherwise the
//! API says why neither is available (already linked, still starting, stopped...).

use super::Status;
use super::store::SessionRow;

/// Why a session cannot be linked right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("no QR to scan: {0}")]
    NoQr(String),
    #[error("a pairing code needs a session waiting for login (SCAN_QR_CODE); it is {0}")]
    NoPairing(&'static str),
}

/// The QR the session shows now.
pub fn current_qr(row: &SessionRow) -> Result<&str, LoginError> {
    match (&row.qr, row.status) {
        (Some(qr), Status::ScanQrCode) => Ok(qr),
        (_, Status::Working) => Err(LoginError::NoQr("the session is already linked".into())),
        (_, Status::Starting) => Err(LoginError::NoQr(
            "the session is starting; the QR comes shortly".into(),
        )),
        (_, s) => Err(LoginError::NoQr(format!("the session is {}", s.as_str()))),
    }
}

/// Whether a pairing code can be asked for.
pub fn check_pairing(row: &SessionRow) -> Result<(), LoginError> {
    if row.status != Status::ScanQrCode {
        return Err(LoginError::NoPairing(row.status.as_str()));
    }
    Ok(())
}
