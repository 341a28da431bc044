-- Triggers: inbound webhook deliveries, alert coalescing, and GitHub replies.

-- Every inbound webhook delivery, whatever became of it. A delivery id is accepted once
-- per source; a redelivery is stored again with outcome 'duplicate'.
CREATE TABLE deliveries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT    NOT NULL,                     -- github | alertmanager | grafana | generic:<name>
    delivery_id  TEXT    NOT NULL,                     -- X-GitHub-Delivery, or generated for alerts
    event        TEXT    NOT NULL,                     -- X-GitHub-Event, or 'alert'
    action       TEXT,
    repository   TEXT,                                 -- owner/repo for GitHub
    received_at  TIMESTAMPTZ NOT NULL,
    outcome      TEXT    NOT NULL,                     -- task_created | coalesced | duplicate | ignored | pong | resolved
    reason       TEXT,                                 -- why it was ignored, for people
    task_id      BIGINT REFERENCES tasks (id) ON DELETE SET NULL,
    payload      JSONB   NOT NULL                      -- the JSON body, kept for replay
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (source, delivery_id) WHERE outcome <> 'duplicate';
CREATE INDEX deliveries_received ON deliveries (id);

-- Alert occurrences coalesced onto the task their fingerprint opened.
CREATE TABLE alert_groups (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    task_id      BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    occurrences  BIGINT NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ,
    UNIQUE (source, fingerprint, task_id)
);
CREATE INDEX alert_groups_fingerprint ON alert_groups (source, fingerprint);

-- The one comment aiops keeps up to date on a GitHub issue for a task.
CREATE TABLE github_replies (
    task_id          BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    repo             TEXT    NOT NULL,                 -- owner/repo
    issue_number     BIGINT NOT NULL,
    comment_id       BIGINT,                          -- NULL until created
    installation_id  BIGINT,                          -- GitHub App installation that sent the event
    reported_status  TEXT,                             -- the task status the comment shows
    updated_at       TIMESTAMPTZ NOT NULL
);
