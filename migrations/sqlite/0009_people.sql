-- People: users with a global role, their memberships in projects, and tokens that belong
-- to a user and carry scopes. A principal is a user (a person, who may sign in) or a
-- service account (automation, never signs in); the table keeps its name so audit entries
-- and tokens keep pointing at the same rows.

-- The old single role (admin | operator | viewer) becomes a global role (admin | member)
-- plus memberships; it is dropped at the end, after its meaning has moved.
ALTER TABLE principals ADD COLUMN global_role TEXT NOT NULL DEFAULT 'member'
    CHECK (global_role IN ('admin', 'member'));
ALTER TABLE principals ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE principals ADD COLUMN email TEXT;                 -- optional
ALTER TABLE principals ADD COLUMN github_login TEXT;          -- optional, unique when set
ALTER TABLE principals ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'disabled'));                 -- disabled: every token and session stops
ALTER TABLE principals ADD COLUMN password_hash TEXT;         -- argon2id PHC string; NULL: no password sign-in
ALTER TABLE principals ADD COLUMN last_seen_at TEXT;          -- last authenticated request, at most once a minute
CREATE UNIQUE INDEX principals_github_login ON principals (github_login) WHERE github_login IS NOT NULL;

-- A principal's role in one project, or in every project (project_id NULL: what a token of
-- the old global operator or viewer role meant). viewer < operator < approver < maintainer.
CREATE TABLE memberships (
    principal_id  INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    project_id    INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'maintainer')),
    created_at    TEXT    NOT NULL
);
-- NULL project ids would not collide in a plain UNIQUE constraint.
CREATE UNIQUE INDEX memberships_principal_project ON memberships (principal_id, COALESCE(project_id, 0));

-- Tokens carry scopes (a space-separated subset of: read write approve admin), an optional
-- project restriction and expiry; a service token is one made for automation.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read';
ALTER TABLE api_tokens ADD COLUMN project_id INTEGER REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
ALTER TABLE api_tokens ADD COLUMN service INTEGER NOT NULL DEFAULT 0;

-- Existing principals keep exactly the rights they had: admins become global admins,
-- operators maintain (the old operator edited projects and credentials) and viewers view
-- every project; their tokens get the scopes of the old role.
UPDATE principals SET global_role = 'admin' WHERE role = 'admin';
INSERT INTO memberships (principal_id, project_id, role, created_at)
    SELECT id, NULL, CASE role WHEN 'operator' THEN 'maintainer' ELSE 'viewer' END, created_at
    FROM principals WHERE role <> 'admin';
UPDATE api_tokens SET service = 1, scopes = (
    SELECT CASE p.role WHEN 'admin' THEN 'read write approve admin'
                       WHEN 'operator' THEN 'read write approve'
                       ELSE 'read' END
    FROM principals p WHERE p.id = api_tokens.principal_id);
-- The first admin token's principal is the person who set the service up: the admin user.
UPDATE principals SET kind = 'user', display_name = name WHERE id = (
    SELECT t.principal_id FROM api_tokens t JOIN principals p ON p.id = t.principal_id
    WHERE p.role = 'admin' ORDER BY t.id LIMIT 1);
UPDATE api_tokens SET service = 0 WHERE principal_id IN (SELECT id FROM principals WHERE kind = 'user');
ALTER TABLE principals DROP COLUMN role;
