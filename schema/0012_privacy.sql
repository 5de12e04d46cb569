-- Personal data: consent per contact, per-user retention, and the indexes retention purges by.

-- How many days a user's messages and media are kept (NULL: the daemon's RETENTION_DAYS).
ALTER TABLE usuarios ADD COLUMN IF NOT EXISTS retention_days integer
    CHECK (retention_days IS NULL OR retention_days > 0);

-- Consent history of a contact of a user, newest last: an inbound opt-out keyword, or an
-- opt-in/opt-out the CRM recorded with its source. The newest row is the contact's state.
-- `contact` is the contact key (the lead's `telefono`: E.164 with WhatsApp's spellings folded).
CREATE TABLE IF NOT EXISTS contact_consent (
    id          bigserial PRIMARY KEY,
    usuario_id  uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    contact     text NOT NULL,
    opted_out   boolean NOT NULL,
    source      text NOT NULL,
    message_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contact_consent_contact_idx
    ON contact_consent (usuario_id, contact, id DESC);

-- Retention purges the oldest rows first, a small batch at a time.
CREATE INDEX IF NOT EXISTS mensajes_conversacion_usuario_created_idx
    ON mensajes_conversacion (usuario_id, created_at);
CREATE INDEX IF NOT EXISTS webhook_inbox_received_idx ON webhook_inbox (received_at);
CREATE INDEX IF NOT EXISTS inbound_dead_letters_created_idx ON inbound_dead_letters (created_at);
CREATE INDEX IF NOT EXISTS audit_log_created_idx ON audit_log (created_at);
