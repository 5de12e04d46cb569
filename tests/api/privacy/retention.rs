//! Retention: with `RETENTION_DAYS`, `INBOX_RETENTION_DAYS` and `AUDIT_RETENTION_DAYS` set and
//! users' own `retention_days` (`PATCH /v1/me`), a purge by the Retention actor (a child of the
//! supervision tree) deletes only what is older than each limit: messages whose send is not
//! settled, inbox rows a dead letter still names, and everything newer stay.

use crate::helpers::{TestApp, expect_error, spawn_app_with};
use crate::ingest::text;
use serde_json::{Value, json};
use sincro_core::media_store::{self, NewMedia};
use std::path::Path;
use uuid::Uuid;

async fn patch_me(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.patch("/v1/me", key).json(&body).send().await.unwrap()
}

async fn backdate(app: &TestApp, table: &str, column: &str, days: i32, filter: &str) {
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            &format!(
                "UPDATE {table} SET {column} = now() - make_interval(days => $1) WHERE {filter}"
            ),
            &[&days],
        )
        .await
        .unwrap();
}

async fn external_ids(app: &TestApp) -> Vec<String> {
    let client = app.pool().get().await.unwrap();
    let mut ids: Vec<String> = client
        .query(
            "SELECT COALESCE(external_id, metadata->>'label', '') FROM mensajes_conversacion",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn retention_purges_only_what_is_older() {
    let app = spawn_app_with(|env| {
        env.insert("RETENTION_DAYS".into(), "30".into());
        env.insert("INBOX_RETENTION_DAYS".into(), "7".into());
        env.insert("AUDIT_RETENTION_DAYS".into(), "90".into());
    })
    .await;
    let (u1, k1) = app.user("keep30@example.com", false).await;
    let (u2, k2) = app.user("keep60@example.com", false).await;
    let (u3, k3) = app.user("keep10@example.com", false).await;
    // Users' own retention: refused when not a positive number, else shown.
    expect_error(
        patch_me(&app, &k2, json!({"retention_days": 0})).await,
        400,
        "invalid_retention_days",
    )
    .await;
    // A refused field changes nothing, the other one included.
    expect_error(
        patch_me(
            &app,
            &k2,
            json!({"retention_days": 60, "default_region": "Brazil"}),
        )
        .await,
        422,
        "invalid_region",
    )
    .await;
    let me: Value = app
        .get("/v1/me", &k2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["retention_days"], Value::Null);
    assert_eq!(
        patch_me(&app, &k2, json!({"retention_days": 60}))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        patch_me(&app, &k3, json!({"retention_days": 10}))
            .await
            .status()
            .as_u16(),
        200
    );
    let me: Value = app
        .get("/v1/me", &k2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            me["retention_days"].clone(),
            me["retention_default_days"].clone()
        ),
        (json!(60), json!(30))
    );
    let me: Value = app
        .get("/v1/me", &k1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["retention_days"], Value::Null);

    // Messages: an old and a new one per user, and one 20 days old for the 10-day user.
    let mut items = Vec::new();
    let mut conns = Vec::new();
    for (u, name) in [(u1, "u1"), (u2, "u2"), (u3, "u3")] {
        let conn = app.connection(u, "lite").await;
        conns.push(conn);
        for age in ["old", "new"] {
            items.push(text(
                u,
                conn,
                &format!("{name}-{age}"),
                "+5511987654321",
                "Ana",
                "oi",
            ));
        }
    }
    items.push(text(u3, conns[2], "u3-mid", "+5511987654321", "Ana", "oi"));
    app.ingest(items).await;
    backdate(
        &app,
        "mensajes_conversacion",
        "created_at",
        40,
        "external_id LIKE '%-old'",
    )
    .await;
    backdate(
        &app,
        "mensajes_conversacion",
        "created_at",
        20,
        "external_id = 'u3-mid'",
    )
    .await;
    // Two old sends of u1: one settled, one still queued (its session is not running).
    for label in ["u1-sent", "u1-queued"] {
        let resp = app
            .post("/v1/messages", &k1)
            .json(&json!({"connection_id": conns[0], "to": "+5511987654321", "type": "text", "text": {"body": label}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let id: Uuid = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let client = app.pool().get().await.unwrap();
        client
            .execute(
                "UPDATE mensajes_conversacion SET metadata = metadata || jsonb_build_object('label', $2::text),
                     created_at = now() - interval '40 days' WHERE id = $1",
                &[&id, &label],
            )
            .await
            .unwrap();
        if label == "u1-sent" {
            client
                .execute(
                    "UPDATE outbox SET state = 'sent', sent_at = now() WHERE message_id = $1",
                    &[&id],
                )
                .await
                .unwrap();
        }
    }

    // Media: an old and a new file of u1.
    let data_dir = Path::new(&app.env["DATA_DIR"]).to_path_buf();
    let sealer = app.app().context().shared.sealer.clone();
    let mut files = Vec::new();
    for name in ["old.bin", "new.bin"] {
        let client = app.pool().get().await.unwrap();
        let row = media_store::store(
            &client,
            &sealer,
            &data_dir,
            NewMedia {
                usuario_id: u1,
                connection_id: None,
                direction: "outbound",
                mime_type: "application/octet-stream",
                filename: Some(name),
                provider_id: None,
                message_id: None,
            },
            name.as_bytes(),
        )
        .await
        .unwrap();
        files.push(data_dir.join(&row.storage_path));
    }
    backdate(&app, "media", "created_at", 40, "filename = 'old.bin'").await;

    // Inbox rows (drained unless said) and dead letters; audit rows.
    let client = app.pool().get().await.unwrap();
    for (label, days, processed) in [
        ("old", 10, true),
        ("new", 1, true),
        ("pending", 10, false),
        ("named", 10, true),
        ("dead-old", 10, true),
    ] {
        client
            .execute(
                "INSERT INTO webhook_inbox (phone_number_id, body, received_at, processed_at)
                 VALUES ($1, 'sw1.x.y', now() - make_interval(days => $2), CASE WHEN $3 THEN now() END)",
                &[&label, &days, &processed],
            )
            .await
            .unwrap();
    }
    for (label, days) in [("named", 0), ("dead-old", 10)] {
        client
            .execute(
                "INSERT INTO inbound_dead_letters (id, inbox_id, source, reason, created_at)
                 SELECT $1, id, 'meta', 'test', now() - make_interval(days => $3) FROM webhook_inbox WHERE phone_number_id = $2",
                &[&Uuid::now_v7(), &label, &days],
            )
            .await
            .unwrap();
    }
    for days in [100, 10] {
        client
            .execute(
                "INSERT INTO audit_log (action, outcome, created_at) VALUES ('test.old', 'ok', now() - make_interval(days => $1))",
                &[&days],
            )
            .await
            .unwrap();
    }

    // Act: the Retention actor purges now.
    let retention = app.app().context().actors.children.retention_handle();
    let purged = retention.purge_now().await.unwrap();

    assert_eq!(
        (
            purged.messages,
            purged.media,
            purged.inbox,
            purged.dead_letters,
            purged.audit
        ),
        (4, 1, 2, 1, 1),
        "{purged:?}"
    );
    assert_eq!(
        external_ids(&app).await,
        ["u1-new", "u1-queued", "u2-new", "u2-old", "u3-new"],
    );
    assert!(!files[0].exists() && files[1].exists());
    let inbox: Vec<String> = client
        .query(
            "SELECT phone_number_id FROM webhook_inbox ORDER BY phone_number_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(inbox, ["named", "new", "pending"]);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'test.old'",
            &[]
        )
        .await,
        1
    );
    // Nothing more past retention: a second pass purges nothing.
    assert_eq!(retention.purge_now().await.unwrap().total(), 0);

    // The actor is in the supervision tree.
    let (_, admin) = app.user("retention-admin@example.com", true).await;
    let status = app
        .get("/v1/status", &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("\"retention\""), "{status}");
}
