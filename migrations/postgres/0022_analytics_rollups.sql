-- Analytics rollups: the figures of tasks, runs and approvals summed per UTC day and group
-- (project, team, source) as the rows are written, so an analytics answer adds up a few
-- hundred rollup rows instead of every task, run and approval in its range.
--
-- Triggers keep them, so every writer (engine, API, CLI, another node, a hand-written
-- statement) keeps them right without code of its own; this migration fills them from the
-- rows already there (after creating the triggers, whose locks keep writers out until it
-- commits). A change the triggers could not keep right is refused: tasks, runs and approvals
-- are never deleted (retention keeps them; a project with tasks cannot be deleted), and a task
-- never moves to another day or group.
--
-- A day is a number: days since 1970-01-01 in UTC (`analytics_day`). Weeks and months (UTC,
-- whole days) are sums of days. Counts are INTEGER, whose sums PostgreSQL adds as BIGINT
-- (a BIGINT column's sums are NUMERIC, several times slower to add up).

-- The histogram buckets of durations, by lower bound in milliseconds: every millisecond below
-- 10 ms, then 35 round bounds per decade (10, 11, …, 20, 21, 22, 24, …, 45, 48, 50, 55, …, 95
-- times a power of ten) up to 9.5e9 ms, and one open bucket from 1e10 ms (115 days). Two
-- neighbouring bounds are at most 10 % apart, so a percentile read as the lower bound of the
-- bucket holding it is never above the true value and less than 9.1 % below it (exact below
-- 10 ms and for a value that is itself a bound: 30 s, 45 s, 1, 1.5, 2, 3, 5, 10 or 40 min, …).
CREATE TABLE duration_buckets (
    lower_ms  BIGINT PRIMARY KEY
);
WITH RECURSIVE
    small(ms) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT ms + 1 FROM small WHERE ms < 9),
    decades(scale) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT scale * 10 FROM decades WHERE scale < 100000000),
    mantissas(m) AS (VALUES (10), (11), (12), (13), (14), (15), (16), (17), (18), (19), (20),
        (21), (22), (24), (26), (28), (30), (32), (34), (36), (38), (40), (42), (45), (48), (50),
        (55), (60), (65), (70), (75), (80), (85), (90), (95))
INSERT INTO duration_buckets (lower_ms)
SELECT ms FROM small
UNION ALL SELECT m * scale FROM mantissas, decades
UNION ALL SELECT 10000000000;

-- Tasks by creation day and group: what they became, and what all their runs used.
CREATE TABLE task_rollups (
    day                 BIGINT  NOT NULL,           -- the tasks' created_at, in days since 1970-01-01 UTC
    project_id          BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team                TEXT    NOT NULL,
    source              TEXT    NOT NULL,
    tasks               INTEGER NOT NULL DEFAULT 0, -- created
    started             INTEGER NOT NULL DEFAULT 0, -- of those, picked up by a worker (started_at set)
    done                INTEGER NOT NULL DEFAULT 0, -- of those, by status now
    failed              INTEGER NOT NULL DEFAULT 0,
    cancelled           INTEGER NOT NULL DEFAULT 0,
    rolled_back         INTEGER NOT NULL DEFAULT 0,
    input_tokens        BIGINT  NOT NULL DEFAULT 0, -- summed over every run of those tasks
    output_tokens       BIGINT  NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT  NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT  NOT NULL DEFAULT 0, -- runs.cache_creation_tokens
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source)
);

-- The done tasks of a task_rollups row by duration (created_at to completed_at) bucket.
CREATE TABLE task_duration_counts (
    day         BIGINT  NOT NULL,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    lower_ms    BIGINT  NOT NULL,                   -- duration_buckets.lower_ms
    tasks       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source, lower_ms)
);

-- Approval requests by the day they were filed and their task's group.
CREATE TABLE approval_rollups (
    day         BIGINT  NOT NULL,                   -- requested_at, in days since 1970-01-01 UTC
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
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
);

-- A person's decisions of an approval_rollups row by wait (requested_at to decided_at) bucket.
CREATE TABLE approval_wait_counts (
    day         BIGINT  NOT NULL,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    lower_ms    BIGINT  NOT NULL,
    approvals   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, team, source, lower_ms)
);

