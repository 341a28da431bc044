-- Engine: concurrency slots, task execution state, and idempotent ingestion keys.

-- A running task holds one slot. Limits count live slots (expires_at in the future):
-- the global limit across every process, and each project's max_concurrency. A holder
-- refreshes expires_at while it runs; a crashed holder's slot expires by itself.
CREATE TABLE run_slots (
    task_id      INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id   INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    holder       TEXT    NOT NULL,                     -- node/worker id
    acquired_at  TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);
CREATE INDEX run_slots_project ON run_slots (project_id, expires_at);

-- Where a task runs and how far ingestion got.
ALTER TABLE tasks ADD COLUMN repo_path TEXT;               -- repository the worktree belongs to
ALTER TABLE tasks ADD COLUMN base_ref TEXT;                -- what the branch started from
ALTER TABLE tasks ADD COLUMN claude_session_id TEXT;       -- the conversation a resume continues
ALTER TABLE tasks ADD COLUMN events_offset INTEGER NOT NULL DEFAULT 0;  -- bytes of events.ndjson ingested
ALTER TABLE tasks ADD COLUMN infra_attempts INTEGER NOT NULL DEFAULT 0; -- retries after infrastructure failures
ALTER TABLE tasks ADD COLUMN cancel_requested_at TEXT;
ALTER TABLE tasks ADD COLUMN updated_at TEXT;

-- Party events are unique per task, party session and byte offset (a re-run in the same
-- worktree starts a new party session whose offsets start at 0 again).
DROP INDEX events_party_offset;
ALTER TABLE events ADD COLUMN party_session TEXT;
CREATE UNIQUE INDEX events_party_offset ON events (task_id, party_session, source_offset) WHERE source_offset IS NOT NULL;
CREATE INDEX events_project ON events (project_id, id);

ALTER TABLE runs ADD COLUMN pgid INTEGER;                  -- process group, killed on recovery
ALTER TABLE runs ADD COLUMN holder TEXT;
