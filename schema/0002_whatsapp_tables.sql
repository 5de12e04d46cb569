-- The daemon's own tables: Lite sessions, Business templates, API keys, the durable outbox and
-- webhook inbox, the per-user event log, audit log, alerts, nodes and leases, media.

CREATE TABLE IF NOT EXISTS whatsapp_lite_sessions (
    id                      uuid PRIMARY KEY REFERENCES configuracion_mensajeria_usuario (id) ON DELETE CASCADE,
    usuario_id              uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    session_name            text NOT NULL,
    status                  text NOT NULL DEFAULT 'STARTING'
        CHECK (status IN ('STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED', 'STOPPED')),
    phone_number            text,
    qr_code                 text,
    last_disconnect_reason  text,
    last_disconnect_at      timestamptz,
    -- Sealed archive of the browser profile's login state, restored when the profile is missing.
    profile_snapshot        text,
    profile_snapshot_at     timestamptz,
    last_activity_at        timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_usuario_idx ON whatsapp_lite_sessions (usuario_id);
CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_status_idx ON whatsapp_lite_sessions (status);

CREATE TABLE IF NOT EXISTS whatsapp_templates (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id        uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    connection_id     uuid NOT NULL REFERENCES configuracion_mensajeria_usuario (id) ON DELETE CASCADE,
    meta_template_id  text,
    name              text NOT NULL,
    language          text NOT NULL,
    category          text,
    status            text NOT NULL DEFAULT 'PENDING',
    components        jsonb NOT NULL DEFAULT '[]'::jsonb,
    rejection_reason  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, name, language)
);
CREATE INDEX IF NOT EXISTS whatsapp_templates_usuario_idx ON whatsapp_templates (usuario_id, name);

-- API keys: only a SHA-256 of the key is stored; `prefix` is the public part used to find it.
CREATE TABLE IF NOT EXISTS api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id    uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    prefix        text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_usuario_idx ON api_keys (usuario_id);

-- Durable outbound queue: one row per message to send (docs/ARCHITECTURE.md §4, Outbound).
CREATE TABLE IF NOT EXISTS outbox (
    message_id     uuid PRIMARY KEY REFERENCES mensajes_conversacion (id) ON DELETE CASCADE,
    usuario_id     uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    connection_id  uuid NOT NULL REFERENCES configuracion_mensajeria_usuario (id) ON DELETE CASCADE,
    recipient      text NOT NULL,
    payload        text NOT NULL,                       -- sealed request body
    priority       smallint NOT NULL DEFAULT 1,         -- 0 high, 1 normal, 2 bulk
    state          text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'uncertain')),
    due_at         timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL DEFAULT 8,
    lease_owner    text,
    lease_until    timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outbox_due_idx ON outbox (priority, due_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_lease_idx ON outbox (lease_until) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS outbox_usuario_idx ON outbox (usuario_id, state);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    usuario_id    uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    message_id    uuid REFERENCES mensajes_conversacion (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (usuario_id, key)
);

-- Raw webhook bodies, stored (sealed) before Meta gets its 200; Ingest drains them.
CREATE TABLE IF NOT EXISTS webhook_inbox (
    id               bigserial PRIMARY KEY,
    phone_number_id  text,
    body             text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    processed_at     timestamptz,
    error            text
);
CREATE INDEX IF NOT EXISTS webhook_inbox_pending_idx ON webhook_inbox (id) WHERE processed_at IS NULL;

-- Per-user event log behind the WebSocket stream: `seq` is gapless per user.
CREATE TABLE IF NOT EXISTS event_counters (
    usuario_id  uuid PRIMARY KEY REFERENCES usuarios (id) ON DELETE CASCADE,
    last_seq    bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    usuario_id  uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    payload     text NOT NULL,                          -- sealed JSON (may quote message content)
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (usuario_id, seq)
);
CREATE INDEX IF NOT EXISTS events_created_idx ON events (created_at);

-- Who did what, without message content.
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    usuario_id  uuid REFERENCES usuarios (id) ON DELETE SET NULL,
    api_key_id  uuid,
    action      text NOT NULL,
    target      text,
    ip          text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_log_usuario_idx ON audit_log (usuario_id, created_at DESC);

CREATE TABLE IF NOT EXISTS alerts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id   uuid REFERENCES usuarios (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    severity     text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    source       text NOT NULL,
    message      text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    node_id      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE INDEX IF NOT EXISTS alerts_open_idx ON alerts (created_at DESC) WHERE resolved_at IS NULL;

CREATE TABLE IF NOT EXISTS nodes (
    id            text PRIMARY KEY,
    hostname      text,
    version       text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);

-- Which node owns a Lite session or Business number right now (docs/ARCHITECTURE.md §5).
CREATE TABLE IF NOT EXISTS leases (
    resource    text PRIMARY KEY,                       -- e.g. 'lite:<uuid>', 'business:<uuid>'
    node_id     text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS media (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id     uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    connection_id  uuid REFERENCES configuracion_mensajeria_usuario (id) ON DELETE SET NULL,
    direction      text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    mime_type      text NOT NULL,
    filename       text,
    size_bytes     bigint NOT NULL,
    sha256         text NOT NULL,
    storage_path   text NOT NULL,                       -- relative to DATA_DIR; the file is sealed
    provider_id    text,                                -- Meta media id or WhatsApp Web direct path
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS media_usuario_idx ON media (usuario_id, created_at DESC);
