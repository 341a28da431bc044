-- What the pipeline's session says about itself: the team that actually ran (the plugin may
-- pick another than asked) and what `/party-board` shows (members and whether each was
-- spawned, execution progress, fix_loop, approval grants), as JSON.
ALTER TABLE tasks ADD COLUMN team_ran TEXT;
ALTER TABLE tasks ADD COLUMN board TEXT;
