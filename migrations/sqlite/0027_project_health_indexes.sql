-- The project list's health figures read, per project, its newest finished task and its tasks
-- finished in the last seven days; without these each project's whole history was scanned
-- (with 100k tasks over 50 projects the list took ~130 ms).
-- Per project, finished tasks by completion time: the newest one is one index step.
CREATE INDEX tasks_project_completed ON tasks (project_id, completed_at);
-- Per project and status, by completion time: done / finished since a moment.
CREATE INDEX tasks_project_status_completed ON tasks (project_id, status, completed_at);
