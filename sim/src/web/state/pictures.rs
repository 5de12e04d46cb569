//! Contacts' profile pictures: what `POST /sim/profile-pic` sets, what the page's picture
//! lookup (`profile_pic {rid, wid}`, behind `requestProfilePicFromServer`) answers, and how
//! many lookups each contact had (`GET /sim/profile-pic-fetches`), so tests can tell whether
//! a client asked again.
//!
//! As on WhatsApp, a contact without a picture (or hiding it) answers 404, and a picture is
//! given as a URL the browser fetches (`eurl`, here a `/sim/media` link to the stored file,
//! where the real page gets a CDN link that expires) with a `tag` that changes with the
//! picture.

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::delivery::store_media;
use super::values::normalize_phone;
use super::{Inner, PageId, Sim};
use crate::web::error::SimError;

/// Body of `POST /sim/profile-pic`.
#[derive(Debug, Clone, Deserialize)]
pub struct PictureReq {
    /// The contact's phone number.
    pub phone: String,
    pub mimetype: String,
    pub data_base64: String,
}

/// One contact's picture: the stored file's link parts and its tag.
pub(super) struct Picture {
    direct_path: String,
    media_key: String,
    tag: String,
}

impl Sim {
    /// `POST /sim/profile-pic`: the contact's picture from now on.
    pub fn set_profile_pic(&self, req: PictureReq) -> Result<Value, SimError> {
        let phone = normalize_phone(&req.phone)?;
        if !req.mimetype.starts_with("image/") {
            return Err(SimError::BadRequest(
                "mimetype must be an image type".into(),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(req.data_base64.trim())
            .map_err(|e| SimError::BadRequest(format!("data_base64: {e}")))?;
        if bytes.is_empty() {
            return Err(SimError::BadRequest("data_base64 is empty".into()));
        }
        let mut inner = self.lock();
        let entry = store_media(&mut inner, Bytes::from(bytes), &req.mimetype, None);
        let text = |k: &str| entry[k].as_str().unwrap_or_default().to_string();
        let picture = Picture {
            direct_path: text("directPath"),
            media_key: text("mediaKey"),
            tag: super::values::now_secs().to_string(),
        };
        let tag = picture.tag.clone();
        inner.pictures.insert(phone.clone(), picture);
        Ok(json!({"phone": phone, "tag": tag}))
    }

    /// `GET /sim/profile-pic-fetches`: `{phone: lookups}` for every contact looked up.
    pub fn profile_pic_fetches(&self) -> Value {
        json!(self.lock().picture_fetches)
    }
}

/// The page's lookup of `wid`'s picture: counted, answered `profile_pic_result {rid, eurl?,
/// tag?, status}` (404 without a picture).
pub(super) fn lookup(inner: &mut Inner, page_id: PageId, msg: &Value) {
    let rid = msg.get("rid").cloned().unwrap_or(Value::Null);
    let wid = msg.get("wid").and_then(Value::as_str).unwrap_or_default();
    let user = wid.split('@').next().unwrap_or_default();
    let answer = match normalize_phone(user) {
        Ok(phone) => {
            *inner.picture_fetches.entry(phone.clone()).or_insert(0) += 1;
            match inner.pictures.get(&phone) {
                Some(p) => json!({"t": "profile_pic_result", "rid": rid, "status": 200,
                    "eurl": format!("sim/media?direct_path={}&media_key={}",
                        urlencoding(&p.direct_path), urlencoding(&p.media_key)),
                    "tag": p.tag}),
                None => json!({"t": "profile_pic_result", "rid": rid, "status": 404}),
            }
        }
        Err(_) => json!({"t": "profile_pic_result", "rid": rid, "status": 400}),
    };
    if let Some(page) = inner.pages.get_mut(&page_id) {
        page.push(answer);
    }
}

/// Percent-encodes a query value (paths and base64 keys carry `/`, `+` and `=`).
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
