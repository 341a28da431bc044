-- deliveries_received indexed `id`, which the primary key indexes already: every delivery
-- paid for a second B-tree insert that no query needed.
DROP INDEX IF EXISTS deliveries_received;
