-- Analytics rollups: the figures of tasks, runs and approvals summed per UTC day and group
-- (project, team, source) as the rows are written, so an analytics answer adds up a few
-- hundred rollup rows instead of every task, run and approval in its range.
--
-- Triggers keep them, so every writer (engine, API, CLI, another node, a hand-written
-- statement) keeps them right without code of its own; this migration fills them from the
-- rows already there. A change the triggers could not keep right is refused: tasks, runs and
-- approvals are never deleted (retention keeps them; a project with tasks cannot be deleted),
-- and a task never moves to another day or group. A later migration that rebuilds `tasks`,
-- `runs` or `approvals` (SQLite's way to change a CHECK) must create these triggers again.
--
-- A day is a number: days since 1970-01-01 in UTC, `strftime('%s', t) / 86400` here. Weeks and
-- months (UTC, whole days) are sums of days.

-- The histogram buckets of durations, by lower bound in milliseconds: every millisecond below
-- 10 ms, then 35 round bounds per decade (10, 11, …, 20, 21, 22, 24, …, 45, 48, 50, 55, …, 95
-- times a power of ten) up to 9.5e9 ms, and one open bucket from 1e10 ms (115 days). Two
-- neighbouring bounds are at most 10 % apart, so a percentile read as the lower bound of the
-- bucket holding it is never above the true value and less than 9.1 % below it (exact below
-- 10 ms and for a value that is itself a bound: 30 s, 45 s, 1, 1.5, 2, 3, 5, 10 or 40 min, …).
CREATE TABLE duration_buckets (
    lower_ms  INTEGER PRIMARY KEY
);
WITH RECURSIVE
    small(ms) AS (SELECT 0 UNION ALL SELECT ms + 1 FROM small WHERE ms < 9),
    decades(scale) AS (SELECT 1 UNION ALL SELECT scale * 10 FROM decades WHERE scale < 100000000),
    mantissas(m) AS (VALUES (10), (11), (12), (13), (14), (15), (16), (17), (18), (19), (20),
        (21), (22), (24), (26), (28), (30), (32), (34), (36), (38), (40), (42), (45), (48), (50),
        (55), (60), (65), (70), (75), (80), (85), (90), (95))
INSERT INTO duration_buckets (lower_ms)
SELECT ms FROM small
UNION ALL SELECT m * scale FROM mantissas, decades
UNION ALL SELECT 10000000000;

-- Tasks by creation day and group: what they became, and what all their runs used.
CREATE TABLE task_rollups (
    day                 INTEGER NOT NULL,           -- the tasks' created_at, in days since 1970-01-01 UTC
    project_id          INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team                TEXT    NOT NULL,
    source              TEXT    NOT NULL,
    tasks               INTEGER NOT NULL DEFAULT 0, -- created
    started             INTEGER NOT NULL DEFAULT 0, -- of those, picked up by a worker (started_at set)
    done                INTEGER NOT NULL DEFAULT 0, -- of those, by status now
    failed              INTEGER NOT NULL DEFAULT 0,
    cancelled           INTEGER NOT NULL DEFAULT 0,
    rolled_back         INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER NOT NULL DEFAULT 0, -- summed over every run of those tasks
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0, -- runs.cache_creation_tokens
    cost_usd            REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source)
) WITHOUT ROWID;

-- The done tasks of a task_rollups row by duration (created_at to completed_at) bucket.
CREATE TABLE task_duration_counts (
    day         INTEGER NOT NULL,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    lower_ms    INTEGER NOT NULL,                   -- duration_buckets.lower_ms
    tasks       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source, lower_ms)
) WITHOUT ROWID;

