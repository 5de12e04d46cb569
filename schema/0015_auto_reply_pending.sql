-- Auto-replies decided but not yet queued: the decision (and the contact's window slot) is
-- committed with the inbound message, the answer is queued just after. A daemon killed in
-- between leaves the row pending; a sweep queues it later (the inbound message's id is the
-- answer's idempotency key, so it is never queued twice). Rows from before stay settled.
ALTER TABLE auto_replies ADD COLUMN IF NOT EXISTS in_reply_to uuid;
ALTER TABLE auto_replies ADD COLUMN IF NOT EXISTS pending boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS auto_replies_pending_idx ON auto_replies (replied_at) WHERE pending;
