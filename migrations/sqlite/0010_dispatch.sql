-- Event-driven ingestion and dispatch on release.

-- The ingested offset of events.ndjson is inside a line longer than the read cap whose end
-- is not written yet: after a restart the reader goes on looking for that end, never
-- reading the line from its start.
ALTER TABLE tasks ADD COLUMN events_inside_line INTEGER NOT NULL DEFAULT 0 CHECK (events_inside_line IN (0, 1));

-- Tasks that found no free concurrency slot. They have no queued job: releasing a slot
-- removes the best waiters that now fit (highest priority, then the longest waiting) and
-- pushes their run jobs in the same transaction; a sweep wakes any waiter older than
-- engine.slot_wait_secs (a node died holding a slot, a limit was raised).
CREATE TABLE slot_waiters (
    task_id     INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    priority    TEXT    NOT NULL,                      -- the task's priority when it waited
    job         TEXT    NOT NULL,                      -- the run job to push again (JSON)
    since       TEXT    NOT NULL
);
CREATE INDEX slot_waiters_since ON slot_waiters (since);
