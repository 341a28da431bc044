-- Agent rollups (issue 14): the per-agent figures of the agents' tickets summed per UTC day
-- (of opening), project (of the ticket's task) and agent, with a histogram of the opened to
-- done times, so the agents' answer adds up rollup rows instead of every ticket in its range
-- (as migration 0022 does for tasks, with the same `duration_buckets`).
--
-- What a ticket counts as is written once, in the view `agent_ticket_figures`. Triggers keep
-- the rollups: before a change that can alter a ticket's figures (the ticket itself, its
-- task's status, its reopen count) the ticket's figures as the view reads them are taken out,
-- after it they are added again as the view then reads them (PostgreSQL runs row triggers
-- AFTER a statement's rows are all written; a ticket's figures depend on its own row, its
-- task and its reopens only, so each is read right). Both go through `agent_rollup_add`, the
-- one place that writes the rollups. This migration fills them from the tickets already there
-- (after creating the triggers, whose locks keep writers out until it commits).

-- A day is a number: days since 1970-01-01 in UTC (`analytics_day`, migration 0022). Counts
-- are INTEGER, as in 0022, so their sums are BIGINT.
CREATE TABLE agent_rollups (
    day                 BIGINT  NOT NULL,           -- tickets.opened_at, in days since 1970-01-01 UTC
    project_id          BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE, -- the ticket's task's
    agent               TEXT    NOT NULL,           -- tickets.assignee
    tickets             INTEGER NOT NULL DEFAULT 0, -- opened that day
    done                INTEGER NOT NULL DEFAULT 0, -- of those, by status now: DONE
    blocked             INTEGER NOT NULL DEFAULT 0, -- BLOCKED
    failed              INTEGER NOT NULL DEFAULT 0, -- not DONE, and the task ended failed, rolled back or over budget
    reopened            INTEGER NOT NULL DEFAULT 0, -- went from DONE back to another status at least once
    failed_or_reopened  INTEGER NOT NULL DEFAULT 0, -- either (counted once)
    PRIMARY KEY (day, project_id, agent)
);

-- The done tickets of an agent_rollups row by time (opened_at to done_at) bucket.
CREATE TABLE agent_time_counts (
    day         BIGINT  NOT NULL,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    agent       TEXT    NOT NULL,
    lower_ms    BIGINT  NOT NULL,                   -- duration_buckets.lower_ms
    tickets     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, agent, lower_ms)
);

-- Each agent's ticket (one with an assignee and an opening time) and what it counts as now.
CREATE VIEW agent_ticket_figures AS
SELECT task_id, ticket_id, day, project_id, agent, done, blocked, failed, reopened,
    GREATEST(failed, reopened) AS failed_or_reopened,
    CASE WHEN done = 1 AND done_at IS NOT NULL THEN duration_bucket(opened_at, done_at) END
        AS lower_ms
FROM (
    SELECT k.task_id, k.ticket_id, analytics_day(k.opened_at) AS day, t.project_id,
        k.assignee AS agent, k.opened_at, k.done_at,
        CASE WHEN k.status = 'DONE' THEN 1 ELSE 0 END AS done,
        CASE WHEN k.status = 'BLOCKED' THEN 1 ELSE 0 END AS blocked,
        CASE WHEN COALESCE(k.status, '') <> 'DONE'
            AND t.status IN ('failed', 'rolled_back', 'budget_exceeded') THEN 1 ELSE 0 END AS failed,
        CASE WHEN COALESCE(r.reopened, 0) > 0 THEN 1 ELSE 0 END AS reopened
    FROM tickets k
    JOIN tasks t ON t.id = k.task_id
    LEFT JOIN ticket_reopens r ON r.task_id = k.task_id AND r.ticket_id = k.ticket_id
    WHERE k.assignee IS NOT NULL AND k.opened_at IS NOT NULL
) AS k;

