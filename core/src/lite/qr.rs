//! The QR a session shows, rendered for people: PNG and SVG for the API, half-block text for
//! the terminal (`demo`). The string itself is WhatsApp's five comma-separated parts.

use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::{svg, unicode};

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("cannot encode the QR: {0}")]
    Encode(String),
}

fn code(data: &str) -> Result<QrCode, QrError> {
    QrCode::new(data.as_bytes()).map_err(|e| QrError::Encode(e.to_string()))
}

/// A PNG (8-bit grey) with a quiet zone, about 8 pixels per module.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let img = code(data)?
        .render::<Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

/// An SVG document.
pub fn svg(data: &str) -> Result<String, QrError> {
    Ok(code(data)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .build())
}

/// Text for a terminal: two modules per character row.
pub fn terminal(data: &str) -> Result<String, QrError> {
    Ok(code(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders() {
        let qr = "2@abc,bm9pc2U=,aWRlbnRpdHk=,YWR2,WEB";
        let png = super::png(qr).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(super::svg(qr).unwrap().starts_with("<?xml"));
        assert!(super::terminal(qr).unwrap().lines().count() > 10);
    }
}