-- Approval requests by the day they were filed and their task's group.
CREATE TABLE approval_rollups (
    day         INTEGER NOT NULL,                   -- requested_at, in days since 1970-01-01 UTC
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    requested   INTEGER NOT NULL DEFAULT 0,
    decided     INTEGER NOT NULL DEFAULT 0,         -- by a person: decided, channel neither system nor pipeline
    approved    INTEGER NOT NULL DEFAULT 0,         -- of those, by decision
    rejected    INTEGER NOT NULL DEFAULT 0,
    revised     INTEGER NOT NULL DEFAULT 0,
    expired     INTEGER NOT NULL DEFAULT 0,         -- marked expired, or rejected by the deadline (channel system)
    pending     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source)
) WITHOUT ROWID;

-- A person's decisions of an approval_rollups row by wait (requested_at to decided_at) bucket.
CREATE TABLE approval_wait_counts (
    day         INTEGER NOT NULL,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    lower_ms    INTEGER NOT NULL,
    approvals   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source, lower_ms)
) WITHOUT ROWID;

-- What each task's runs used, for the dearest tasks of a range: one row per task with runs,
-- the task's project and creation time copied so the index below answers alone.
CREATE TABLE task_costs (
    task_id             INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id          INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    runs                INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL    NOT NULL DEFAULT 0
);
-- Dearest first, read backwards until the range has given enough tasks.
CREATE INDEX task_costs_dearest ON task_costs (cost_usd, task_id, created_at, project_id);

-- Refused: what the rollups could not follow.
CREATE TRIGGER tasks_never_deleted BEFORE DELETE ON tasks
BEGIN
    SELECT RAISE(ABORT, 'tasks are kept for analytics and never deleted');
END;
CREATE TRIGGER tasks_keep_their_group BEFORE UPDATE OF project_id, team, source, created_at ON tasks
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.team IS NOT NEW.team
    OR OLD.source IS NOT NEW.source OR OLD.created_at IS NOT NEW.created_at
BEGIN
    SELECT RAISE(ABORT, 'a task keeps its project, team, source and creation time (analytics count it there)');
END;
CREATE TRIGGER runs_never_deleted BEFORE DELETE ON runs
BEGIN
    SELECT RAISE(ABORT, 'runs are kept for analytics and never deleted');
END;
CREATE TRIGGER runs_keep_their_task BEFORE UPDATE OF task_id ON runs
WHEN OLD.task_id IS NOT NEW.task_id
BEGIN
    SELECT RAISE(ABORT, 'a run keeps its task (analytics count it there)');
END;
CREATE TRIGGER approvals_never_deleted BEFORE DELETE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approvals are kept for analytics and never deleted');
END;
CREATE TRIGGER approvals_keep_their_day BEFORE UPDATE OF task_id, requested_at ON approvals
WHEN OLD.task_id IS NOT NEW.task_id OR OLD.requested_at IS NOT NEW.requested_at
BEGIN
    SELECT RAISE(ABORT, 'an approval keeps its task and request time (analytics count it there)');
END;

-- A new task counts in its day and group.
CREATE TRIGGER tasks_rollup_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_rollups (day, project_id, team, source, tasks, started, done, failed,
        cancelled, rolled_back)
    VALUES (CAST(strftime('%s', NEW.created_at) AS INTEGER) / 86400, NEW.project_id, NEW.team,
        NEW.source, 1,
        CASE WHEN NEW.started_at IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'done' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'cancelled' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'rolled_back' THEN 1 ELSE 0 END)
    ON CONFLICT (day, project_id, team, source) DO UPDATE SET
        tasks = tasks + 1, started = started + excluded.started, done = done + excluded.done,
        failed = failed + excluded.failed, cancelled = cancelled + excluded.cancelled,
        rolled_back = rolled_back + excluded.rolled_back;
    INSERT INTO task_duration_counts (day, project_id, team, source, lower_ms, tasks)
    SELECT CAST(strftime('%s', NEW.created_at) AS INTEGER) / 86400, NEW.project_id, NEW.team,
        NEW.source,
        (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0,
            CAST(ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400000.0) AS INTEGER))
         ORDER BY lower_ms DESC LIMIT 1),
        1
    WHERE NEW.status = 'done' AND NEW.completed_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET tasks = tasks + 1;
