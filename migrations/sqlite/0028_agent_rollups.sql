-- Agent rollups (issue 14): the per-agent figures of the agents' tickets summed per UTC day
-- (of opening), project (of the ticket's task) and agent, with a histogram of the opened to
-- done times, so the agents' answer adds up rollup rows instead of every ticket in its range
-- (as migration 0022 does for tasks, with the same `duration_buckets`).
--
-- What a ticket counts as is written once, in the view `agent_ticket_figures`. Triggers keep
-- the rollups: before a change that can alter a ticket's figures (the ticket itself, its
-- task's status, its reopen count) the ticket's figures as the view reads them are taken out,
-- after it they are added again as the view then reads them. Both go through
-- `agent_rollup_changes`, a view with nothing in it whose INSTEAD OF trigger is the one place
-- that writes the rollups. This migration fills them from the tickets already there.
-- A later migration that rebuilds `tickets`, `tasks` or `ticket_reopens` must create these
-- triggers again.

-- A day is a number: days since 1970-01-01 in UTC, as in migration 0022.
CREATE TABLE agent_rollups (
    day                 INTEGER NOT NULL,           -- tickets.opened_at, in days since 1970-01-01 UTC
    project_id          INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE, -- the ticket's task's
    agent               TEXT    NOT NULL,           -- tickets.assignee
    tickets             INTEGER NOT NULL DEFAULT 0, -- opened that day
    done                INTEGER NOT NULL DEFAULT 0, -- of those, by status now: DONE
    blocked             INTEGER NOT NULL DEFAULT 0, -- BLOCKED
    failed              INTEGER NOT NULL DEFAULT 0, -- not DONE, and the task ended failed, rolled back or over budget
    reopened            INTEGER NOT NULL DEFAULT 0, -- went from DONE back to another status at least once
    failed_or_reopened  INTEGER NOT NULL DEFAULT 0, -- either (counted once)
    PRIMARY KEY (day, project_id, agent)
) WITHOUT ROWID;

-- The done tickets of an agent_rollups row by time (opened_at to done_at) bucket.
CREATE TABLE agent_time_counts (
    day         INTEGER NOT NULL,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    agent       TEXT    NOT NULL,
    lower_ms    INTEGER NOT NULL,                   -- duration_buckets.lower_ms
    tickets     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, project_id, agent, lower_ms)
) WITHOUT ROWID;

-- Each agent's ticket (one with an assignee and an opening time) and what it counts as now.
CREATE VIEW agent_ticket_figures AS
SELECT task_id, ticket_id, day, project_id, agent, done, blocked, failed, reopened,
    MAX(failed, reopened) AS failed_or_reopened,
    CASE WHEN took_ms IS NOT NULL THEN (SELECT lower_ms FROM duration_buckets
        WHERE lower_ms <= MAX(0, took_ms) ORDER BY lower_ms DESC LIMIT 1) END AS lower_ms
FROM (
    SELECT k.task_id, k.ticket_id, CAST(strftime('%s', k.opened_at) AS INTEGER) / 86400 AS day,
        t.project_id, k.assignee AS agent,
        CASE WHEN k.status = 'DONE' THEN 1 ELSE 0 END AS done,
        CASE WHEN k.status = 'BLOCKED' THEN 1 ELSE 0 END AS blocked,
        CASE WHEN COALESCE(k.status, '') <> 'DONE'
            AND t.status IN ('failed', 'rolled_back', 'budget_exceeded') THEN 1 ELSE 0 END AS failed,
        CASE WHEN COALESCE(r.reopened, 0) > 0 THEN 1 ELSE 0 END AS reopened,
        CASE WHEN k.status = 'DONE' AND k.done_at IS NOT NULL THEN
            CAST(ROUND((julianday(k.done_at) - julianday(k.opened_at)) * 86400000.0) AS INTEGER)
        END AS took_ms
    FROM tickets k
    JOIN tasks t ON t.id = k.task_id
    LEFT JOIN ticket_reopens r ON r.task_id = k.task_id AND r.ticket_id = k.ticket_id
    WHERE k.assignee IS NOT NULL AND k.opened_at IS NOT NULL
);

-- Writing a row here adds `weight` times (1: counted, -1: taken out) the figures of task
-- `task_id`'s ticket `ticket_id` (none when it is no agent's ticket).
CREATE VIEW agent_rollup_changes AS
SELECT 0 AS weight, task_id, ticket_id FROM tickets WHERE 0;

