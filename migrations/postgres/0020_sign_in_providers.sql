-- Signing in through GitHub and OpenID Connect providers.

-- A sign-in started at a provider and not finished yet. The browser holds the `state` in a
-- cookie and brings it back in the callback; only its SHA-256 is kept here. A flow is used
-- once (deleted as the callback reads it) and ends at `expires_at` (10 minutes).
CREATE TABLE sign_in_flows (
    state_hash     TEXT    PRIMARY KEY,                -- hex SHA-256 of the `state` parameter
    provider       TEXT    NOT NULL CHECK (provider IN ('github', 'oidc')),
    pkce_verifier  TEXT    NOT NULL,                   -- sent once, to the token endpoint
    nonce          TEXT,                               -- OpenID Connect: the ID token must carry it
    next_path      TEXT    NOT NULL,                   -- a same-site path to go to after sign-in
    expires_at     TIMESTAMPTZ NOT NULL
);

-- Which aiops user a provider's account is: for OpenID Connect the issuer and the `sub`
-- claim (stable, unlike an email address); for GitHub its web URL and numeric user id
-- (stable, unlike a login, which GitHub may give to someone else later).
CREATE TABLE external_identities (
    issuer        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    principal_id  BIGINT  NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject)
);
