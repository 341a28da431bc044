-- Monthly budgets: a project's own budget, the tasks waiting for money, and the budget
-- notices already sent.

-- A project's monthly budget in dollars, set by a maintainer; without a row the project has
-- costs.project_monthly_usd.
CREATE TABLE project_budgets (
    project_id   INTEGER PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    monthly_usd  REAL NOT NULL CHECK (monthly_usd >= 0),
    updated_by   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- New tasks of a project whose monthly budget (or the global one) is spent. They have no
-- queued job: raising the budget, or the sweep (the month turned, costs.* changed), pushes
-- the run jobs of the waiters whose budget now has room.
CREATE TABLE budget_waiters (
    task_id     INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    project_id  INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job         TEXT NOT NULL,                      -- the run job to push again (JSON)
    since       TEXT NOT NULL
);

-- Budget notices sent: one per scope ('global' or a project id), month, level ('warning'
-- or 'spent') and budget, so each is sent once, and again only after the budget changed.
CREATE TABLE budget_notices (
    scope       TEXT NOT NULL,
    month       TEXT NOT NULL,                      -- YYYY-MM, UTC
    level       TEXT NOT NULL,
    limit_usd   REAL NOT NULL,
    sent_at     TEXT NOT NULL,
    PRIMARY KEY (scope, month, level, limit_usd)
);

-- Money spent in a month: the runs started since its first instant.
CREATE INDEX runs_started ON runs (started_at);

-- Budget notices are notifications too: the event check gains their two kinds (SQLite
-- changes a CHECK by rebuilding the table; nothing refers to notifications).
CREATE TABLE notifications_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id       INTEGER NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event            TEXT   NOT NULL CHECK (event IN ('approval_requested', 'task_failed', 'task_done',
                                                      'budget_warning', 'budget_spent')),
    task_id          INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    approval_id      INTEGER REFERENCES approvals (id) ON DELETE CASCADE,
    status           TEXT   NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    last_attempt_at  TEXT,
    next_attempt_at  TEXT,
    sent_at          TEXT,
    sending_since    TEXT
);
INSERT INTO notifications_new (id, channel_id, event, task_id, approval_id, status, attempts,
    last_error, created_at, last_attempt_at, next_attempt_at, sent_at, sending_since)
SELECT id, channel_id, event, task_id, approval_id, status, attempts, last_error, created_at,
    last_attempt_at, next_attempt_at, sent_at, sending_since FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_status ON notifications (status, id);