CREATE TRIGGER agent_rollup_changes_apply INSTEAD OF INSERT ON agent_rollup_changes
BEGIN
    INSERT INTO agent_rollups (day, project_id, agent, tickets, done, blocked, failed, reopened,
        failed_or_reopened)
    SELECT day, project_id, agent, NEW.weight, NEW.weight * done, NEW.weight * blocked,
        NEW.weight * failed, NEW.weight * reopened, NEW.weight * failed_or_reopened
    FROM agent_ticket_figures
    WHERE task_id = NEW.task_id AND ticket_id = NEW.ticket_id
    ON CONFLICT (day, project_id, agent) DO UPDATE SET
        tickets = tickets + excluded.tickets, done = done + excluded.done,
        blocked = blocked + excluded.blocked, failed = failed + excluded.failed,
        reopened = reopened + excluded.reopened,
        failed_or_reopened = failed_or_reopened + excluded.failed_or_reopened;
    INSERT INTO agent_time_counts (day, project_id, agent, lower_ms, tickets)
    SELECT day, project_id, agent, lower_ms, NEW.weight
    FROM agent_ticket_figures
    WHERE task_id = NEW.task_id AND ticket_id = NEW.ticket_id AND lower_ms IS NOT NULL
    ON CONFLICT (day, project_id, agent, lower_ms) DO UPDATE SET tickets = tickets + excluded.tickets;
END;

-- A ticket: counted when stored; taken out before a change of what it counts as (or its
-- deletion) and counted again after.
CREATE TRIGGER tickets_agent_rollup_insert AFTER INSERT ON tickets
WHEN NEW.assignee IS NOT NULL AND NEW.opened_at IS NOT NULL
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (1, NEW.task_id, NEW.ticket_id);
END;
CREATE TRIGGER tickets_agent_rollup_before_update
    BEFORE UPDATE OF task_id, ticket_id, status, assignee, opened_at, done_at ON tickets
WHEN OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id
    OR OLD.status IS NOT NEW.status OR OLD.assignee IS NOT NEW.assignee
    OR OLD.opened_at IS NOT NEW.opened_at OR OLD.done_at IS NOT NEW.done_at
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (-1, OLD.task_id, OLD.ticket_id);
END;
CREATE TRIGGER tickets_agent_rollup_after_update
    AFTER UPDATE OF task_id, ticket_id, status, assignee, opened_at, done_at ON tickets
WHEN OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id
    OR OLD.status IS NOT NEW.status OR OLD.assignee IS NOT NEW.assignee
    OR OLD.opened_at IS NOT NEW.opened_at OR OLD.done_at IS NOT NEW.done_at
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (1, NEW.task_id, NEW.ticket_id);
END;
CREATE TRIGGER tickets_agent_rollup_delete BEFORE DELETE ON tickets
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (-1, OLD.task_id, OLD.ticket_id);
END;

-- A task that ends failed (or stops being so): its tickets not DONE change their `failed`.
CREATE TRIGGER tasks_agent_rollup_before_update BEFORE UPDATE OF status ON tasks
WHEN (OLD.status IN ('failed', 'rolled_back', 'budget_exceeded'))
    IS NOT (NEW.status IN ('failed', 'rolled_back', 'budget_exceeded'))
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    SELECT -1, task_id, ticket_id FROM tickets WHERE task_id = OLD.id;
END;
CREATE TRIGGER tasks_agent_rollup_after_update AFTER UPDATE OF status ON tasks
WHEN (OLD.status IN ('failed', 'rolled_back', 'budget_exceeded'))
    IS NOT (NEW.status IN ('failed', 'rolled_back', 'budget_exceeded'))
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    SELECT 1, task_id, ticket_id FROM tickets WHERE task_id = NEW.id;
END;

-- A ticket's first reopen (an upsert that finds its row only counts up: skipped), a changed
-- count that crosses zero, and a deleted count change its `reopened`.
CREATE TRIGGER ticket_reopens_agent_rollup_before_insert BEFORE INSERT ON ticket_reopens
WHEN NOT EXISTS (SELECT 1 FROM ticket_reopens
    WHERE task_id = NEW.task_id AND ticket_id = NEW.ticket_id)
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (-1, NEW.task_id, NEW.ticket_id);
END;
CREATE TRIGGER ticket_reopens_agent_rollup_after_insert AFTER INSERT ON ticket_reopens
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (1, NEW.task_id, NEW.ticket_id);
END;
CREATE TRIGGER ticket_reopens_agent_rollup_before_update BEFORE UPDATE ON ticket_reopens
WHEN OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id
    OR (OLD.reopened > 0) IS NOT (NEW.reopened > 0)
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (-1, OLD.task_id, OLD.ticket_id);
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    SELECT -1, NEW.task_id, NEW.ticket_id
    WHERE OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id;
END;
CREATE TRIGGER ticket_reopens_agent_rollup_after_update AFTER UPDATE ON ticket_reopens
WHEN OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id
    OR (OLD.reopened > 0) IS NOT (NEW.reopened > 0)
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (1, OLD.task_id, OLD.ticket_id);
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    SELECT 1, NEW.task_id, NEW.ticket_id
    WHERE OLD.task_id IS NOT NEW.task_id OR OLD.ticket_id IS NOT NEW.ticket_id;
END;
CREATE TRIGGER ticket_reopens_agent_rollup_before_delete BEFORE DELETE ON ticket_reopens
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (-1, OLD.task_id, OLD.ticket_id);
END;
CREATE TRIGGER ticket_reopens_agent_rollup_after_delete AFTER DELETE ON ticket_reopens
BEGIN
    INSERT INTO agent_rollup_changes (weight, task_id, ticket_id)
    VALUES (1, OLD.task_id, OLD.ticket_id);
END;

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
