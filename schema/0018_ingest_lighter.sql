-- Every inbound message inserts a message row and an event row and updates its conversation
-- row, thousands a second under a campaign's answers; what each costs beyond itself counts.
-- The CRM's tables keep their columns, keys and indexes (they are only ever extended); the
-- event log is ours.
-- * events.created_at is only used to purge events past retention, and events arrive in time
--   order: a BRIN index (a summary per block range) serves that range delete for a fraction
--   of a B-tree's upkeep.
-- * The foreign key from events to usuarios ran a referential check (a query locking the
--   user's row) for every event. An event is only ever appended in the transaction that
--   bumps its user's event_counters row, which itself references usuarios and cascades from
--   it: a user's deletion waits for that transaction and the counter row's first insert
--   fails once the user is gone. A trigger on the user's deletion (rare) removes the events,
--   as the cascade did, after the counter's cascade, so it sees what that waited for.
-- * A conversation row is updated by every message of its contact. With full pages each
--   update writes the new version on another page, with new entries in all four indexes;
--   with room left on the page PostgreSQL keeps it there (a HOT update) and no index changes.
--   A storage setting only: the table's shape is untouched.

DROP INDEX IF EXISTS events_created_idx;
CREATE INDEX IF NOT EXISTS events_created_brin ON events USING brin (created_at);

ALTER TABLE events DROP CONSTRAINT IF EXISTS events_usuario_id_fkey;
CREATE OR REPLACE FUNCTION usuarios_events_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events WHERE usuario_id = OLD.id;
    RETURN OLD;
END
$$;
-- Named to fire after the referential cascades (triggers fire in name order; theirs begin
-- with "RI_").
DROP TRIGGER IF EXISTS usuarios_events_cascade ON usuarios;
CREATE TRIGGER usuarios_events_cascade AFTER DELETE ON usuarios
    FOR EACH ROW EXECUTE FUNCTION usuarios_events_cascade();

ALTER TABLE conversaciones SET (fillfactor = 70);
