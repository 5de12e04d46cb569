-- A campaign queues thousands of messages a second, each an outbox row next to its message;
-- each of the outbox's foreign keys ran a referential check (a query locking the referenced
-- row) for every row, about 5 µs a row each. The outbox is ours; two of its three keys only
-- repeated what holds already:
-- * usuario_id: an outbox row is written in the transaction that writes its message, and the
--   message goes with its user (its conversation and its own user key cascade), taking the
--   outbox row with it through the message key, which stays.
-- * connection_id: the message row written first in that transaction checks the same
--   connection (its key sets it to NULL on the connection's deletion), so a deletion waits
--   for the transaction and a queued row cannot outlive its connection unseen. A trigger on
--   the connection's deletion (rare, by the CRM) removes its outbox rows, as the cascade did;
--   each statement of the trigger reads what committed before it, including what the
--   deletion waited for.
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_usuario_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_connection_id_fkey;
CREATE OR REPLACE FUNCTION connections_outbox_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox WHERE connection_id = OLD.id;
    RETURN OLD;
END
$$;
DROP TRIGGER IF EXISTS connections_outbox_cascade ON configuracion_mensajeria_usuario;
CREATE TRIGGER connections_outbox_cascade AFTER DELETE ON configuracion_mensajeria_usuario
    FOR EACH ROW EXECUTE FUNCTION connections_outbox_cascade();
