-- Business numbers, webhooks, templates and media.
--
-- A Business number is a configuracion_mensajeria_usuario row with
-- configuracion->>'tipo_conexion' = 'business'; its Meta ids live in clear in
-- configuracion->'business_config' (phone_number_id, waba_id) and its secrets sealed
-- (access_token, app_secret, verify_token). Webhooks are routed by phone_number_id (or by WABA
-- id for template updates), so one active number belongs to one user at a time.

CREATE UNIQUE INDEX IF NOT EXISTS configuracion_business_phone_key
    ON configuracion_mensajeria_usuario ((configuracion->'business_config'->>'phone_number_id'))
    WHERE activo AND configuracion->>'tipo_conexion' = 'business';
CREATE INDEX IF NOT EXISTS configuracion_business_waba_idx
    ON configuracion_mensajeria_usuario ((configuracion->'business_config'->>'waba_id'))
    WHERE activo AND configuracion->>'tipo_conexion' = 'business';

-- The message an inbound media file belongs to, and Meta's digest as the webhook gave it.
ALTER TABLE media ADD COLUMN IF NOT EXISTS message_id uuid
    REFERENCES mensajes_conversacion (id) ON DELETE SET NULL;
CREATE INDEX IF NOT EXISTS media_message_idx ON media (message_id) WHERE message_id IS NOT NULL;

-- Inbox rows are drained oldest first; rows that keep failing are retried after a pause.
ALTER TABLE webhook_inbox ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz NOT NULL DEFAULT now();
