-- The CRM's own tables (docs/ARCHITECTURE.md §3). The CRM may already have them: every statement
-- creates only what is absent, and columns we add to existing tables are nullable or defaulted.

CREATE TABLE IF NOT EXISTS usuarios (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text,
    nombre      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Default region for phone numbers written without a country code (ISO 3166 alpha-2).
ALTER TABLE usuarios ADD COLUMN IF NOT EXISTS default_region text;
CREATE INDEX IF NOT EXISTS usuarios_email_idx ON usuarios (lower(email));

CREATE TABLE IF NOT EXISTS leads (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id  uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    nombre      text,
    telefono    text,
    email       text,
    origen      text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Set on a lead that was merged into another one (duplicate resolution keeps the merged row).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS merged_into uuid REFERENCES leads (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX IF NOT EXISTS leads_usuario_telefono_key ON leads (usuario_id, telefono);
CREATE INDEX IF NOT EXISTS leads_usuario_created_idx ON leads (usuario_id, created_at DESC, id);

CREATE TABLE IF NOT EXISTS configuracion_mensajeria_usuario (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id     uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    plataforma     text NOT NULL DEFAULT 'whatsapp',
    configuracion  jsonb NOT NULL DEFAULT '{}'::jsonb,
    activo         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS configuracion_mensajeria_usuario_usuario_idx
    ON configuracion_mensajeria_usuario (usuario_id, plataforma);

CREATE TABLE IF NOT EXISTS conversaciones (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    usuario_id       uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    lead_id          uuid REFERENCES leads (id) ON DELETE SET NULL,
    servicio_origen  text NOT NULL DEFAULT 'whatsapp',
    tipo             text,
    remitente        text,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The connection (configuracion_mensajeria_usuario.id) a WhatsApp conversation belongs to.
ALTER TABLE conversaciones ADD COLUMN IF NOT EXISTS connection_id uuid
    REFERENCES configuracion_mensajeria_usuario (id) ON DELETE SET NULL;
-- When the contact last wrote: the start of Meta's 24 h customer-service window.
ALTER TABLE conversaciones ADD COLUMN IF NOT EXISTS last_inbound_at timestamptz;
ALTER TABLE conversaciones ADD COLUMN IF NOT EXISTS last_message_at timestamptz;
-- One conversation per (usuario, connection, contact).
CREATE UNIQUE INDEX IF NOT EXISTS conversaciones_whatsapp_contact_key
    ON conversaciones (usuario_id, connection_id, remitente)
    WHERE servicio_origen = 'whatsapp' AND connection_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversaciones_usuario_recent_idx
    ON conversaciones (usuario_id, updated_at DESC, id);
CREATE INDEX IF NOT EXISTS conversaciones_lead_idx ON conversaciones (lead_id);

CREATE TABLE IF NOT EXISTS mensajes_conversacion (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversacion_id  uuid NOT NULL REFERENCES conversaciones (id) ON DELETE CASCADE,
    tipo             text NOT NULL DEFAULT 'texto',
    contenido        text,
    remitente        text,
    canal            text NOT NULL DEFAULT 'whatsapp',
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS usuario_id uuid REFERENCES usuarios (id) ON DELETE CASCADE;
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS connection_id uuid
    REFERENCES configuracion_mensajeria_usuario (id) ON DELETE SET NULL;
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS direccion text
    CHECK (direccion IN ('entrante', 'saliente'));
-- wamid (Business) or WhatsApp Web message id (Lite); unique per connection.
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS external_id text;
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS estado text
    CHECK (estado IN ('queued', 'sent', 'delivered', 'read', 'failed', 'received', 'cancelled'));
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE mensajes_conversacion ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now();
CREATE UNIQUE INDEX IF NOT EXISTS mensajes_conversacion_external_key
    ON mensajes_conversacion (connection_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS mensajes_conversacion_conversation_idx
    ON mensajes_conversacion (conversacion_id, created_at DESC, id);
CREATE INDEX IF NOT EXISTS mensajes_conversacion_usuario_idx ON mensajes_conversacion (usuario_id);
