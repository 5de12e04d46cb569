-- Tables and columns for WhatsApp Lite sessions.

-- Whether the session should run: set when it reaches WORKING, cleared when it is stopped on
-- purpose, logged out or FAILED. A starting daemon starts these again (a session restarting
-- after a crash is STARTING but still wanted).
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS autostart boolean NOT NULL DEFAULT false;
-- When the QR in qr_code was shown (it rotates).
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS qr_updated_at timestamptz;
-- The node whose Chromium runs the session now (informational until leases take it over).
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS node_id text;
-- Why the session is in its current status (e.g. the WhatsApp state behind FAILED).
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS status_reason text;
-- When the session last reached WORKING.
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS working_since timestamptz;

CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_autostart_idx
    ON whatsapp_lite_sessions (created_at) WHERE autostart;
CREATE INDEX IF NOT EXISTS whatsapp_lite_sessions_usuario_status_idx
    ON whatsapp_lite_sessions (usuario_id, status);
