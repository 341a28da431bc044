-- Notifications: where each project hears about approval requests and ended tasks, and
-- every delivery to those places. A delivery row and its queue job are written in one
-- transaction; the row says how the delivery went and, once its attempts are used up, is
-- the dead-letter record.

-- A place a project's notifications go.
CREATE TABLE notification_channels (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('slack', 'kakaowork', 'webhook')),
    -- slack: the channel id chat.postMessage posts to, NULL for an incoming webhook;
    -- kakaowork: the conversation id; webhook: the URL posted to.
    target      TEXT,
    -- Name of the credential (the project's, else the global one) holding the secret: the
    -- Slack incoming-webhook URL or bot token, the KakaoWork bot app key, the webhook's HMAC key.
    credential  TEXT    NOT NULL,
    -- The events it wants: JSON array of approval_requested | task_failed | task_done.
    events      JSONB   NOT NULL,
    -- A disabled channel gets no new notifications; queued ones are still sent.
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_channels_project ON notification_channels (project_id);

-- One notification to one channel, from queued to sent or dead. Removing a channel removes
-- its notifications; a job whose row is gone does nothing.
CREATE TABLE notifications (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id       BIGINT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event            TEXT   NOT NULL CHECK (event IN ('approval_requested', 'task_failed', 'task_done')),
    task_id          BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    approval_id      BIGINT REFERENCES approvals (id) ON DELETE CASCADE,  -- set for approval_requested
    -- queued: a job will (re)try it; sent: the channel accepted it; dead: given up, see last_error.
    status           TEXT   NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,      -- sends tried so far
    last_error       TEXT,                           -- why the last try failed; never a secret or a URL
    created_at       TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ,
    next_attempt_at  TIMESTAMPTZ,                    -- when the queued retry is due
    sent_at          TIMESTAMPTZ                     -- when the channel accepted it
);
CREATE INDEX notifications_status ON notifications (status, id);
