-- API keys users manage themselves: scopes and an optional expiry. A key whose scopes are NULL
-- was made before scopes existed and keeps the full rights of its user (admin only when the
-- key's is_admin is set).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS scopes text[];
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;

-- Whether an audited call succeeded, and how it failed otherwise (an error code, never content).
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS outcome text;
CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (action, created_at DESC);