END;

-- A task whose status, start or completion changed: its old figures out, its new ones in.
CREATE TRIGGER tasks_rollup_update AFTER UPDATE OF status, started_at, completed_at ON tasks
WHEN OLD.status IS NOT NEW.status OR OLD.started_at IS NOT NEW.started_at
    OR OLD.completed_at IS NOT NEW.completed_at
BEGIN
    UPDATE task_rollups SET
        started = started + (CASE WHEN NEW.started_at IS NOT NULL THEN 1 ELSE 0 END)
            - (CASE WHEN OLD.started_at IS NOT NULL THEN 1 ELSE 0 END),
        done = done + (CASE WHEN NEW.status = 'done' THEN 1 ELSE 0 END)
            - (CASE WHEN OLD.status = 'done' THEN 1 ELSE 0 END),
        failed = failed + (CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END)
            - (CASE WHEN OLD.status = 'failed' THEN 1 ELSE 0 END),
        cancelled = cancelled + (CASE WHEN NEW.status = 'cancelled' THEN 1 ELSE 0 END)
            - (CASE WHEN OLD.status = 'cancelled' THEN 1 ELSE 0 END),
        rolled_back = rolled_back + (CASE WHEN NEW.status = 'rolled_back' THEN 1 ELSE 0 END)
            - (CASE WHEN OLD.status = 'rolled_back' THEN 1 ELSE 0 END)
    WHERE day = CAST(strftime('%s', NEW.created_at) AS INTEGER) / 86400
        AND project_id = NEW.project_id AND team = NEW.team AND source = NEW.source;
    UPDATE task_duration_counts SET tasks = tasks - 1
    WHERE OLD.status = 'done' AND OLD.completed_at IS NOT NULL
        AND day = CAST(strftime('%s', OLD.created_at) AS INTEGER) / 86400
        AND project_id = OLD.project_id AND team = OLD.team AND source = OLD.source
        AND lower_ms = (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0,
            CAST(ROUND((julianday(OLD.completed_at) - julianday(OLD.created_at)) * 86400000.0) AS INTEGER))
            ORDER BY lower_ms DESC LIMIT 1);
    INSERT INTO task_duration_counts (day, project_id, team, source, lower_ms, tasks)
    SELECT CAST(strftime('%s', NEW.created_at) AS INTEGER) / 86400, NEW.project_id, NEW.team,
        NEW.source,
        (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0,
            CAST(ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400000.0) AS INTEGER))
         ORDER BY lower_ms DESC LIMIT 1),
        1
    WHERE NEW.status = 'done' AND NEW.completed_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET tasks = tasks + 1;
END;

-- A new run adds to its task's figures (often zeros: a run is opened before it spends).
CREATE TRIGGER runs_rollup_insert AFTER INSERT ON runs
BEGIN
    UPDATE task_rollups SET
        input_tokens = task_rollups.input_tokens + NEW.input_tokens,
        output_tokens = task_rollups.output_tokens + NEW.output_tokens,
        cache_read_tokens = task_rollups.cache_read_tokens + NEW.cache_read_tokens,
        cache_write_tokens = task_rollups.cache_write_tokens + NEW.cache_creation_tokens,
        cost_usd = task_rollups.cost_usd + NEW.cost_usd
    FROM tasks t
    WHERE t.id = NEW.task_id
        AND task_rollups.day = CAST(strftime('%s', t.created_at) AS INTEGER) / 86400
        AND task_rollups.project_id = t.project_id AND task_rollups.team = t.team
        AND task_rollups.source = t.source;
    INSERT INTO task_costs (task_id, project_id, created_at, runs, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, cost_usd)
    SELECT t.id, t.project_id, t.created_at, 1, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_creation_tokens, NEW.cost_usd
    FROM tasks t WHERE t.id = NEW.task_id
    ON CONFLICT (task_id) DO UPDATE SET
        runs = runs + 1,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        cost_usd = cost_usd + excluded.cost_usd;
