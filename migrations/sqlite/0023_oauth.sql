-- aiops as the OAuth 2.1 authorization server of its MCP resource (`/mcp`): clients that
-- registered themselves (RFC 7591), authorization codes, and the grants a person consented
-- to with their tokens. Every secret (client secret, code, access and refresh token) is kept
-- only as its hex SHA-256, so a leaked database opens nothing.

-- A client (Claude's connector, a local Claude Code, another MCP client). Registration is
-- open, so what a client may do comes only from the person who consents; clients that never
-- obtained a grant are deleted a day after they registered.
CREATE TABLE oauth_clients (
    client_id      TEXT    PRIMARY KEY,                -- random, public
    secret_hash    TEXT,                               -- NULL: a public client (PKCE only)
    auth_method    TEXT    NOT NULL CHECK (auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    name           TEXT    NOT NULL,                   -- what the client calls itself, cut to 100 characters
    redirect_uris  TEXT    NOT NULL,                   -- JSON ["https://…"], each allowed by `[mcp]`
    created_at     TEXT    NOT NULL
);

-- What a person consented to: a client acting as them with some scopes on one resource.
-- Every access and refresh token of the grant stops when it is revoked (from "my account",
-- by revocation, or when a used code or a rotated refresh token comes back).
CREATE TABLE oauth_grants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id      TEXT    NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    principal_id   INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    scopes         TEXT    NOT NULL,                   -- "read write approve", a subset
    resource       TEXT    NOT NULL,                   -- the audience: this service's `/mcp` URL
    created_at     TEXT    NOT NULL,
    last_used_at   TEXT    NOT NULL,
    revoked_at     TEXT
);
CREATE INDEX oauth_grants_principal ON oauth_grants (principal_id) WHERE revoked_at IS NULL;

-- An authorization code: one use, a few minutes, bound to its client, redirect URI and
-- PKCE challenge. `grant_id` is the grant its exchange made, revoked if the code comes back.
CREATE TABLE oauth_codes (
    code_hash       TEXT    PRIMARY KEY,
    client_id       TEXT    NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    principal_id    INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    redirect_uri    TEXT    NOT NULL,
    code_challenge  TEXT    NOT NULL,                  -- S256 of the verifier, base64url
    scopes          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    expires_at      TEXT    NOT NULL,
    used_at         TEXT,
    grant_id        INTEGER REFERENCES oauth_grants (id) ON DELETE CASCADE
);

-- Access tokens (short-lived) and refresh tokens (rotated: each use marks it used and
-- issues a new one; a used one presented again revokes the grant).
CREATE TABLE oauth_tokens (
    token_hash   TEXT    PRIMARY KEY,
    grant_id     INTEGER NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    expires_at   TEXT    NOT NULL,
    used_at      TEXT                                  -- a refresh token that was rotated
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