-- What each task's runs used, for the dearest tasks of a range: one row per task with runs,
-- the task's project and creation time copied so the index below answers alone.
CREATE TABLE task_costs (
    task_id             BIGINT  PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id          BIGINT  NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    runs                BIGINT  NOT NULL DEFAULT 0,
    input_tokens        BIGINT  NOT NULL DEFAULT 0,
    output_tokens       BIGINT  NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT  NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT  NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0
);
-- Dearest first, read backwards until the range has given enough tasks.
CREATE INDEX task_costs_dearest ON task_costs (cost_usd, task_id, created_at, project_id);

-- The day a moment falls on: days since 1970-01-01 in UTC.
CREATE FUNCTION analytics_day(at TIMESTAMPTZ) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CAST((at AT TIME ZONE 'UTC')::date - DATE '1970-01-01' AS BIGINT)
$$;

-- The duration bucket (its lower bound) of the time from `from_at` to `to_at`.
CREATE FUNCTION duration_bucket(from_at TIMESTAMPTZ, to_at TIMESTAMPTZ) RETURNS BIGINT
LANGUAGE sql STABLE AS $$
    SELECT lower_ms FROM duration_buckets
    WHERE lower_ms <= GREATEST(0, CAST(ROUND(EXTRACT(EPOCH FROM (to_at - from_at)) * 1000) AS BIGINT))
    ORDER BY lower_ms DESC LIMIT 1
$$;

-- Adds task `t`'s own figures, `weight` times (1: counted, -1: taken out).
CREATE FUNCTION task_rollup_add(t tasks, weight BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO task_rollups AS r (day, project_id, team, source, tasks, started, done, failed,
        cancelled, rolled_back)
    VALUES (analytics_day(t.created_at), t.project_id, t.team, t.source, weight,
        weight * CASE WHEN t.started_at IS NOT NULL THEN 1 ELSE 0 END,
        weight * CASE WHEN t.status = 'done' THEN 1 ELSE 0 END,
        weight * CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END,
        weight * CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END,
        weight * CASE WHEN t.status = 'rolled_back' THEN 1 ELSE 0 END)
    ON CONFLICT (day, project_id, team, source) DO UPDATE SET
        tasks = r.tasks + excluded.tasks, started = r.started + excluded.started,
        done = r.done + excluded.done, failed = r.failed + excluded.failed,
        cancelled = r.cancelled + excluded.cancelled,
        rolled_back = r.rolled_back + excluded.rolled_back;
    INSERT INTO task_duration_counts AS h (day, project_id, team, source, lower_ms, tasks)
    SELECT analytics_day(t.created_at), t.project_id, t.team, t.source,
        duration_bucket(t.created_at, t.completed_at), weight
    WHERE t.status = 'done' AND t.completed_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET tasks = h.tasks + excluded.tasks;
$$;

-- Keeps task_rollups and task_duration_counts: a new task counts in its day and group; a
-- changed one has its old figures taken out and its new ones added.
CREATE FUNCTION tasks_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'tasks are kept for analytics and never deleted';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.project_id, OLD.team, OLD.source, OLD.created_at)
            IS DISTINCT FROM (NEW.project_id, NEW.team, NEW.source, NEW.created_at) THEN
            RAISE EXCEPTION 'a task keeps its project, team, source and creation time (analytics count it there)';
        END IF;
        PERFORM task_rollup_add(OLD, -1);
    END IF;
    PERFORM task_rollup_add(NEW, 1);
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_rollup AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_rollup();
CREATE TRIGGER tasks_rollup_update
    AFTER UPDATE OF status, started_at, completed_at, project_id, team, source, created_at ON tasks
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.started_at IS DISTINCT FROM NEW.started_at
        OR OLD.completed_at IS DISTINCT FROM NEW.completed_at
        OR OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.team IS DISTINCT FROM NEW.team
        OR OLD.source IS DISTINCT FROM NEW.source OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION tasks_rollup();