END;

-- A run whose totals changed (spent so far, finished) adds the difference.
CREATE TRIGGER runs_rollup_update AFTER UPDATE OF input_tokens, output_tokens, cache_read_tokens,
    cache_creation_tokens, cost_usd ON runs
WHEN OLD.input_tokens IS NOT NEW.input_tokens OR OLD.output_tokens IS NOT NEW.output_tokens
    OR OLD.cache_read_tokens IS NOT NEW.cache_read_tokens
    OR OLD.cache_creation_tokens IS NOT NEW.cache_creation_tokens
    OR OLD.cost_usd IS NOT NEW.cost_usd
BEGIN
    UPDATE task_rollups SET
        input_tokens = task_rollups.input_tokens + NEW.input_tokens - OLD.input_tokens,
        output_tokens = task_rollups.output_tokens + NEW.output_tokens - OLD.output_tokens,
        cache_read_tokens = task_rollups.cache_read_tokens + NEW.cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = task_rollups.cache_write_tokens + NEW.cache_creation_tokens
            - OLD.cache_creation_tokens,
        cost_usd = task_rollups.cost_usd + (NEW.cost_usd - OLD.cost_usd)
    FROM tasks t
    WHERE t.id = NEW.task_id
        AND task_rollups.day = CAST(strftime('%s', t.created_at) AS INTEGER) / 86400
        AND task_rollups.project_id = t.project_id AND task_rollups.team = t.team
        AND task_rollups.source = t.source;
    UPDATE task_costs SET
        input_tokens = input_tokens + NEW.input_tokens - OLD.input_tokens,
        output_tokens = output_tokens + NEW.output_tokens - OLD.output_tokens,
        cache_read_tokens = cache_read_tokens + NEW.cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + NEW.cache_creation_tokens - OLD.cache_creation_tokens,
        cost_usd = cost_usd + (NEW.cost_usd - OLD.cost_usd)
    WHERE task_id = NEW.task_id;
END;

-- A new approval request counts in the day it was filed and its task's group.
CREATE TRIGGER approvals_rollup_insert AFTER INSERT ON approvals
BEGIN
    INSERT INTO approval_rollups (day, project_id, team, source, requested, decided, approved,
        rejected, revised, expired, pending)
    SELECT CAST(strftime('%s', NEW.requested_at) AS INTEGER) / 86400, t.project_id, t.team,
        t.source, 1,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'approve' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'reject' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'revise' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'expired' OR NEW.channel = 'system' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'pending' THEN 1 ELSE 0 END
    FROM tasks t WHERE t.id = NEW.task_id
    ON CONFLICT (day, project_id, team, source) DO UPDATE SET
        requested = requested + 1, decided = decided + excluded.decided,
        approved = approved + excluded.approved, rejected = rejected + excluded.rejected,
        revised = revised + excluded.revised, expired = expired + excluded.expired,
        pending = pending + excluded.pending;
    INSERT INTO approval_wait_counts (day, project_id, team, source, lower_ms, approvals)
    SELECT CAST(strftime('%s', NEW.requested_at) AS INTEGER) / 86400, t.project_id, t.team,
        t.source,
        (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0,
            CAST(ROUND((julianday(NEW.decided_at) - julianday(NEW.requested_at)) * 86400000.0) AS INTEGER))
         ORDER BY lower_ms DESC LIMIT 1),
        1
    FROM tasks t
    WHERE t.id = NEW.task_id AND NEW.status = 'decided'
        AND NEW.channel NOT IN ('system', 'pipeline') AND NEW.decided_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET approvals = approvals + 1;
END;

-- An approval whose status or decision changed: its old figures out, its new ones in.
CREATE TRIGGER approvals_rollup_update AFTER UPDATE OF status, decision, channel, decided_at
    ON approvals
WHEN OLD.status IS NOT NEW.status OR OLD.decision IS NOT NEW.decision
    OR OLD.channel IS NOT NEW.channel OR OLD.decided_at IS NOT NEW.decided_at
