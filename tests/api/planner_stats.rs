//! The planner statistics step: a table of the inbound path changed well past its last analysis
//! is analyzed, after which PostgreSQL looks a batch's conversations up by their key instead of
//! reading them all; a table with few changes is left alone.

use crate::helpers::{connect, eventually, fresh_database, plan_of};
use sincro_core::store::{connect_pool, migrate, planner_stats};
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn stale_inbound_tables_are_analyzed_and_the_conversation_update_probes_its_key() {
    // Arrange: 5,000 conversations never analyzed (autovacuum off, or not there yet) and one
    // lead; the statement the drain runs for 30 of them.
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    migrate::migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO usuarios (id, email) VALUES ('00000000-0000-0000-0000-0000000000a1', 'stats@example.com');
             INSERT INTO configuracion_mensajeria_usuario (id, usuario_id)
                 VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1');
             INSERT INTO leads (usuario_id, telefono) VALUES ('00000000-0000-0000-0000-0000000000a1', '+5511900000000');
             INSERT INTO conversaciones (usuario_id, connection_id, remitente, metadata)
                 SELECT '00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000c1',
                        '+55119' || lpad(n::text, 8, '0'), jsonb_build_object('wa_id', n)
                 FROM generate_series(1, 5000) n;",
        )
        .await
        .unwrap();
    let user: Uuid = "00000000-0000-0000-0000-0000000000a1".parse().unwrap();
    let connection: Uuid = "00000000-0000-0000-0000-0000000000c1".parse().unwrap();
    let senders: Vec<String> = (1..=30).map(|n| format!("+55119{:08}", n * 97)).collect();
    let keys = (vec![user; 30], vec![connection; 30], senders);
    let pool = connect_pool(&url, 2).unwrap();
    let before = update_plan(&pool, &keys).await;

    // Act: the step, once the server's statistics collector has counted the inserts.
    let analyzed = eventually(Duration::from_secs(30), || async {
        let tables = planner_stats::refresh_stale(&pool).await.unwrap();
        tables.contains(&"conversaciones").then_some(tables)
    })
    .await
    .expect("conversaciones analyzed");

    // Assert: the conversations analyzed, the one lead not; the update now probes the key.
    assert!(!analyzed.contains(&"leads"), "{analyzed:?}");
    let analyzed_at: bool = client
        .query_one(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'conversaciones'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(analyzed_at);
    assert!(
        before.contains("\"Bitmap Heap Scan\"") || before.contains("\"Seq Scan\""),
        "{before}"
    );
    let after = update_plan(&pool, &keys).await;
    assert!(
        after.contains("conversaciones_whatsapp_contact_key"),
        "{after}"
    );
    assert!(after.contains("\"Nested Loop\""), "{after}");
    assert!(
        !after.contains("\"Seq Scan\"") && !after.contains("\"Hash Join\""),
        "{after}"
    );
}

/// The plan (JSON text) of the drain's conversation update for these keys.
async fn update_plan(
    pool: &deadpool_postgres::Pool,
    (users, connections, senders): &(Vec<Uuid>, Vec<Uuid>, Vec<String>),
) -> String {
    let leads: Vec<Option<Uuid>> = vec![None; senders.len()];
    let times = vec![std::time::SystemTime::now(); senders.len()];
    let wa_ids: Vec<Option<String>> = vec![None; senders.len()];
    plan_of(
        &pool.get().await.unwrap(),
        "",
        sincro_core::ingest::batch::UPDATE_CONVERSATIONS_SQL,
        &[users, connections, senders, &leads, &times, &times, &wa_ids],
    )
    .await
    .to_string()
}
