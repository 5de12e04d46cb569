-- Ingest support: find CRM leads whose phone was typed in another format (duplicate
-- resolution looks them up by their digits), and statuses that arrive before the message they
-- belong to has its external id (a webhook can beat the send's own answer).

CREATE INDEX IF NOT EXISTS leads_usuario_digits_idx
    ON leads (usuario_id, (regexp_replace(telefono, '\D', '', 'g')))
    WHERE merged_into IS NULL;

CREATE TABLE IF NOT EXISTS pending_statuses (
    connection_id  uuid NOT NULL REFERENCES configuracion_mensajeria_usuario (id) ON DELETE CASCADE,
    external_id    text NOT NULL,
    estado         text NOT NULL,
    error          text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, external_id)
);

-- Conversations are listed by creation (stable cursors); updated_at changes on every inbound
-- message, so it stays out of indexes and those updates can be HOT.
DROP INDEX IF EXISTS conversaciones_usuario_recent_idx;
CREATE INDEX IF NOT EXISTS conversaciones_usuario_created_idx
    ON conversaciones (usuario_id, created_at DESC, id);
ALTER TABLE conversaciones SET (fillfactor = 85);