BEGIN
    UPDATE approval_rollups SET
        requested = requested - 1,
        decided = decided - (CASE WHEN OLD.status = 'decided'
            AND OLD.channel NOT IN ('system', 'pipeline') AND OLD.decision IS NOT NULL THEN 1 ELSE 0 END),
        approved = approved - (CASE WHEN OLD.status = 'decided'
            AND OLD.channel NOT IN ('system', 'pipeline') AND OLD.decision = 'approve' THEN 1 ELSE 0 END),
        rejected = rejected - (CASE WHEN OLD.status = 'decided'
            AND OLD.channel NOT IN ('system', 'pipeline') AND OLD.decision = 'reject' THEN 1 ELSE 0 END),
        revised = revised - (CASE WHEN OLD.status = 'decided'
            AND OLD.channel NOT IN ('system', 'pipeline') AND OLD.decision = 'revise' THEN 1 ELSE 0 END),
        expired = expired - (CASE WHEN OLD.status = 'expired' OR OLD.channel = 'system' THEN 1 ELSE 0 END),
        pending = pending - (CASE WHEN OLD.status = 'pending' THEN 1 ELSE 0 END)
    FROM tasks t
    WHERE t.id = OLD.task_id
        AND approval_rollups.day = CAST(strftime('%s', OLD.requested_at) AS INTEGER) / 86400
        AND approval_rollups.project_id = t.project_id AND approval_rollups.team = t.team
        AND approval_rollups.source = t.source;
    UPDATE approval_wait_counts SET approvals = approvals - 1
    FROM tasks t
    WHERE t.id = OLD.task_id AND OLD.status = 'decided'
        AND OLD.channel NOT IN ('system', 'pipeline') AND OLD.decided_at IS NOT NULL
        AND approval_wait_counts.day = CAST(strftime('%s', OLD.requested_at) AS INTEGER) / 86400
        AND approval_wait_counts.project_id = t.project_id AND approval_wait_counts.team = t.team
        AND approval_wait_counts.source = t.source
        AND approval_wait_counts.lower_ms = (SELECT lower_ms FROM duration_buckets
            WHERE lower_ms <= MAX(0, CAST(ROUND((julianday(OLD.decided_at)
                - julianday(OLD.requested_at)) * 86400000.0) AS INTEGER))
            ORDER BY lower_ms DESC LIMIT 1);
    INSERT INTO approval_rollups (day, project_id, team, source, requested, decided, approved,
        rejected, revised, expired, pending)
    SELECT CAST(strftime('%s', NEW.requested_at) AS INTEGER) / 86400, t.project_id, t.team,
        t.source, 1,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'approve' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'reject' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'decided' AND NEW.channel NOT IN ('system', 'pipeline')
            AND NEW.decision = 'revise' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'expired' OR NEW.channel = 'system' THEN 1 ELSE 0 END,
        CASE WHEN NEW.status = 'pending' THEN 1 ELSE 0 END
    FROM tasks t WHERE t.id = NEW.task_id
    ON CONFLICT (day, project_id, team, source) DO UPDATE SET
        requested = requested + 1, decided = decided + excluded.decided,
        approved = approved + excluded.approved, rejected = rejected + excluded.rejected,
        revised = revised + excluded.revised, expired = expired + excluded.expired,
        pending = pending + excluded.pending;
    INSERT INTO approval_wait_counts (day, project_id, team, source, lower_ms, approvals)
    SELECT CAST(strftime('%s', NEW.requested_at) AS INTEGER) / 86400, t.project_id, t.team,
        t.source,
        (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0,
            CAST(ROUND((julianday(NEW.decided_at) - julianday(NEW.requested_at)) * 86400000.0) AS INTEGER))
         ORDER BY lower_ms DESC LIMIT 1),
        1
    FROM tasks t
    WHERE t.id = NEW.task_id AND NEW.status = 'decided'
        AND NEW.channel NOT IN ('system', 'pipeline') AND NEW.decided_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET approvals = approvals + 1;
