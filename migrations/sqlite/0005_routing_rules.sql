-- Routing rules: which GitHub events and alerts become tasks, on top of the `[github]` and
-- `[[alerts.rules]]` settings of config/aiops.toml (those stay the defaults). A rule is
-- declared in a jobs/*.toml file (origin 'file', changed only there) or through
-- /api/v1/routing-rules (origin 'api').
CREATE TABLE routing_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,                   -- slug, the public key, unique across both kinds
    kind        TEXT    NOT NULL CHECK (kind IN ('github', 'alert')),
    project_id  INTEGER REFERENCES projects (id) ON DELETE CASCADE,  -- NULL: a GitHub rule for every registered repository; a removed project takes its rules along
    position    INTEGER NOT NULL,                          -- rules are tried by position, then name; the first that matches decides
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    definition  TEXT    NOT NULL,                          -- JSON: the whole rule as declared (API body, jobs table); name, kind, project, position and enabled are copied into the columns above, in the same statement, for the routing queries and the foreign key
    origin      TEXT    NOT NULL CHECK (origin IN ('api', 'file')),
    file        TEXT,                                      -- the jobs file that declares it, e.g. routing.toml
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CHECK (kind = 'github' OR project_id IS NOT NULL),     -- an alert rule names its project
    CHECK ((origin = 'file') = (file IS NOT NULL))
);
-- Routing's question, once per delivery: the enabled rules of a kind, in order.
CREATE INDEX routing_rules_order ON routing_rules (kind, position, name) WHERE enabled;