-- Keeps the runs' part of task_rollups and task_costs: a new run adds its figures (often
-- zeros: a run is opened before it spends), a changed one the difference.
CREATE FUNCTION runs_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t tasks;
    new_run BIGINT := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE 0 END;
    d_input BIGINT;
    d_output BIGINT;
    d_cache_read BIGINT;
    d_cache_write BIGINT;
    d_cost DOUBLE PRECISION;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'runs are kept for analytics and never deleted';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.task_id IS DISTINCT FROM NEW.task_id THEN
        RAISE EXCEPTION 'a run keeps its task (analytics count it there)';
    END IF;
    d_input := NEW.input_tokens - COALESCE(OLD.input_tokens, 0);
    d_output := NEW.output_tokens - COALESCE(OLD.output_tokens, 0);
    d_cache_read := NEW.cache_read_tokens - COALESCE(OLD.cache_read_tokens, 0);
    d_cache_write := NEW.cache_creation_tokens - COALESCE(OLD.cache_creation_tokens, 0);
    d_cost := NEW.cost_usd - COALESCE(OLD.cost_usd, 0);
    SELECT * INTO t FROM tasks WHERE id = NEW.task_id;
    UPDATE task_rollups SET
        input_tokens = input_tokens + d_input, output_tokens = output_tokens + d_output,
        cache_read_tokens = cache_read_tokens + d_cache_read,
        cache_write_tokens = cache_write_tokens + d_cache_write, cost_usd = cost_usd + d_cost
    WHERE day = analytics_day(t.created_at) AND project_id = t.project_id AND team = t.team
        AND source = t.source;
    INSERT INTO task_costs AS c (task_id, project_id, created_at, runs, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)
    VALUES (t.id, t.project_id, t.created_at, new_run, d_input, d_output, d_cache_read,
        d_cache_write, d_cost)
    ON CONFLICT (task_id) DO UPDATE SET
        runs = c.runs + excluded.runs, input_tokens = c.input_tokens + excluded.input_tokens,
        output_tokens = c.output_tokens + excluded.output_tokens,
        cache_read_tokens = c.cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = c.cache_write_tokens + excluded.cache_write_tokens,
        cost_usd = c.cost_usd + excluded.cost_usd;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_rollup AFTER INSERT OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_rollup();
CREATE TRIGGER runs_rollup_update
    AFTER UPDATE OF input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
        cost_usd, task_id ON runs
    FOR EACH ROW
    WHEN (OLD.input_tokens IS DISTINCT FROM NEW.input_tokens
        OR OLD.output_tokens IS DISTINCT FROM NEW.output_tokens
        OR OLD.cache_read_tokens IS DISTINCT FROM NEW.cache_read_tokens
        OR OLD.cache_creation_tokens IS DISTINCT FROM NEW.cache_creation_tokens
        OR OLD.cost_usd IS DISTINCT FROM NEW.cost_usd OR OLD.task_id IS DISTINCT FROM NEW.task_id)
    EXECUTE FUNCTION runs_rollup();

-- Adds approval `a`'s figures, `weight` times (1: counted, -1: taken out).
CREATE FUNCTION approval_rollup_add(a approvals, weight BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO approval_rollups AS r (day, project_id, team, source, requested, decided,
        approved, rejected, revised, expired, pending)
    SELECT analytics_day(a.requested_at), t.project_id, t.team, t.source, weight,
        weight * CASE WHEN person AND a.decision IS NOT NULL THEN 1 ELSE 0 END,
        weight * CASE WHEN person AND a.decision = 'approve' THEN 1 ELSE 0 END,
        weight * CASE WHEN person AND a.decision = 'reject' THEN 1 ELSE 0 END,
        weight * CASE WHEN person AND a.decision = 'revise' THEN 1 ELSE 0 END,
        weight * CASE WHEN a.status = 'expired' OR a.channel = 'system' THEN 1 ELSE 0 END,
        weight * CASE WHEN a.status = 'pending' THEN 1 ELSE 0 END
    FROM tasks t,
        LATERAL (SELECT COALESCE(a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline'),
            FALSE) AS person) AS p
    WHERE t.id = a.task_id
    ON CONFLICT (day, project_id, team, source) DO UPDATE SET
        requested = r.requested + excluded.requested, decided = r.decided + excluded.decided,
        approved = r.approved + excluded.approved, rejected = r.rejected + excluded.rejected,
        revised = r.revised + excluded.revised, expired = r.expired + excluded.expired,
        pending = r.pending + excluded.pending;
    INSERT INTO approval_wait_counts AS h (day, project_id, team, source, lower_ms, approvals)
    SELECT analytics_day(a.requested_at), t.project_id, t.team, t.source,
        duration_bucket(a.requested_at, a.decided_at), weight
    FROM tasks t
    WHERE t.id = a.task_id AND a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline')
        AND a.decided_at IS NOT NULL
    ON CONFLICT (day, project_id, team, source, lower_ms) DO UPDATE SET
        approvals = h.approvals + excluded.approvals;
$$;

-- Keeps approval_rollups and approval_wait_counts like tasks_rollup.
CREATE FUNCTION approvals_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'approvals are kept for analytics and never deleted';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.task_id, OLD.requested_at) IS DISTINCT FROM (NEW.task_id, NEW.requested_at) THEN
            RAISE EXCEPTION 'an approval keeps its task and request time (analytics count it there)';
        END IF;
        PERFORM approval_rollup_add(OLD, -1);
    END IF;
    PERFORM approval_rollup_add(NEW, 1);
    RETURN NULL;