-- Adds `weight` times (1: counted, -1: taken out) the figures of task `of_task`'s ticket
-- `of_ticket` (none when it is no agent's ticket). PL/pgSQL keeps the two statements' plans
-- for the session (an SQL function would plan them again on every call).
CREATE FUNCTION agent_rollup_add(weight INTEGER, of_task BIGINT, of_ticket TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_rollups AS r (day, project_id, agent, tickets, done, blocked, failed,
        reopened, failed_or_reopened)
    SELECT f.day, f.project_id, f.agent, weight, weight * f.done, weight * f.blocked,
        weight * f.failed, weight * f.reopened, weight * f.failed_or_reopened
    FROM agent_ticket_figures f
    WHERE f.task_id = of_task AND f.ticket_id = of_ticket
    ON CONFLICT (day, project_id, agent) DO UPDATE SET
        tickets = r.tickets + excluded.tickets, done = r.done + excluded.done,
        blocked = r.blocked + excluded.blocked, failed = r.failed + excluded.failed,
        reopened = r.reopened + excluded.reopened,
        failed_or_reopened = r.failed_or_reopened + excluded.failed_or_reopened;
    INSERT INTO agent_time_counts AS h (day, project_id, agent, lower_ms, tickets)
    SELECT f.day, f.project_id, f.agent, f.lower_ms, weight
    FROM agent_ticket_figures f
    WHERE f.task_id = of_task AND f.ticket_id = of_ticket AND f.lower_ms IS NOT NULL
    ON CONFLICT (day, project_id, agent, lower_ms) DO UPDATE SET
        tickets = h.tickets + excluded.tickets;
END
$$;

-- A ticket: counted when stored; taken out before a change of what it counts as (or its
-- deletion) and counted again after.
CREATE FUNCTION tickets_agent_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_WHEN = 'AFTER' THEN
        PERFORM agent_rollup_add(1, NEW.task_id, NEW.ticket_id);
        RETURN NULL;
    END IF;
    PERFORM agent_rollup_add(-1, OLD.task_id, OLD.ticket_id);
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tickets_agent_rollup_insert AFTER INSERT ON tickets
    FOR EACH ROW WHEN (NEW.assignee IS NOT NULL AND NEW.opened_at IS NOT NULL)
    EXECUTE FUNCTION tickets_agent_rollup();
CREATE TRIGGER tickets_agent_rollup_before_update
    BEFORE UPDATE OF task_id, ticket_id, status, assignee, opened_at, done_at ON tickets
    FOR EACH ROW
    WHEN ((OLD.task_id, OLD.ticket_id, OLD.status, OLD.assignee, OLD.opened_at, OLD.done_at)
        IS DISTINCT FROM (NEW.task_id, NEW.ticket_id, NEW.status, NEW.assignee, NEW.opened_at,
            NEW.done_at))
    EXECUTE FUNCTION tickets_agent_rollup();
CREATE TRIGGER tickets_agent_rollup_after_update
    AFTER UPDATE OF task_id, ticket_id, status, assignee, opened_at, done_at ON tickets
    FOR EACH ROW
    WHEN ((OLD.task_id, OLD.ticket_id, OLD.status, OLD.assignee, OLD.opened_at, OLD.done_at)
        IS DISTINCT FROM (NEW.task_id, NEW.ticket_id, NEW.status, NEW.assignee, NEW.opened_at,
            NEW.done_at))
    EXECUTE FUNCTION tickets_agent_rollup();
CREATE TRIGGER tickets_agent_rollup_delete BEFORE DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_agent_rollup();

-- A task that ends failed (or stops being so): its tickets not DONE change their `failed`.
CREATE FUNCTION tasks_agent_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_WHEN = 'AFTER' THEN
        PERFORM agent_rollup_add(1, k.task_id, k.ticket_id) FROM tickets k WHERE k.task_id = NEW.id;
        RETURN NULL;
    END IF;
    PERFORM agent_rollup_add(-1, k.task_id, k.ticket_id) FROM tickets k WHERE k.task_id = OLD.id;
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_agent_rollup_before_update BEFORE UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN ((OLD.status IN ('failed', 'rolled_back', 'budget_exceeded'))
        IS DISTINCT FROM (NEW.status IN ('failed', 'rolled_back', 'budget_exceeded')))
    EXECUTE FUNCTION tasks_agent_rollup();
CREATE TRIGGER tasks_agent_rollup_after_update AFTER UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN ((OLD.status IN ('failed', 'rolled_back', 'budget_exceeded'))
        IS DISTINCT FROM (NEW.status IN ('failed', 'rolled_back', 'budget_exceeded')))
    EXECUTE FUNCTION tasks_agent_rollup();

-- A ticket's first reopen (an upsert that finds its row only counts up: skipped), a changed
-- count that crosses zero, and a deleted count change its `reopened`.
CREATE FUNCTION ticket_reopens_agent_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    weight INTEGER := CASE WHEN TG_WHEN = 'BEFORE' THEN -1 ELSE 1 END;
BEGIN
    IF TG_OP = 'INSERT' AND TG_WHEN = 'BEFORE' AND EXISTS (SELECT 1 FROM ticket_reopens
        WHERE task_id = NEW.task_id AND ticket_id = NEW.ticket_id) THEN
        RETURN NEW;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM agent_rollup_add(weight, OLD.task_id, OLD.ticket_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE'
        AND (OLD.task_id, OLD.ticket_id) IS DISTINCT FROM (NEW.task_id, NEW.ticket_id)) THEN
        PERFORM agent_rollup_add(weight, NEW.task_id, NEW.ticket_id);
    END IF;
    IF TG_WHEN = 'AFTER' THEN
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_reopens_agent_rollup_before BEFORE INSERT OR DELETE ON ticket_reopens
    FOR EACH ROW EXECUTE FUNCTION ticket_reopens_agent_rollup();
CREATE TRIGGER ticket_reopens_agent_rollup_after AFTER INSERT OR DELETE ON ticket_reopens
    FOR EACH ROW EXECUTE FUNCTION ticket_reopens_agent_rollup();
CREATE TRIGGER ticket_reopens_agent_rollup_before_update BEFORE UPDATE ON ticket_reopens
    FOR EACH ROW
    WHEN ((OLD.task_id, OLD.ticket_id) IS DISTINCT FROM (NEW.task_id, NEW.ticket_id)
        OR (OLD.reopened > 0) IS DISTINCT FROM (NEW.reopened > 0))
    EXECUTE FUNCTION ticket_reopens_agent_rollup();
CREATE TRIGGER ticket_reopens_agent_rollup_after_update AFTER UPDATE ON ticket_reopens
    FOR EACH ROW
    WHEN ((OLD.task_id, OLD.ticket_id) IS DISTINCT FROM (NEW.task_id, NEW.ticket_id)
        OR (OLD.reopened > 0) IS DISTINCT FROM (NEW.reopened > 0))
    EXECUTE FUNCTION ticket_reopens_agent_rollup();

-- The tickets already there, counted once by the same rules.
INSERT INTO agent_rollups (day, project_id, agent, tickets, done, blocked, failed, reopened,
    failed_or_reopened)
SELECT day, project_id, agent, COUNT(*), SUM(done), SUM(blocked), SUM(failed), SUM(reopened),
    SUM(failed_or_reopened)
FROM agent_ticket_figures
GROUP BY day, project_id, agent;

INSERT INTO agent_time_counts (day, project_id, agent, lower_ms, tickets)
SELECT day, project_id, agent, lower_ms, COUNT(*)
FROM agent_ticket_figures
WHERE lower_ms IS NOT NULL
GROUP BY day, project_id, agent, lower_ms;
