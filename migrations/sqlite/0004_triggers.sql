-- Triggers: inbound webhook deliveries, alert coalescing, and GitHub replies.

-- Every inbound webhook delivery, whatever became of it. A delivery id is accepted once
-- per source; a redelivery is stored again with outcome 'duplicate'.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,                     -- github | alertmanager | grafana | generic:<name>
    delivery_id  TEXT    NOT NULL,                     -- X-GitHub-Delivery, or generated for alerts
    event        TEXT    NOT NULL,                     -- X-GitHub-Event, or 'alert'
    action       TEXT,
    repository   TEXT,                                 -- owner/repo for GitHub
    received_at  TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,                     -- task_created | coalesced | duplicate | ignored | pong | resolved
    reason       TEXT,                                 -- why it was ignored, for people
    task_id      INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    payload      TEXT    NOT NULL                      -- the JSON body, kept for replay
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (source, delivery_id) WHERE outcome <> 'duplicate';
CREATE INDEX deliveries_received ON deliveries (id);

-- Alert occurrences coalesced onto the task their fingerprint opened.
CREATE TABLE alert_groups (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    task_id      INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    occurrences  INTEGER NOT NULL,
    first_seen   TEXT    NOT NULL,
    last_seen    TEXT    NOT NULL,
    resolved_at  TEXT,
    UNIQUE (source, fingerprint, task_id)
);
CREATE INDEX alert_groups_fingerprint ON alert_groups (source, fingerprint);

-- The one comment aiops keeps up to date on a GitHub issue for a task.
CREATE TABLE github_replies (
    task_id          INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    repo             TEXT    NOT NULL,                 -- owner/repo
    issue_number     INTEGER NOT NULL,
    comment_id       INTEGER,                          -- NULL until created
    installation_id  INTEGER,                          -- GitHub App installation that sent the event
    reported_status  TEXT,                             -- the task status the comment shows
    updated_at       TEXT    NOT NULL
);
