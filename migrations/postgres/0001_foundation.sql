-- Foundation schema (PostgreSQL). Timestamps are TIMESTAMPTZ written by the
-- application; ids are integers; JSON columns are JSONB.

-- Who can act: a user or a service account. Roles grow into their own table
-- later; for now one role per principal: admin | operator | viewer.
CREATE TABLE principals (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'service')),
    name        TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at  TIMESTAMPTZ NOT NULL
);

-- Bearer tokens. Only the SHA-256 of a token is kept; `prefix` lets a human
-- recognise a token in listings without revealing it.
CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id  BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL UNIQUE,
    token_hash    TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

-- Registered repositories.
CREATE TABLE projects (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,          -- slug, the public key
    repo_url         TEXT,                             -- clone source, optional
    local_path       TEXT,                             -- existing checkout, optional
    default_branch   TEXT    NOT NULL,
    branch_strategy  TEXT    NOT NULL,                 -- template, e.g. aiops/{team}/{task_id}
    tech_stack       JSONB NOT NULL DEFAULT '[]',    -- JSON array of strings
    conventions      TEXT    NOT NULL DEFAULT '',
    github_repo      TEXT,                             -- owner/repo
    max_concurrency  BIGINT NOT NULL CHECK (max_concurrency > 0),
    timeout_secs     BIGINT,                          -- overrides the global agent timeout
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CHECK (repo_url IS NOT NULL OR local_path IS NOT NULL)
);

-- One row of vault metadata: which key version is current and a check value
-- (HMAC of a fixed label) that tells whether a presented master key is right.
CREATE TABLE vault_keys (
    version     BIGINT PRIMARY KEY,
    key_check   TEXT    NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    retired_at  TIMESTAMPTZ
);

-- Encrypted secrets. `project_id` NULL means global. The plaintext is never
-- stored: AES-256-GCM ciphertext + 96-bit nonce, associated data binds the
-- ciphertext to (scope, name) so it cannot be moved to another row.
CREATE TABLE credentials (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('api_key', 'ssh_key', 'db_url', 'token', 'github_app', 'webhook_secret')),
    env_var       TEXT    NOT NULL,                    -- injected into the agent as this variable
    ciphertext    BYTEA NOT NULL,
    nonce         BYTEA NOT NULL,
    key_version   BIGINT NOT NULL REFERENCES vault_keys (version),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ
);
-- NULL project ids would not collide in a plain UNIQUE constraint.
CREATE UNIQUE INDEX credentials_scope_name ON credentials (COALESCE(project_id, 0), name);

-- A request to run a team on a project (the seed's sessions).
CREATE TABLE tasks (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id     BIGINT NOT NULL REFERENCES projects (id),  -- NO ACTION: a project with tasks cannot be deleted
    team           TEXT    NOT NULL,
    prompt         TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('api', 'github', 'cron', 'alert', 'chat', 'cli')),
    priority       TEXT    NOT NULL CHECK (priority IN ('critical', 'high', 'normal', 'low')),
    status         TEXT    NOT NULL,                   -- queued | running | awaiting_approval | done | failed | rolled_back | cancelled
    status_reason  TEXT,
    dedup_key      TEXT,
    phase          TEXT,                               -- last party phase seen
    party_session_id TEXT,
    branch         TEXT,
    worktree_path  TEXT,
    source_ref     JSONB NOT NULL DEFAULT '{}',      -- JSON: where it came from (issue url, schedule, alert)
    created_by     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    completed_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX tasks_project_dedup ON tasks (project_id, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX tasks_project_status ON tasks (project_id, status, id);
CREATE INDEX tasks_status ON tasks (status, id);

-- One execution attempt of a task (the seed's benchmarks).
CREATE TABLE runs (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id                BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind                   TEXT    NOT NULL,           -- start | resume | retry
    status                 TEXT    NOT NULL,           -- running | succeeded | failed | timed_out | cancelled
    pid                    BIGINT,
    exit_code              BIGINT,
    claude_session_id      TEXT,
    result_subtype         TEXT,
    num_turns              BIGINT,
    input_tokens           BIGINT NOT NULL DEFAULT 0,
    output_tokens          BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens  BIGINT NOT NULL DEFAULT 0,
    cost_usd               DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_ms            BIGINT,
    error                  TEXT,
    log                    TEXT    NOT NULL DEFAULT '', -- redacted stdout/stderr, size-capped
    started_at             TIMESTAMPTZ NOT NULL,
    finished_at            TIMESTAMPTZ
);
CREATE INDEX runs_task ON runs (task_id, id);

-- Hand-off documents from .party/sessions/<id>/findings/, latest content only.
CREATE TABLE findings (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    content     TEXT    NOT NULL,                      -- redacted
    sha256      TEXT    NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (task_id, name)
);

-- Work items from .party/sessions/<id>/tickets/.
CREATE TABLE tickets (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    ticket_id   TEXT    NOT NULL,
    kind        TEXT,
    title       TEXT,
    status      TEXT,
    phase       TEXT,
    assignee    TEXT,
    parent_id   TEXT,
    body        JSONB NOT NULL,                      -- the whole ticket JSON, redacted
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (task_id, ticket_id)
);

-- Pipeline events (from events.ndjson) and the platform's own, in one ordered
-- log; `id` is the SSE event id. `source_offset` makes ingestion idempotent.
CREATE TABLE events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id        BIGINT REFERENCES tasks (id) ON DELETE CASCADE,
    project_id     BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    kind           TEXT    NOT NULL,
    origin         TEXT    NOT NULL CHECK (origin IN ('party', 'platform')),
    ts             TIMESTAMPTZ NOT NULL,
    data           JSONB NOT NULL,                   -- JSON, redacted
    source_offset  BIGINT,                            -- byte offset in events.ndjson for party events
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX events_party_offset ON events (task_id, source_offset) WHERE source_offset IS NOT NULL;
CREATE INDEX events_task ON events (task_id, id);

-- Approval requests mirrored from .party/ approvals, and their decisions.
CREATE TABLE approvals (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id         BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    request_id      TEXT    NOT NULL,                  -- APR-… or the result approval file stem
    kind            TEXT    NOT NULL CHECK (kind IN ('tool', 'result')),
    risk_level      TEXT,
    tool_name       TEXT,
    tool_input      JSONB,                              -- JSON, redacted
    summary         TEXT,
    diff_stat       TEXT,
    status          TEXT    NOT NULL,                  -- pending | decided | expired
    decision        TEXT,
    comment         TEXT,
    decided_by      TEXT,
    decided_at      TIMESTAMPTZ,
    channel         TEXT,
    requested_at    TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    UNIQUE (task_id, request_id)
);

-- Who did what, to what, from where, and how it ended. Append-only.
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL,
    principal_id    BIGINT,                           -- NULL when unauthenticated
    principal_name  TEXT    NOT NULL,                  -- kept even if the principal goes
    action          TEXT    NOT NULL,                  -- e.g. project.create
    target          TEXT    NOT NULL,                  -- e.g. projects/shop
    source          TEXT    NOT NULL,                  -- client address, or "cli"
    outcome         TEXT    NOT NULL,                  -- HTTP status or "ok" / "error"
    detail          JSONB NOT NULL DEFAULT '{}'      -- JSON
);
CREATE INDEX audit_target ON audit_log (target, id);
CREATE INDEX audit_principal ON audit_log (principal_name, id);
CREATE INDEX audit_at ON audit_log (at);
