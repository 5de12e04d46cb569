-- The CRM's side of the contract: the original data model's columns beside ours (none of ours
-- renamed), first-touch lead sources, and the auto-reply bookkeeping. README "For CRM
-- developers" maps every field of the original data model to where it lives.

-- Lite sessions: the original model's session id, lowercase status, activity, expiry and
-- metadata. Kept in sync by `crm::sync::lite` wherever the daemon stores a status or a QR.
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS session_id text;
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS connection_status text;
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS last_activity timestamptz;
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE whatsapp_lite_sessions SET
    session_id = id::text,
    last_activity = last_activity_at,
    connection_status = CASE status
        WHEN 'STARTING' THEN 'connecting' WHEN 'SCAN_QR_CODE' THEN 'connecting'
        WHEN 'WORKING' THEN 'connected' WHEN 'FAILED' THEN 'error' ELSE 'disconnected' END
WHERE session_id IS NULL;
ALTER TABLE whatsapp_lite_sessions ALTER COLUMN connection_status SET DEFAULT 'connecting';
ALTER TABLE whatsapp_lite_sessions ADD CONSTRAINT whatsapp_lite_sessions_connection_status_check
    CHECK (connection_status IN ('connecting', 'connected', 'disconnected', 'error'));
CREATE UNIQUE INDEX IF NOT EXISTS whatsapp_lite_sessions_session_id_idx ON whatsapp_lite_sessions (session_id);
CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_last_activity_idx ON whatsapp_lite_sessions (last_activity);
CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_connection_status_idx ON whatsapp_lite_sessions (connection_status);

-- Templates: the original model's name, text, variables and approval time, derived from ours
-- by a trigger, so every path that writes a template (create, sync, status webhooks) keeps
-- them right without repeating the rule.
ALTER TABLE whatsapp_templates ADD COLUMN IF NOT EXISTS template_name text;
ALTER TABLE whatsapp_templates ADD COLUMN IF NOT EXISTS template_content text;
ALTER TABLE whatsapp_templates ADD COLUMN IF NOT EXISTS variables jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE whatsapp_templates ADD COLUMN IF NOT EXISTS approved_at timestamptz;
CREATE INDEX IF NOT EXISTS whatsapp_templates_status_idx ON whatsapp_templates (status);

CREATE OR REPLACE FUNCTION sincro_templates_original_fields() RETURNS trigger AS $$
DECLARE
    body text;
BEGIN
    NEW.template_name := NEW.name;
    SELECT c->>'text' INTO body FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(NEW.components) = 'array' THEN NEW.components ELSE '[]'::jsonb END) c
    WHERE upper(c->>'type') = 'BODY' LIMIT 1;
    NEW.template_content := body;
    NEW.variables := COALESCE((
        SELECT jsonb_agg(DISTINCT m[1]) FROM regexp_matches(COALESCE(body, ''), '\{\{\s*([A-Za-z0-9_]+)\s*\}\}', 'g') AS m
    ), '[]'::jsonb);
    IF NEW.status = 'APPROVED' AND NEW.approved_at IS NULL THEN
        NEW.approved_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS whatsapp_templates_original_fields ON whatsapp_templates;
CREATE TRIGGER whatsapp_templates_original_fields BEFORE INSERT OR UPDATE ON whatsapp_templates
    FOR EACH ROW EXECUTE FUNCTION sincro_templates_original_fields();
UPDATE whatsapp_templates SET updated_at = updated_at;

-- Leads: where the contact came from, first touch (never overwritten), for `?source=`.
CREATE INDEX IF NOT EXISTS leads_source_idx ON leads (usuario_id, (metadata->'source'->>'type'))
    WHERE metadata ? 'source';

-- Auto-replies: when each contact of a connection was last answered automatically, so one
-- answer is sent at most once per configured window.
CREATE TABLE IF NOT EXISTS auto_replies (
    connection_id  uuid NOT NULL REFERENCES configuracion_mensajeria_usuario (id) ON DELETE CASCADE,
    contact        text NOT NULL,
    replied_at     timestamptz NOT NULL,
    message_id     uuid,
    PRIMARY KEY (connection_id, contact)
);

-- A contact that changed number: its old key now stands for the new one, so the lead and
-- conversation follow the person, even for messages from the old number that come late.
CREATE TABLE IF NOT EXISTS contact_number_changes (
    usuario_id  uuid NOT NULL REFERENCES usuarios (id) ON DELETE CASCADE,
    old_key     text NOT NULL,
    new_key     text NOT NULL,
    lead_id     uuid REFERENCES leads (id) ON DELETE SET NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (usuario_id, old_key)
);
CREATE INDEX IF NOT EXISTS contact_number_changes_new_idx ON contact_number_changes (usuario_id, new_key);

-- Events of a connection whose `settings.notifications_enabled` is false when they happened:
-- stored (and replayable) as any other, but only admin keys receive them on the stream.
ALTER TABLE events ADD COLUMN IF NOT EXISTS muted boolean NOT NULL DEFAULT false;
