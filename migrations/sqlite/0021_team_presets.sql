-- Team presets made on the dashboard. They obey the rules of the preset files
-- (`config/teams/*.md`, checked by `teams::checked_front_matter`), and a name a file declares
-- (built in or in `teams_dir`) is refused before it gets here. A task names its team by
-- name, so tasks never point at this table: deleting a preset leaves their history intact.
CREATE TABLE team_presets (
    name              TEXT    PRIMARY KEY,        -- a slug, like a preset file's `name`
    description       TEXT    NOT NULL,           -- one line on what the team does
    members           TEXT    NOT NULL,           -- JSON [{name, phase, instructions}], leader first
    trigger_keywords  TEXT    NOT NULL,           -- JSON ["word", …]: what routes a task here
    created_by        TEXT    NOT NULL,           -- login of who made it (or copied it)
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);
