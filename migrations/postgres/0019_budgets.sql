-- Monthly budgets: a project's own budget, the tasks waiting for money, and the budget
-- notices already sent.

-- A project's monthly budget in dollars, set by a maintainer; without a row the project has
-- costs.project_monthly_usd.
CREATE TABLE project_budgets (
    project_id   BIGINT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    monthly_usd  DOUBLE PRECISION NOT NULL CHECK (monthly_usd >= 0),
    updated_by   TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- New tasks of a project whose monthly budget (or the global one) is spent. They have no
-- queued job: raising the budget, or the sweep (the month turned, costs.* changed), pushes
-- the run jobs of the waiters whose budget now has room.
CREATE TABLE budget_waiters (
    task_id     BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job         TEXT NOT NULL,                      -- the run job to push again (JSON)
    since       TIMESTAMPTZ NOT NULL
);

-- Budget notices sent: one per scope ('global' or a project id), month, level ('warning'
-- or 'spent') and budget, so each is sent once, and again only after the budget changed.
CREATE TABLE budget_notices (
    scope       TEXT NOT NULL,
    month       TEXT NOT NULL,                      -- YYYY-MM, UTC
    level       TEXT NOT NULL,
    limit_usd   DOUBLE PRECISION NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, month, level, limit_usd)
);

-- Money spent in a month: the runs started since its first instant.
CREATE INDEX runs_started ON runs (started_at);

-- Budget notices are notifications too: the event check gains their two kinds.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check
    CHECK (event IN ('approval_requested', 'task_failed', 'task_done', 'budget_warning', 'budget_spent'));
