-- Every webhook delivery writes an attempt row (ten endpoints at 1,000 events a second:
-- 10,000 rows a second), so what each row costs beyond itself counts:
-- * The foreign key to event_webhooks ran a referential check (a query locking the endpoint's
--   row) for every attempt inserted. The lanes insert attempts only in the statement that
--   updated, and so locked, that endpoint's row, so the check proved nothing; a trigger on
--   the endpoint's deletion (rare) removes its attempts instead, as the cascade did.
-- * created_at is only used to prune old rows, and rows arrive in time order: a BRIN index
--   (a summary per block range) serves that range delete for a fraction of a B-tree's upkeep.
ALTER TABLE event_webhook_attempts DROP CONSTRAINT IF EXISTS event_webhook_attempts_webhook_id_fkey;

CREATE OR REPLACE FUNCTION event_webhook_attempts_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_webhook_attempts WHERE webhook_id = OLD.id;
    RETURN OLD;
END
$$;
DROP TRIGGER IF EXISTS event_webhooks_attempts_cascade ON event_webhooks;
CREATE TRIGGER event_webhooks_attempts_cascade AFTER DELETE ON event_webhooks
    FOR EACH ROW EXECUTE FUNCTION event_webhook_attempts_cascade();

DROP INDEX IF EXISTS event_webhook_attempts_created_idx;
CREATE INDEX IF NOT EXISTS event_webhook_attempts_created_brin
    ON event_webhook_attempts USING brin (created_at);
