-- Event webhooks: a user's HTTPS endpoints that get every stream event (of the types they
-- ask for) as a signed POST, in seq order, from the durable event log. One cursor per
-- endpoint (the last seq acknowledged) makes delivery resumable after any stop; the lease
-- columns keep two nodes from delivering to one endpoint at once.

CREATE TABLE IF NOT EXISTS event_webhooks (
    id               uuid PRIMARY KEY,
    usuario_id       uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    url              text NOT NULL,
    -- The stream's `types` filter as given (`message.*,lead.created`); NULL: every type.
    types            text,
    description      text,
    -- Custom request headers, sealed (they often carry the receiver's own credentials).
    headers          text,
    -- Signing secrets, sealed. During a rotation the previous one signs too until
    -- `previous_until`.
    secret           text NOT NULL,
    previous_secret  text,
    previous_until   timestamptz,
    -- Deliveries in flight at once (1: strictly one after the other).
    max_in_flight    integer NOT NULL DEFAULT 1 CHECK (max_in_flight BETWEEN 1 AND 16),
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    disabled_at      timestamptz,
    -- The last seq acknowledged (delivered, or given up as a permanent failure).
    cursor           bigint NOT NULL,
    -- Bumped by a replay so replayed deliveries get new delivery ids.
    generation       integer NOT NULL DEFAULT 0,
    -- Bumped by every change through the API: a lane whose write names an older version
    -- reloads the row (new URL, filter, secret or cursor) instead of overwriting it.
    version          integer NOT NULL DEFAULT 0,
    -- Since when deliveries keep failing (NULL: the last one succeeded).
    failing_since    timestamptz,
    last_success_at  timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_webhooks_user_idx ON event_webhooks (usuario_id, created_at);

-- Every attempt, for `GET /v1/webhooks/{id}/deliveries`; pruned with the event log.
CREATE TABLE IF NOT EXISTS event_webhook_attempts (
    id           bigserial PRIMARY KEY,
    webhook_id   uuid NOT NULL REFERENCES event_webhooks (id) ON DELETE CASCADE,
    delivery_id  uuid NOT NULL,
    seq          bigint,
    event_type   text NOT NULL,
    attempt      integer NOT NULL,
    -- delivered, retry, failed (permanent), expired (events purged before delivery)
    outcome      text NOT NULL,
    http_status  integer,
    error        text,
    latency_ms   integer,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_webhook_attempts_idx ON event_webhook_attempts (webhook_id, id DESC);
CREATE INDEX IF NOT EXISTS event_webhook_attempts_created_idx ON event_webhook_attempts (created_at);
