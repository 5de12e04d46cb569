//! Lite profile pictures, with real Chromium and the WhatsApp Web simulator: after a contact's
//! message the session looks its picture up through the page, keeps it sealed in the media
//! store and points the lead at it; at most once a day per contact, never when the connection
//! does not sync contacts. Checks that something did not happen wait for the daemon to report
//! the lookup's outcome (`sincro_lite_profile_pictures_total`) first.

use super::{WAIT, set_settings};
use crate::helpers::eventually;
use crate::lite::{ACCOUNT, CHROMIUM, CONTACT, Lite, lite_app};
use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

/// A contact whose picture is looked up while contacts are not synced.
const UNSYNCED: &str = "5511977776666";

/// How many lookups the simulator answered for each contact.
async fn fetches(lite: &Lite) -> Value {
    lite.sim_get("sim/profile-pic-fetches").await
}

/// The daemon's count of picture lookups that ended with `outcome`.
async fn outcomes(lite: &Lite, outcome: &str) -> u64 {
    let text = lite.app.metrics_text().await;
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("sincro_lite_profile_pictures_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until `outcome` was reported more than `before` times.
async fn wait_outcome(lite: &Lite, outcome: &str, before: u64) {
    let got = eventually(WAIT, || async {
        (outcomes(lite, outcome).await > before).then_some(())
    })
    .await;
    assert!(got.is_some(), "no lookup ended {outcome}");
}

async fn contact_writes(lite: &Lite, from: &str, text: &str) {
    let (status, sent) = lite
        .sim_post(
            "messages",
            json!({"account": ACCOUNT, "from": from, "name": "Ana", "text": text}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
}

#[tokio::test]
async fn lite_profile_pictures_are_stored_sealed_at_most_daily() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id: Uuid = lite.working_session(ACCOUNT).await.parse().unwrap();
    let picture = b"\xff\xd8\xff\xe0 sincro profile picture".repeat(2_000);
    for phone in [CONTACT, UNSYNCED] {
        let (status, body) = lite
            .sim_post(
                "profile-pic",
                json!({"phone": phone, "mimetype": "image/jpeg",
                       "data_base64": base64::engine::general_purpose::STANDARD.encode(&picture)}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // The first message: the picture is looked up, stored sealed, and the lead shows it.
    contact_writes(&lite, CONTACT, "hola").await;
    let lead: Option<Value> = eventually(WAIT, || async {
        let r: Option<Value> = lite
            .app
            .pool()
            .get()
            .await
            .unwrap()
            .query_opt(
                "SELECT metadata FROM leads WHERE usuario_id = $1
                   AND metadata ? 'profile_picture_media_id'",
                &[&lite.user],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        r
    })
    .await;
    let Some(lead) = lead else {
        let tried = ["error", "none", "fresh", "sync_off", "stored", "unchanged"];
        let mut seen = Vec::new();
        for o in tried {
            seen.push((o, outcomes(&lite, o).await));
        }
        panic!(
            "the lead got no picture; lookups: {seen:?}, simulator: {}",
            fetches(&lite).await
        );
    };
    let media_id: Uuid = lead["profile_picture_media_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        lead["profile"]["picture_url"],
        format!("/v1/media/{media_id}")
    );
    assert!(lead["profile_picture_checked_at"].is_i64(), "{lead}");
    let row = lite
        .app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT storage_path, size_bytes, connection_id FROM media WHERE id = $1",
            &[&media_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(1), picture.len() as i64);
    assert_eq!(row.get::<_, Option<Uuid>>(2), Some(id));
    let on_disk = std::fs::read_to_string(lite.data_dir.join(row.get::<_, String>(0))).unwrap();
    assert!(
        !on_disk.contains("sincro profile picture"),
        "the picture is sealed at rest"
    );
    let served = lite
        .app
        .get(&format!("/v1/media/{media_id}"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), picture.as_slice());
    assert!(lite.events("lead.updated").await >= 1);
    assert_eq!(fetches(&lite).await[CONTACT], 1);

    // A second message the same day: no second lookup.
    let fresh = outcomes(&lite, "fresh").await;
    contact_writes(&lite, CONTACT, "otra vez").await;
    wait_outcome(&lite, "fresh", fresh).await;
    assert_eq!(fetches(&lite).await[CONTACT], 1, "looked up twice in a day");

    // Contacts not synced: no lookup at all.
    set_settings(&lite.app, id, json!({"sync_contacts": false})).await;
    let off = outcomes(&lite, "sync_off").await;
    contact_writes(&lite, UNSYNCED, "hola").await;
    wait_outcome(&lite, "sync_off", off).await;
    assert_eq!(
        fetches(&lite).await.get(UNSYNCED),
        None,
        "looked up unsynced"
    );

    lite.finish().await;
}
