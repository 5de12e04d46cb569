-- The inbound inbox holds everything that must be durable before it is acknowledged upstream:
-- Meta's webhook bodies (source 'meta', as before) and the Lite page's messages and acks
-- (source 'lite', one row per page event, naming its user and connection). One drain turns
-- both into stored messages, so both get the same isolation of bad items and dead letters.
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'meta';
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS usuario_id uuid;
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS connection_id uuid;
-- A row put back by a replay names the dead letter it came from.
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS replay_of uuid;

-- Inbound items that could not be stored (a payload the store refuses, a number no longer
-- connected, a body that cannot be read): kept sealed with the reason, listed by the API, and
-- replayable once the cause is fixed. Nothing acknowledged upstream is dropped without a row here.
CREATE TABLE IF NOT EXISTS inbound_dead_letters (
    id              uuid PRIMARY KEY,
    inbox_id        bigint,
    source          text NOT NULL,
    usuario_id      uuid REFERENCES usuarios (id) ON DELETE CASCADE,
    connection_id   uuid,
    external_id     text,
    reason          text NOT NULL,
    -- Sealed: a body the inbox takes again as it is (a one-item webhook body, or Lite items).
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    replay_inbox_id bigint
);
CREATE INDEX IF NOT EXISTS inbound_dead_letters_user_idx
    ON inbound_dead_letters (usuario_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS inbound_dead_letters_open_idx
    ON inbound_dead_letters (created_at DESC, id) WHERE replayed_at IS NULL;
