-- The inbound inbox holds everything that must be durable before it is acknowledged upstream:
-- Meta's webhook bodies (source 'meta', as before) and the Lite page's messages and acks
-- (source 'lite', one row per page event, naming its user and connection). One drain turns
-- both into stored messages, so both get the same isolation of bad items and dead letters.
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'meta';
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS usuario_id uuid;
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS connection_id uuid;
-- Meta bodies: the users whose numbers' app secrets verified the signature. Only their
-- numbers (phone number id and WABA both theirs) are touched by what the body says.
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS signed_by uuid[];

-- Inbound items that could not be stored (a value the store refuses, a number not connected
-- here, a body that cannot be read), with the reason. The raw payload stays sealed in its inbox
-- row (kept while a dead letter names it); a replay drains that row again, and ingest is
-- idempotent, so what was already stored from it is not stored twice. Nothing acknowledged
-- upstream is dropped without a row here.
CREATE TABLE IF NOT EXISTS inbound_dead_letters (
    id              uuid PRIMARY KEY,
    inbox_id        bigint NOT NULL,
    source          text NOT NULL,
    usuario_id      uuid REFERENCES usuarios (id) ON DELETE CASCADE,
    connection_id   uuid,
    external_id     text,
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz
);
CREATE INDEX IF NOT EXISTS inbound_dead_letters_user_idx
    ON inbound_dead_letters (usuario_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS inbound_dead_letters_inbox_idx ON inbound_dead_letters (inbox_id);

-- Template status webhooks can arrive late or twice: the time of the last applied event, so an
-- older one is ignored.
ALTER TABLE whatsapp_templates ADD COLUMN IF NOT EXISTS status_event_at timestamptz;