END
$$;
CREATE TRIGGER approvals_rollup AFTER INSERT OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION approvals_rollup();
CREATE TRIGGER approvals_rollup_update
    AFTER UPDATE OF status, decision, channel, decided_at, task_id, requested_at ON approvals
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.decision IS DISTINCT FROM NEW.decision
        OR OLD.channel IS DISTINCT FROM NEW.channel
        OR OLD.decided_at IS DISTINCT FROM NEW.decided_at
        OR OLD.task_id IS DISTINCT FROM NEW.task_id
        OR OLD.requested_at IS DISTINCT FROM NEW.requested_at)
    EXECUTE FUNCTION approvals_rollup();

-- The rows already there, counted once by the same rules.
INSERT INTO task_costs (task_id, project_id, created_at, runs, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, cost_usd)
SELECT t.id, t.project_id, t.created_at, COUNT(*), SUM(r.input_tokens), SUM(r.output_tokens),
    SUM(r.cache_read_tokens), SUM(r.cache_creation_tokens), SUM(r.cost_usd)
FROM tasks t JOIN runs r ON r.task_id = t.id
GROUP BY t.id, t.project_id, t.created_at;

INSERT INTO task_rollups (day, project_id, team, source, tasks, started, done, failed, cancelled,
    rolled_back, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)
SELECT analytics_day(t.created_at) AS day, t.project_id, t.team, t.source, COUNT(*),
    SUM(CASE WHEN t.started_at IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END),
    SUM(CASE WHEN t.status = 'rolled_back' THEN 1 ELSE 0 END),
    COALESCE(SUM(c.input_tokens), 0), COALESCE(SUM(c.output_tokens), 0),
    COALESCE(SUM(c.cache_read_tokens), 0), COALESCE(SUM(c.cache_write_tokens), 0),
    COALESCE(SUM(c.cost_usd), 0.0)
FROM tasks t LEFT JOIN task_costs c ON c.task_id = t.id
GROUP BY analytics_day(t.created_at), t.project_id, t.team, t.source;

INSERT INTO task_duration_counts (day, project_id, team, source, lower_ms, tasks)
SELECT analytics_day(created_at), project_id, team, source,
    duration_bucket(created_at, completed_at), COUNT(*)
FROM tasks WHERE status = 'done' AND completed_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO approval_rollups (day, project_id, team, source, requested, decided, approved,
    rejected, revised, expired, pending)
SELECT analytics_day(a.requested_at), t.project_id, t.team, t.source, COUNT(*),
    SUM(CASE WHEN p.person AND a.decision IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN p.person AND a.decision = 'approve' THEN 1 ELSE 0 END),
    SUM(CASE WHEN p.person AND a.decision = 'reject' THEN 1 ELSE 0 END),
    SUM(CASE WHEN p.person AND a.decision = 'revise' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'expired' OR a.channel = 'system' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'pending' THEN 1 ELSE 0 END)
FROM approvals a JOIN tasks t ON t.id = a.task_id,
    LATERAL (SELECT COALESCE(a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline'),
        FALSE) AS person) AS p
GROUP BY 1, 2, 3, 4;

INSERT INTO approval_wait_counts (day, project_id, team, source, lower_ms, approvals)
SELECT analytics_day(a.requested_at), t.project_id, t.team, t.source,
    duration_bucket(a.requested_at, a.decided_at), COUNT(*)
FROM approvals a JOIN tasks t ON t.id = a.task_id
WHERE a.status = 'decided' AND a.channel NOT IN ('system', 'pipeline') AND a.decided_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
