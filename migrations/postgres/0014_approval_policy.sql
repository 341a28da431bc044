-- Approval policy and verified deciders: who may decide a project's approvals, whether the
-- person who asked for a task may approve it, how many distinct approvers some approvals
-- need; who asked for each task; the chat accounts people have linked to their user.

-- The project's approval policy.
ALTER TABLE projects ADD COLUMN decide_role TEXT NOT NULL DEFAULT 'approver'
    CHECK (decide_role IN ('approver', 'maintainer'));       -- the least project role that decides
ALTER TABLE projects ADD COLUMN self_approval BOOLEAN NOT NULL DEFAULT FALSE; -- may the requester approve
ALTER TABLE projects ADD COLUMN required_approvals BIGINT NOT NULL DEFAULT 1
    CHECK (required_approvals BETWEEN 1 AND 10);              -- distinct approvers of HIGH-risk tool requests and results

-- The principal whose request started the task (an API caller, a linked GitHub sender);
-- NULL for schedules, alerts, and senders nobody linked.
ALTER TABLE tasks ADD COLUMN requested_by BIGINT REFERENCES principals (id) ON DELETE SET NULL;

-- One vote per principal per approval: the primary key makes a repeated approve by the same
-- person count once, however many arrive at the same moment.
CREATE TABLE approval_votes (
    approval_id   BIGINT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    principal_id  BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    decision      TEXT   NOT NULL CHECK (decision IN ('approve', 'reject', 'revise')),
    channel       TEXT   NOT NULL,                            -- api | web | slack | …
    voted_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (approval_id, principal_id)
);

-- A chat account (Slack user id, KakaoWork user id) linked to a user; a chat id belongs to
-- one user, a user has at most one id per chat service.
CREATE TABLE chat_identities (
    provider      TEXT   NOT NULL CHECK (provider IN ('slack', 'kakaowork')),
    external_id   TEXT   NOT NULL,
    principal_id  BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    linked_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, external_id),
    UNIQUE (principal_id, provider)
);

-- One-time links offered in chat to an unknown chat user: only the SHA-256 of the signed
-- token is stored; a link is used once, before it expires. One open link per chat id.
CREATE TABLE identity_links (
    token_hash    TEXT   PRIMARY KEY,
    provider      TEXT   NOT NULL CHECK (provider IN ('slack', 'kakaowork')),
    external_id   TEXT   NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ,
    used_by       BIGINT REFERENCES principals (id) ON DELETE SET NULL
);
CREATE INDEX identity_links_chat ON identity_links (provider, external_id);