END;

-- The rows already there, counted once by the same rules.
INSERT INTO task_costs (task_id, project_id, created_at, runs, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, cost_usd)
SELECT t.id, t.project_id, t.created_at, COUNT(*), SUM(r.input_tokens), SUM(r.output_tokens),
    SUM(r.cache_read_tokens), SUM(r.cache_creation_tokens), SUM(r.cost_usd)
FROM tasks t JOIN runs r ON r.task_id = t.id
GROUP BY t.id, t.project_id, t.created_at;

INSERT INTO task_rollups (day, project_id, team, source, tasks, started, done, failed, cancelled,
    rolled_back, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)
SELECT CAST(strftime('%s', t.created_at) AS INTEGER) / 86400 AS day, t.project_id, t.team,
    t.source, COUNT(*),
    SUM(CASE WHEN t.started_at IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'rolled_back' THEN 1 ELSE 0 END),
    COALESCE(SUM(c.input_tokens), 0), COALESCE(SUM(c.output_tokens), 0),
    COALESCE(SUM(c.cache_read_tokens), 0), COALESCE(SUM(c.cache_write_tokens), 0),
    COALESCE(SUM(c.cost_usd), 0.0)
FROM tasks t LEFT JOIN task_costs c ON c.task_id = t.id
GROUP BY day, t.project_id, t.team, t.source;

INSERT INTO task_duration_counts (day, project_id, team, source, lower_ms, tasks)
SELECT day, project_id, team, source,
    (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0, ms) ORDER BY lower_ms DESC LIMIT 1)
        AS bucket,
    COUNT(*)
FROM (SELECT CAST(strftime('%s', created_at) AS INTEGER) / 86400 AS day, project_id, team, source,
        CAST(ROUND((julianday(completed_at) - julianday(created_at)) * 86400000.0) AS INTEGER) AS ms
      FROM tasks WHERE status = 'done' AND completed_at IS NOT NULL) AS done_tasks
GROUP BY day, project_id, team, source, bucket;

INSERT INTO approval_rollups (day, project_id, team, source, requested, decided, approved,
    rejected, revised, expired, pending)
SELECT day, project_id, team, source, COUNT(*),
    SUM(CASE WHEN person AND decision IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN person AND decision = 'approve' THEN 1 ELSE 0 END),
    SUM(CASE WHEN person AND decision = 'reject' THEN 1 ELSE 0 END),
    SUM(CASE WHEN person AND decision = 'revise' THEN 1 ELSE 0 END),
    SUM(CASE WHEN status = 'expired' OR channel = 'system' THEN 1 ELSE 0 END),
    SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END)
FROM (SELECT CAST(strftime('%s', a.requested_at) AS INTEGER) / 86400 AS day, t.project_id,
        t.team, t.source, a.status, a.decision, a.channel,
        CASE WHEN a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline') THEN 1 ELSE 0 END
            = 1 AS person
      FROM approvals a JOIN tasks t ON t.id = a.task_id) AS requests
GROUP BY day, project_id, team, source;

INSERT INTO approval_wait_counts (day, project_id, team, source, lower_ms, approvals)
SELECT day, project_id, team, source,
    (SELECT lower_ms FROM duration_buckets WHERE lower_ms <= MAX(0, ms) ORDER BY lower_ms DESC LIMIT 1)
        AS bucket,
    COUNT(*)
FROM (SELECT CAST(strftime('%s', a.requested_at) AS INTEGER) / 86400 AS day, t.project_id,
        t.team, t.source,
        CAST(ROUND((julianday(a.decided_at) - julianday(a.requested_at)) * 86400000.0) AS INTEGER) AS ms
      FROM approvals a JOIN tasks t ON t.id = a.task_id
      WHERE a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline')
        AND a.decided_at IS NOT NULL) AS waits
GROUP BY day, project_id, team, source, bucket;
