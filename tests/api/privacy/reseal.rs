//! Crypto erasure: data sealed under an old key (message bodies and requests, events, inbox
//! bodies, secrets inside JSON, media files) is sealed again by `sincro-whatsapp reseal` under
//! the new first key; afterwards every sealed value and file opens with the new key alone and
//! nothing anywhere names the old key id, so the old key can be removed and destroyed.

use crate::helpers::{connect, spawn_app};
use crate::ingest::text;
use crate::process::command;
use serde_json::{Value, json};
use sincro_core::ingest::inbox;
use sincro_core::media_store::{self, NewMedia};
use sincro_core::seal::{Purpose, Sealer};
use std::collections::HashMap;
use std::path::Path;

/// Every sealed string inside `v`.
fn sealed_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if Sealer::looks_sealed(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| sealed_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| sealed_in(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn reseal_then_the_old_key_is_not_needed() {
    let mut app = spawn_app().await;
    let old_key = app.env["ENCRYPTION_KEY"].clone();
    let (user, _) = app.user("reseal@example.com", false).await;
    let conn = app.connection(user, "lite").await;
    app.ingest(vec![
        text(user, conn, "m1", "+5511987654321", "Ana", "corpo selado"),
        text(user, conn, "m2", "+5521999990000", "Bruno", "outro corpo"),
    ])
    .await;
    let sealer = app.app().context().shared.sealer.clone();
    let data_dir = Path::new(&app.env["DATA_DIR"]).to_path_buf();
    let client = app.pool().get().await.unwrap();
    inbox::store_lite(
        &client,
        &sealer,
        user,
        conn,
        &[text(user, conn, "m3", "+5511987654321", "Ana", "na caixa")],
    )
    .await
    .unwrap();
    let secret = sealer.seal_str(Purpose::Secret, "token-secreto");
    client
        .execute(
            "UPDATE configuracion_mensajeria_usuario SET configuracion = configuracion ||
                 jsonb_build_object('business_config', jsonb_build_object('access_token', $2::text)) WHERE id = $1",
            &[&conn, &secret],
        )
        .await
        .unwrap();
    let media = media_store::store(
        &client,
        &sealer,
        &data_dir,
        NewMedia {
            usuario_id: user,
            connection_id: Some(conn),
            direction: "inbound",
            mime_type: "image/png",
            filename: None,
            provider_id: None,
            message_id: None,
        },
        b"imagem-selada",
    )
    .await
    .unwrap();
    drop(client);
    app.shutdown().await;

    // Rotate: a new first key seals, the old one still opens; then re-seal.
    let new_key = Sealer::generate_env_value("t2");
    let env = HashMap::from([
        ("DATABASE_URL".to_string(), app.database_url.clone()),
        ("ENCRYPTION_KEY".to_string(), format!("{new_key},{old_key}")),
        ("DATA_DIR".to_string(), data_dir.display().to_string()),
    ]);
    let out = command(&["reseal"], &env).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("key t1: nothing sealed under it remains"),
        "{stdout}"
    );

    // With the new key alone, every sealed value in every column opens; nothing names t1.
    let only_new = Sealer::from_env_value(&new_key).unwrap();
    let db = connect(&app.database_url).await;
    let columns = db
        .query(
            "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'jsonb', 'character varying', 'ARRAY')",
            &[],
        )
        .await
        .unwrap();
    let mut sealed = Vec::new();
    for col in &columns {
        let (table, column): (String, String) = (col.get(0), col.get(1));
        let rows = db
            .query(
                &format!(
                    "SELECT \"{column}\"::text FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
                ),
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            let raw: String = row.get(0);
            assert!(
                !raw.contains("sw1.t1."),
                "{table}.{column} still names the old key"
            );
            match serde_json::from_str::<Value>(&raw) {
                Ok(v) if raw.starts_with('{') || raw.starts_with('[') => sealed_in(&v, &mut sealed),
                _ => sealed_in(&json!(raw), &mut sealed),
            }
        }
    }
    // Bodies, requests, events, the inbox row and the secret, at least.
    assert!(sealed.len() >= 8, "{}", sealed.len());
    for value in &sealed {
        assert!(
            Purpose::ALL
                .into_iter()
                .any(|p| only_new.open(p, value).is_ok()),
            "a sealed value does not open with the new key alone"
        );
    }
    let file = std::fs::read_to_string(data_dir.join(&media.storage_path)).unwrap();
    assert!(file.starts_with("sw1.t2."));
    assert_eq!(
        only_new.open(Purpose::Media, file.trim()).unwrap(),
        b"imagem-selada"
    );
    let secret = db
        .query_one(
            "SELECT configuracion->'business_config'->>'access_token' FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&conn],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(
        only_new.open_str(Purpose::Secret, &secret).unwrap(),
        "token-secreto"
    );
    // A second run finds nothing left to do.
    let again = command(&["reseal"], &env).output().await.unwrap();
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.contains(": 0 values, 0 media files"), "{again}");
}
