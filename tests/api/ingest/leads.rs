//! Leads through Ingest: spellings of one number merge into one lead, duplicates merge on
//! request, profile changes keep their history, senders without a placeable number, the
//! default region's validation, and the look-alike lookup's plan in a large CRM.

use super::{events, text};
use crate::helpers::{expect_error, plan_of, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn three_spellings_of_one_number_merge_into_one_lead() {
    // Arrange: the CRM has three leads typed three ways, region BR.
    let mut app = spawn_app().await;
    let (user, key) = app.user("merge@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE usuarios SET default_region = 'BR' WHERE id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (phone, email) in [
        ("+55 11 98765-4321", None),
        ("5511987654321", Some("ana@example.com")),
        ("(11) 98765-4321", None),
    ] {
        let id: Uuid = client
            .query_one(
                "INSERT INTO leads (usuario_id, nombre, telefono, email, origen) VALUES ($1, 'Ana CRM', $2, $3, 'CRM') RETURNING id",
                &[&user, &phone, &email],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    let conn = app.connection(user, "business").await;
    // Act: a WhatsApp message from that number.
    let report = app
        .ingest(vec![text(
            user,
            conn,
            "wamid.m1",
            "+5511987654321",
            "Ana WA",
            "oi",
        )])
        .await;
    // Assert
    assert_eq!(report.leads_created, 0);
    assert_eq!(report.leads_merged, 2);
    let live: Vec<(Uuid, String, Option<String>)> = client
        .query(
            "SELECT id, telefono, email FROM leads WHERE usuario_id = $1 AND merged_into IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    let (survivor, telefono, email) = &live[0];
    assert_eq!(telefono, "+5511987654321");
    assert_eq!(*survivor, ids[0], "the oldest lead survives");
    assert_eq!(
        email.as_deref(),
        Some("ana@example.com"),
        "fields carried over"
    );
    let merged: i64 = client
        .query_one(
            "SELECT count(*) FROM leads WHERE merged_into = $1",
            &[survivor],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(merged, 2);
    let conv_lead: Uuid = client
        .query_one(
            "SELECT lead_id FROM conversaciones WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conv_lead, *survivor);
    let evs = events(&app, user).await;
    let merged_ev = evs
        .iter()
        .find(|e| e.1 == "lead.merged")
        .expect("lead.merged event");
    assert_eq!(merged_ev.2["lead_id"], json!(survivor));
    assert_eq!(merged_ev.2["merged_ids"].as_array().unwrap().len(), 2);
    // The API finds the lead by any spelling.
    let found: Value = app
        .get("/v1/leads?phone=(11)%2098765-4321", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], json!(survivor));
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn merge_duplicates_on_request() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("merge2@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    for phone in ["+55 21 91234-5678", "5521912345678", "+5511987654321"] {
        client
            .execute(
                "INSERT INTO leads (usuario_id, telefono) VALUES ($1, $2)",
                &[&user, &phone],
            )
            .await
            .unwrap();
    }
    let resp: Value = app
        .post("/v1/leads/merge-duplicates", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["merged"], 1);
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM leads WHERE usuario_id = $1 AND merged_into IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 2);
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE usuario_id = $1 AND action = 'lead.merge_duplicates'",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn profile_changes_are_kept_with_history() {
    let mut app = spawn_app().await;
    let (user, _) = app.user("profile@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    app.ingest(vec![text(user, conn, "m1", "+5511987654321", "Ana", "1")])
        .await;
    app.ingest(vec![text(
        user,
        conn,
        "m2",
        "+5511987654321",
        "Ana Souza",
        "2",
    )])
    .await;
    let row = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT nombre, metadata FROM leads WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ana Souza");
    let meta: Value = row.get(1);
    assert_eq!(meta["profile"]["name"], "Ana Souza");
    assert_eq!(meta["profile_history"][0]["profile"]["name"], "Ana");
    // A name the CRM user typed is kept; the profile still updates.
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE leads SET nombre = 'Cliente VIP' WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    app.ingest(vec![text(
        user,
        conn,
        "m3",
        "+5511987654321",
        "Ana S.",
        "3",
    )])
    .await;
    let row = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT nombre, metadata FROM leads WHERE usuario_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Cliente VIP");
    assert_eq!(row.get::<_, Value>(1)["profile"]["name"], "Ana S.");
    let evs = events(&app, user).await;
    assert_eq!(evs.iter().filter(|e| e.1 == "lead.updated").count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn senders_libphonenumber_cannot_place_are_stored_by_their_id() {
    let mut app = spawn_app().await;
    let (user, _) = app.user("weird@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    let r = app
        .ingest(vec![
            text(user, conn, "x1", "status@broadcast", "?", "x"),
            text(user, conn, "x2", "+999123456789", "Zed", "unplaced"),
            text(user, conn, "x3", "+5511987654321", "Ana", "ok"),
        ])
        .await;
    assert_eq!(r.messages_inserted, 3);
    assert_eq!(r.leads_created, 3);
    let client = app.pool().get().await.unwrap();
    let conv: String = client
        .query_one(
            "SELECT c.remitente FROM conversaciones c JOIN mensajes_conversacion m ON m.conversacion_id = c.id
             WHERE m.external_id = 'x2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conv, "+999123456789", "keyed by the digits as given");
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn my_default_region_is_validated() {
    let mut app = spawn_app().await;
    let (_, key) = app.user("me@example.com", false).await;
    let resp = app
        .patch("/v1/me", &key)
        .json(&json!({"default_region": "br"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["default_region"], "BR");
    let resp = app
        .patch("/v1/me", &key)
        .json(&json!({"default_region": "Brazil"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "invalid_region").await;
    let me: Value = app
        .get("/v1/me", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["default_region"], "BR",
        "a refused change changes nothing"
    );
    app.shutdown().await;
}

/// 20,000 leads of `user` typed as `prefix` and 8 digits (a large CRM).
async fn crm_leads(client: &deadpool_postgres::Client, user: Uuid, prefix: &str) {
    client
        .execute(
            "INSERT INTO leads (usuario_id, telefono, origen)
             SELECT $1, $2 || lpad(g::text, 8, '0'), 'CRM' FROM generate_series(1, 20000) g",
            &[&user, &prefix],
        )
        .await
        .unwrap();
}

/// Asserts that a lookup's plan (JSON text) probes `index`, and never reads a whole table nor
/// hashes one.
fn assert_probes(plan: &str, index: &str) {
    assert!(plan.contains(index), "{plan}");
    assert!(!plan.contains("\"Seq Scan\""), "{plan}");
    assert!(!plan.contains("\"Hash Join\""), "{plan}");
}

#[tokio::test]
async fn the_look_alike_lookup_probes_the_digits_index_however_large_the_crm() {
    // Arrange: a CRM user with 20,000 leads, their statistics taken (as autovacuum would).
    let mut app = spawn_app().await;
    let (user, _) = app.user("big-crm@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    crm_leads(&client, user, "+55 11 9").await;
    client.batch_execute("ANALYZE leads").await.unwrap();
    // Act: the plan of one batch's look-alike lookup, 50 new contacts.
    let users = vec![user; 50];
    let digits: Vec<String> = (0..50).map(|i| format!("55119{:08}", i * 7)).collect();
    let plan = plan_of(
        &client,
        "",
        sincro_core::leads::store::LOOKALIKES_SQL,
        &[&users, &digits],
    )
    .await;
    // Assert: one index probe per spelling, never a pass over all of the user's leads.
    assert_probes(&plan.to_string(), "leads_usuario_digits_idx");
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn the_exact_lead_lookup_probes_the_number_key_even_without_statistics() {
    // Arrange: 20,000 leads never analyzed (a new CRM, or autovacuum off), and the statement
    // planned as a prepared statement's generic plan is.
    let mut app = spawn_app().await;
    let (user, _) = app.user("fresh-crm@example.com", false).await;
    let client = app.pool().get().await.unwrap();
    crm_leads(&client, user, "+55119").await;
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    // Act: the plan of one batch's exact lookup, 1,000 contacts.
    let users = vec![user; 1000];
    let numbers: Vec<String> = (0..1000).map(|i| format!("+55119{:08}", i * 19)).collect();
    let plan = plan_of(
        &client,
        "",
        sincro_core::leads::store::BY_NUMBER_SQL,
        &[&users, &numbers],
    )
    .await;
    // Assert: one probe of the (user, number) key per contact; never the digits index, whose
    // probe by user alone filters every lead of the user.
    let plan = plan.to_string();
    assert_probes(&plan, "leads_usuario_telefono_key");
    assert!(!plan.contains("leads_usuario_digits_idx"), "{plan}");
    client.batch_execute("RESET plan_cache_mode").await.unwrap();
    drop(client);
    app.shutdown().await;
}

#[tokio::test]
async fn the_daemons_sessions_never_compile_statements_with_jit() {
    // Arrange
    let mut app = spawn_app().await;
    // Act
    let jit: String = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SHOW jit", &[])
        .await
        .unwrap()
        .get(0);
    // Assert: whatever the server's default.
    assert_eq!(jit, "off");
    app.shutdown().await;
}
