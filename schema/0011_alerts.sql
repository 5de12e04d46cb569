-- Alerts with a lifecycle: one open row per condition (its dedup key), raised once, counted and
-- touched while the condition lasts, resolved when it clears, acknowledged by a person. Each
-- raise and resolve is delivered to ALERT_WEBHOOK_URL through `alert_deliveries`, retried with
-- backoff by any node.

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS dedup_key text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS connection_id uuid;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acked_at timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acked_by uuid REFERENCES usuarios (id) ON DELETE SET NULL;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS last_seen_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1;
-- Rows written before the lifecycle each stand for a condition of their own.
UPDATE alerts SET dedup_key = 'legacy:' || id::text WHERE dedup_key IS NULL;
ALTER TABLE alerts ALTER COLUMN dedup_key SET NOT NULL;

-- At most one open alert per condition: a second raise touches the open one.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_key_idx ON alerts (dedup_key) WHERE resolved_at IS NULL;
-- The listing: a user's alerts (or all), newest first.
CREATE INDEX IF NOT EXISTS alerts_user_created_idx ON alerts (usuario_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS alerts_created_idx ON alerts (created_at DESC, id);

CREATE TABLE IF NOT EXISTS alert_deliveries (
    id               bigserial PRIMARY KEY,
    alert_id         uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    state            text NOT NULL CHECK (state IN ('raised', 'resolved')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    gave_up_at       timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due_idx
    ON alert_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
