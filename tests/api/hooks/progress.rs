//! The lanes' rounds written several to a commit (`core/src/hooks/progress.rs`): rounds of
//! different endpoints waiting together each get their own endpoint's answer, and a round
//! whose endpoint changed since its lane loaded it writes nothing, not even its attempts.

use super::{create_hook, hooks_app};
use serde_json::json;
use sincro_core::hooks::cursor::{Advance, AttemptRow, Progress};
use sincro_core::hooks::progress::ProgressWriter;
use std::time::Duration;
use uuid::Uuid;

fn round(id: Uuid, version: i32, cursor: i64) -> Advance {
    Advance {
        id,
        version,
        progress: Progress {
            cursor,
            failed: false,
            succeeded: true,
            attempts: vec![AttemptRow {
                delivery_id: Uuid::new_v4(),
                seq: Some(cursor),
                event_type: "lead.updated".into(),
                attempt: 1,
                outcome: "delivered",
                http_status: Some(200),
                error: None,
                latency_ms: Some(3),
            }],
        },
    }
}

#[tokio::test]
async fn rounds_written_together_each_get_their_own_endpoints_answer() {
    // Arrange: three failing endpoints leased to an owner that is not this node's (so its own
    // lanes leave them alone); the third was changed through the API since it was loaded.
    let app = hooks_app(&[]).await;
    let (_, key) = app.user("hooks-progress@test", false).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, _) = create_hook(&app, &key, json!({"url": "http://127.0.0.1:9/hook"})).await;
        ids.push(id);
    }
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE event_webhooks SET lease_owner = 'elsewhere/1',
               lease_until = now() + interval '1 hour', failing_since = now()
             WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap();
    let loaded: i32 = client
        .query_one(
            "SELECT version FROM event_webhooks WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "UPDATE event_webhooks SET version = version + 1 WHERE id = $1",
            &[&ids[2]],
        )
        .await
        .unwrap();
    let writer = ProgressWriter::start(app.pool().clone(), "elsewhere/1", Duration::from_secs(30));

    // Act: the three rounds at once.
    let (a, b, c) = tokio::join!(
        writer.write(round(ids[0], loaded, 5)),
        writer.write(round(ids[1], loaded, 7)),
        writer.write(round(ids[2], loaded, 9)),
    );

    // Assert: the first two are written and their failing clocks stopped; the changed one
    // wrote nothing.
    assert_eq!(a.unwrap(), Some(None));
    assert_eq!(b.unwrap(), Some(None));
    assert_eq!(
        c.unwrap(),
        None,
        "a changed endpoint is reloaded, not written"
    );
    for (id, cursor, attempts) in [(ids[0], 5, 1), (ids[1], 7, 1), (ids[2], 0, 0)] {
        let row = client
            .query_one(
                "SELECT cursor, (SELECT count(*) FROM event_webhook_attempts WHERE webhook_id = $1)
                 FROM event_webhooks WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), cursor);
        assert_eq!(row.get::<_, i64>(1), attempts);
    }
}
