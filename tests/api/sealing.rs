//! Sealed values in real rows: the raw column holds no plaintext, opens with the configured
//! keys (also after rotation), and a tampered row is an error.

use crate::helpers::spawn_app;
use sincro_core::seal::{Purpose, SealError, Sealer};
use uuid::Uuid;

#[tokio::test]
async fn message_bodies_are_sealed_in_their_text_column() {
    // Arrange
    let mut app = spawn_app().await;
    let (user, _) = app.user("seal@example.com", false).await;
    let sealer = app.app().context().sealer.clone();
    let client = app.pool().get().await.unwrap();
    let conv: Uuid = client
        .query_one(
            "INSERT INTO conversaciones (usuario_id, tipo, remitente) VALUES ($1, 'entrante', '+5511987654321') RETURNING id",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    let body = "meu segredo: cartão 4111 1111 1111 1111";
    // Act
    let msg: Uuid = client
        .query_one(
            "INSERT INTO mensajes_conversacion (conversacion_id, usuario_id, tipo, contenido, direccion, estado)
             VALUES ($1, $2, 'texto', $3, 'entrante', 'received') RETURNING id",
            &[&conv, &user, &sealer.seal_str(Purpose::MessageBody, body)],
        )
        .await
        .unwrap()
        .get(0);
    // Assert: nothing of the body is in the raw row. The card number is looked for as written
    // (with its spaces): four digits alone turn up by chance in the row's random UUIDs.
    let raw: String = client
        .query_one(
            "SELECT row_to_json(m)::text FROM mensajes_conversacion m WHERE id = $1",
            &[&msg],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !raw.contains("segredo") && !raw.contains("cartão") && !raw.contains("4111 1111"),
        "{raw}"
    );
    let stored: String = client
        .query_one(
            "SELECT contenido FROM mensajes_conversacion WHERE id = $1",
            &[&msg],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        sealer.open_str(Purpose::MessageBody, &stored).unwrap(),
        body
    );
    // Rotation: a new first key still opens the old row, and seals with the new id.
    let old = app.env["ENCRYPTION_KEY"].clone();
    let rotated =
        Sealer::from_env_value(&format!("{},{old}", Sealer::generate_env_value("t2"))).unwrap();
    assert_eq!(
        rotated.open_str(Purpose::MessageBody, &stored).unwrap(),
        body
    );
    assert!(
        rotated
            .seal_str(Purpose::MessageBody, body)
            .starts_with("sw1.t2.")
    );
    // Tampering with the stored row is detected.
    client
        .execute(
            "UPDATE mensajes_conversacion SET contenido = overlay(contenido placing (CASE WHEN substr(contenido, 20, 1) = 'A' THEN 'B' ELSE 'A' END) from 20 for 1) WHERE id = $1",
            &[&msg],
        )
        .await
        .unwrap();
    let tampered: String = client
        .query_one(
            "SELECT contenido FROM mensajes_conversacion WHERE id = $1",
            &[&msg],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        sealer.open_str(Purpose::MessageBody, &tampered),
        Err(SealError::Tampered)
    );
    drop(client);
    app.shutdown().await;
}
