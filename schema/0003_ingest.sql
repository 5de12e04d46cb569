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
