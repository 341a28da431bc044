-- Sign-in sessions, and what slows down guessing passwords.

-- A signed-in browser. The cookie holds a random secret; only its SHA-256 is kept here, so
-- a leaked database opens no session. A session ends at the first of: `expires_at` (the
-- absolute lifetime, `auth.session_absolute_secs`), `last_seen_at` + `auth.session_idle_secs`,
-- `revoked_at` (sign-out, revocation, the user disabled), or its user being disabled.
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,   -- shown and revoked by id, never the secret
    principal_id  INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    secret_hash   TEXT    NOT NULL UNIQUE,             -- hex SHA-256 of the cookie's secret
    method        TEXT    NOT NULL CHECK (method IN ('password', 'github', 'oidc')),
    created_at    TEXT    NOT NULL,
    last_seen_at  TEXT    NOT NULL,                    -- refreshed at most once a minute
    expires_at    TEXT    NOT NULL,                    -- absolute end
    revoked_at    TEXT,
    client_addr   TEXT    NOT NULL,                    -- where it was signed in from
    user_agent    TEXT    NOT NULL                     -- cut to 256 characters
);
CREATE INDEX sessions_principal ON sessions (principal_id) WHERE revoked_at IS NULL;

-- Password guessing per account: consecutive failures since the last success, and the
-- moment a lock (growing with each failure past `auth.lockout_after_failures`) ends. In the
-- database, not in memory, so every node of a cluster sees the same count.
ALTER TABLE principals ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE principals ADD COLUMN locked_until TEXT;

-- Sign-in attempts per client address in one-minute windows (`window_start` in Unix
-- minutes), shared by every node; windows older than the current one are deleted as new
-- attempts arrive.
CREATE TABLE sign_in_attempts (
    client_addr   TEXT    NOT NULL,
    window_start  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    PRIMARY KEY (client_addr, window_start)
);
