//! Erasure of a whole user: `DELETE /v1/users/{id}` (admin only) stops its number, removes
//! everything it owns (rows, sealed credentials, inbox rows, media files) and leaves another
//! user's data as it was; the erased user's key no longer works; the audit keeps the erasure.

use super::{body, business_user, find_anywhere, receive, text};
use crate::helpers::{eventually, expect_error};
use serde_json::Value;
use sincro_core::seal::Purpose;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn erasing_a_user_removes_everything_it_owns() {
    let (app, _sim, user, key, n) = business_user("leaving@example.com").await;
    let data_dir = Path::new(&app.env["DATA_DIR"]).to_path_buf();
    receive(
        &app,
        &n,
        &body(
            &n,
            vec![text("5511987654321", "wamid.u1", "conversa-do-usuario")],
        ),
    )
    .await;
    let up = app
        .post(
            &format!(
                "/v1/media?connection_id={}&filename=nota.pdf",
                n.connection_id
            ),
            &key,
        )
        .header("content-type", "application/pdf")
        .body(b"arquivo-do-usuario".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 201);
    // A Lite session, stopped, with its profile on disk and its sealed snapshot.
    let lite = app.connection(user, "lite").await;
    let sealer = app.app().context().shared.sealer.clone();
    let snapshot = sealer.seal(Purpose::ProfileSnapshot, b"perfil-do-usuario");
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO whatsapp_lite_sessions (id, usuario_id, session_name, status, profile_snapshot)
             VALUES ($1, $2, 'celular', 'STOPPED', $3)",
            &[&lite, &user, &snapshot],
        )
        .await
        .unwrap();
    let profile = data_dir.join("lite").join(lite.to_string()).join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    std::fs::write(profile.join("Local State"), "perfil-do-usuario").unwrap();
    // Another user and its own data.
    let (stays, stays_key) = app.user("stays@example.com", false).await;
    let conn = app.connection(stays, "lite").await;
    app.ingest(vec![crate::ingest::text(
        stays,
        conn,
        "s1",
        "+5521999990000",
        "Bia",
        "conversa-que-fica",
    )])
    .await;
    let (_, admin) = app.user("admin@example.com", true).await;
    for table in ["events", "mensajes_conversacion"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE usuario_id = $1");
        assert!(app.count(&sql, &[&user]).await > 0, "{table}");
    }

    expect_error(
        app.delete(&format!("/v1/users/{user}"), &stays_key)
            .send()
            .await
            .unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
    let resp = app
        .delete(&format!("/v1/users/{user}"), &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let erased: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            erased["business_numbers"].as_u64(),
            erased["lite_sessions"].as_u64(),
            erased["media_files"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{erased}"
    );
    assert!(!data_dir.join("lite").join(lite.to_string()).exists());

    let left = find_anywhere(
        &app,
        &data_dir,
        &[
            "conversa-do-usuario",
            "arquivo-do-usuario",
            "987654321",
            "perfil-do-usuario",
            &n.access_token,
            &n.app_secret,
            "leaving@example.com",
        ],
    )
    .await;
    assert!(left.is_empty(), "{left:#?}");
    assert_eq!(
        app.count("SELECT count(*) FROM usuarios WHERE id = $1", &[&user])
            .await,
        0
    );
    // Its events (no foreign key to the user: a trigger removes them), messages and
    // conversations go with it.
    for table in ["events", "mensajes_conversacion", "conversaciones"] {
        assert_eq!(
            app.count(
                &format!("SELECT count(*) FROM {table} WHERE usuario_id = $1"),
                &[&user]
            )
            .await,
            0,
            "{table}"
        );
    }
    let kept = find_anywhere(&app, &data_dir, &["conversa-que-fica"]).await;
    assert!(
        kept.iter().any(|f| f.starts_with("mensajes_conversacion")),
        "{kept:?}"
    );
    expect_error(
        app.get("/v1/me", &key).send().await.unwrap(),
        401,
        "invalid_api_key",
    )
    .await;
    expect_error(
        app.delete(&format!("/v1/users/{user}"), &admin)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    // The number's actor is gone from this node.
    let stopped = eventually(Duration::from_secs(10), || async {
        app.app()
            .context()
            .shared
            .connections
            .get(n.connection_id)
            .is_none()
            .then_some(())
    })
    .await;
    assert!(stopped.is_some());
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'user.erase' AND target = $1 AND outcome = 'ok'", &[&user.to_string()]).await,
        1
    );
}
