-- Lite inbound durability and login persistence.

-- The page time (unix seconds) of the newest page event a session stored durably: after a
-- browser restart the page is asked again for everything from a little before it.
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS inbound_cursor bigint;
-- The page's login storage (its origin's localStorage), sealed, read as soon as the session
-- reaches WORKING: Chromium writes local storage to the profile in batches, so a browser killed
-- right after a login may come back without it; this puts it back.
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS login_storage text;
ALTER TABLE whatsapp_lite_sessions ADD COLUMN IF NOT EXISTS login_storage_at timestamptz;

-- The WhatsApp key id a Lite send was given before it left (metadata.lite_key): a message the
-- page reports as sent by the account is the daemon's own when a row carries its id.
CREATE INDEX IF NOT EXISTS mensajes_conversacion_lite_key_idx
    ON mensajes_conversacion (connection_id, (metadata->>'lite_key'))
    WHERE metadata ? 'lite_key';
