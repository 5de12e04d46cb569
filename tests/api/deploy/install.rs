//! Installing on a CRM database whose tables already hold what migration 0001's constraints
//! refuse: one phone twice for one user, odd spellings, tables without our columns. Migrations
//! succeed, no row is lost, duplicates are merged into the oldest lead, and what was done is in
//! the audit log.

use crate::helpers::{connect, fresh_database};
use sincro_core::store::migrate;
use uuid::Uuid;

const U1: &str = "00000000-0000-0000-0000-000000000001";
const U2: &str = "00000000-0000-0000-0000-000000000002";

async fn seeded(telefono_not_null: bool) -> (tokio_postgres::Client, String) {
    let url = fresh_database().await;
    let client = connect(&url).await;
    let not_null = if telefono_not_null { " NOT NULL" } else { "" };
    client
        .batch_execute(&format!(
            "CREATE TABLE usuarios (id uuid PRIMARY KEY, email text);
             INSERT INTO usuarios (id, email) VALUES ('{U1}', 'crm@example.com'), ('{U2}', 'other@example.com');
             -- No metadata, origen or updated_at; created_at without a default and NULL in places.
             CREATE TABLE leads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 usuario_id uuid REFERENCES usuarios(id), nombre text, telefono text{not_null},
                 email text, created_at timestamptz);
             INSERT INTO leads (usuario_id, nombre, telefono, email, created_at) VALUES
                 ('{U1}', 'Ana',  '+5511987654321',   NULL,             '2024-01-01'),
                 ('{U1}', NULL,   '+5511987654321',   'ana@example.com', '2024-02-01'),
                 ('{U1}', 'Ana B', '+5511987654321',  NULL,             NULL),
                 ('{U1}', 'Odd',  '(11) 98765-4321',  NULL,             '2024-03-01'),
                 ('{U1}', 'Sp1',  '55 11 98765 4322', NULL,             '2024-03-02'),
                 ('{U1}', 'Sp2',  '55 11 98765 4322', NULL,             '2024-03-03'),
                 ('{U2}', 'Other user', '+5511987654321', NULL,         '2024-01-05');
             -- The CRM's conversations point at a later duplicate.
             CREATE TABLE conversaciones (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 usuario_id uuid REFERENCES usuarios(id), lead_id uuid REFERENCES leads(id),
                 servicio_origen text, remitente text);
             INSERT INTO conversaciones (usuario_id, lead_id, servicio_origen, remitente)
                 SELECT usuario_id, id, 'whatsapp', telefono FROM leads WHERE email = 'ana@example.com';"
        ))
        .await
        .unwrap();
    (client, url)
}

async fn lead(client: &tokio_postgres::Client, nombre: &str) -> tokio_postgres::Row {
    client
        .query_one(
            "SELECT id, telefono, merged_into, metadata, email FROM leads WHERE nombre = $1",
            &[&nombre],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn duplicate_phones_are_merged_into_the_oldest_lead_and_reported() {
    // Arrange
    let (mut client, _) = seeded(false).await;

    // Act
    migrate::migrate(&mut client)
        .await
        .expect("migrations succeed");

    // Assert: every row is still there.
    let count: i64 = client
        .query_one("SELECT count(*) FROM leads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 7);
    // The oldest of each group is kept as it was, with the later ones' e-mail carried over.
    let ana = lead(&client, "Ana").await;
    let ana_id: Uuid = ana.get(0);
    assert_eq!(
        ana.get::<_, Option<String>>(1).as_deref(),
        Some("+5511987654321")
    );
    assert_eq!(ana.get::<_, Option<Uuid>>(2), None);
    assert_eq!(
        ana.get::<_, Option<String>>(4).as_deref(),
        Some("ana@example.com")
    );
    let merged_ids = ana.get::<_, serde_json::Value>(3)["merged_ids"].clone();
    assert_eq!(merged_ids.as_array().map(Vec::len), Some(2), "{merged_ids}");
    // The later ones point at it and keep their phone in metadata.
    let later = lead(&client, "Ana B").await;
    assert_eq!(later.get::<_, Option<Uuid>>(2), Some(ana_id));
    assert_eq!(later.get::<_, Option<String>>(1), None);
    let meta: serde_json::Value = later.get(3);
    assert_eq!(meta["telefono_original"], "+5511987654321");
    assert_eq!(meta["merged_at_install"], true);
    let sp2 = lead(&client, "Sp2").await;
    assert_eq!(
        sp2.get::<_, Option<Uuid>>(2),
        Some(lead(&client, "Sp1").await.get::<_, Uuid>(0))
    );
    // Another spelling and another user's lead are not duplicates of the index.
    assert_eq!(lead(&client, "Odd").await.get::<_, Option<Uuid>>(2), None);
    assert_eq!(
        lead(&client, "Other user").await.get::<_, Option<Uuid>>(2),
        None
    );
    // The conversation follows the kept lead.
    let conv_lead: Uuid = client
        .query_one("SELECT lead_id FROM conversaciones", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(conv_lead, ana_id);
    // Our columns exist, with values on the CRM's rows.
    let filled: i64 = client
        .query_one(
            "SELECT count(*) FROM leads WHERE metadata IS NOT NULL AND updated_at IS NOT NULL AND created_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(filled, 7);
    // Reported once in the audit log.
    let report: serde_json::Value = client
        .query_one(
            "SELECT details FROM audit_log WHERE action = 'install.crm_tables_adapted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(report["duplicate_leads"]["merged"], 3, "{report}");
    assert_eq!(report["duplicate_leads"]["groups"], 2, "{report}");
    assert!(
        report["columns_added"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("leads.metadata")),
        "{report}"
    );
    assert_eq!(report["nulls_filled"]["leads.created_at"], 1, "{report}");
    // The unique index holds, and a second run changes nothing.
    let again = migrate::migrate(&mut client).await.unwrap();
    assert!(again.applied.is_empty());
    let reports: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'install.crm_tables_adapted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reports, 1);
}

#[tokio::test]
async fn a_not_null_phone_column_gets_a_suffixed_spelling() {
    // Arrange
    let (mut client, _) = seeded(true).await;

    // Act
    migrate::migrate(&mut client)
        .await
        .expect("migrations succeed");

    // Assert: the later duplicates keep a phone, spelled apart with letters (digits would
    // make it another number).
    let later = lead(&client, "Ana B").await;
    let spelled: String = later.get::<_, Option<String>>(1).unwrap();
    assert!(
        spelled.starts_with("+5511987654321 (duplicate "),
        "{spelled}"
    );
    assert_eq!(
        spelled.chars().filter(char::is_ascii_digit).count(),
        13,
        "{spelled}"
    );
    assert_eq!(
        later.get::<_, serde_json::Value>(3)["telefono_original"],
        "+5511987654321"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM leads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 7);
}
