-- The approval gate: what the human saw when asked, when the engine took the decision, and
-- what became of approved work.

-- The worktree's change when the request was filed: JSON [{path, insertions, deletions, status}].
ALTER TABLE approvals ADD COLUMN diff_files TEXT;
-- The unified diff, cut at approvals.max_diff_bytes (diff_truncated says so).
ALTER TABLE approvals ADD COLUMN diff_patch TEXT;
ALTER TABLE approvals ADD COLUMN diff_truncated INTEGER NOT NULL DEFAULT 0;
-- The findings at that moment: JSON [{name, content}], redacted.
ALTER TABLE approvals ADD COLUMN findings TEXT;
-- When diff and findings were taken; NULL until the engine has seen the request.
ALTER TABLE approvals ADD COLUMN snapshot_at TEXT;
-- When a resume run handed the decision to the engine; a decision is resumed once.
ALTER TABLE approvals ADD COLUMN resumed_at TEXT;
CREATE INDEX approvals_pending ON approvals (status, expires_at);

-- The pull request made of the task's approved work.
ALTER TABLE tasks ADD COLUMN pr_url TEXT;
ALTER TABLE tasks ADD COLUMN pr_number INTEGER;
-- What became of the change when no pull request was made ("no changes", a push error …).
ALTER TABLE tasks ADD COLUMN change_note TEXT;
