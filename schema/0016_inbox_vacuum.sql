-- The inbox is a queue: every row is inserted, claimed, then updated as drained, so under a
-- flood its pending index fills with entries of drained rows faster than the default
-- autovacuum thresholds (20 % of the table) clean them, and each claim walks past more of
-- them. Vacuum it after a few thousand changed rows instead; the table's rows are small and
-- a vacuum of it is cheap.
ALTER TABLE webhook_inbox SET (
  autovacuum_vacuum_scale_factor = 0.0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0.0,
  autovacuum_vacuum_insert_threshold = 20000
);
