-- A notification is sent at most once per attempt, even across a crash: a worker claims the
-- attempt (sending_since) before it sends and clears the claim when it records the outcome.
-- A claim nobody cleared means a send whose outcome is unknown; it is not sent again.
ALTER TABLE notifications ADD COLUMN sending_since TEXT;
