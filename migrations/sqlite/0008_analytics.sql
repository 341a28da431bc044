-- Analytics and retention: the indexes their range queries need. Figures are summed in SQL
-- per time bucket, so each query reads a time range through an index, never the whole table.

-- Tasks by creation time (the bucket a task counts in), with the project for the scope filter.
CREATE INDEX tasks_created ON tasks (created_at, project_id);
-- Approval requests by the time they were filed (the bucket a request counts in).
CREATE INDEX approvals_requested ON approvals (requested_at, task_id);
-- Retention prunes events by the time they were stored, oldest first.
CREATE INDEX events_created ON events (created_at);
