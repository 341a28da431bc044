-- Cron schedules: every tick of an enabled schedule becomes at most one task of its
-- project, however many processes run the scheduler. Two things make that hold: the
-- task's dedup key is `schedule:<id>:<tick>` (UNIQUE per project, see tasks_project_dedup),
-- and only the process whose compare-and-set on `last_fired_at` succeeds moves a schedule
-- on to its next tick.
CREATE TABLE schedules (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused: task dedup keys name it
    name             TEXT    NOT NULL UNIQUE,              -- slug, the public key
    project_id       BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,  -- a removed project takes its schedules along
    team             TEXT    NOT NULL,                     -- team preset of the tasks it creates
    prompt_template  TEXT    NOT NULL,                     -- {date} (the tick's date in `timezone`) and {schedule} (the name) are filled in
    cron             TEXT    NOT NULL,                     -- 5 fields (at second 0), or 6 with seconds first
    timezone         TEXT    NOT NULL,                     -- IANA name the cron fields are read in, e.g. Europe/Berlin
    priority         TEXT    NOT NULL CHECK (priority IN ('critical', 'high', 'normal', 'low')),
    overlap          TEXT    NOT NULL CHECK (overlap IN ('skip', 'queue')),      -- skip: no new task while its previous one is open
    missed           TEXT    NOT NULL CHECK (missed IN ('run_once', 'skip')),    -- ticks missed during downtime: one task for the latest, or none
    enabled          BOOLEAN NOT NULL,
    origin           TEXT    NOT NULL CHECK (origin IN ('api', 'file')),        -- file: declared in jobs/*.toml, read-only through the API
    next_run_at      TIMESTAMPTZ,                          -- the next tick to handle; NULL while disabled
    last_fired_at    TIMESTAMPTZ,                          -- the last tick handled (a task created, or skipped by policy)
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL                  -- last change of the definition (not of the timing columns)
);
-- The scheduler's two questions: which schedules are due, and when is the next one.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;
