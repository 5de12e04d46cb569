-- Leases on claimed outbox rows move from every row to their owner: a row in
-- `sending` names the Dispatcher incarnation that claimed it (lease_owner), and that
-- incarnation's one row here says until when it is alive. Renewing is then one row, not
-- every held row: renewing thousands of rows locked them against the marking and recording
-- statements of the same rows (a stall of the whole send pipeline, and deadlocks).
CREATE TABLE IF NOT EXISTS outbox_owners (
    owner      text PRIMARY KEY,
    node_id    text NOT NULL,
    until      timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL DEFAULT now()
);

DROP INDEX IF EXISTS outbox_lease_idx;
ALTER TABLE outbox DROP COLUMN IF EXISTS lease_until;
CREATE INDEX IF NOT EXISTS outbox_owner_idx ON outbox (lease_owner) WHERE state = 'sending';
