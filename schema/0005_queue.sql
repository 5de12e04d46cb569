-- Tables and columns for the durable outbound queue and rate limiting.
--
-- The outbox row of a message moves pending → sending (claimed under a lease) → sent | failed |
-- cancelled | uncertain. `inflight_at` is set, committed, just before an attempt's request may
-- leave for the provider and cleared when its outcome is recorded: a row found in `sending`
-- with an expired lease and no `inflight_at` was only claimed and goes back to pending; one with
-- `inflight_at` may have been accepted by the provider and becomes `uncertain` (never resent
-- blindly: the Cloud API has no idempotency key).

ALTER TABLE outbox ADD COLUMN IF NOT EXISTS inflight_at timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS sent_at timestamptz;
-- The provider's error code of the last failed attempt (Graph `code`), if it gave one.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS last_code bigint;
-- The Cloud API `type` of the message, readable without opening the sealed payload.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS kind text;

-- Claims: per connection, by priority then age, only due pending rows.
CREATE INDEX IF NOT EXISTS outbox_claim_idx
    ON outbox (connection_id, priority, due_at) WHERE state = 'pending';
-- Daily caps count what a connection sent in the last 24 h.
CREATE INDEX IF NOT EXISTS outbox_sent_idx
    ON outbox (connection_id, sent_at) WHERE sent_at IS NOT NULL;
-- The dead-letter listing (failed and uncertain messages of a user, newest first).
CREATE INDEX IF NOT EXISTS outbox_dead_letter_idx
    ON outbox (usuario_id, updated_at DESC, message_id) WHERE state IN ('failed', 'uncertain');
-- Lease recovery of one node's earlier incarnations.
CREATE INDEX IF NOT EXISTS outbox_lease_owner_idx
    ON outbox (lease_owner) WHERE state = 'sending';
