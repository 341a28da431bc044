-- Per-agent analytics (issue 14): when each ticket was opened and done, and how often it was
-- reopened, so the figures per agent (a ticket's assignee, a member of the plugin's team) are
-- SQL aggregates over indexed columns instead of the tickets' JSON.
--
-- Ingestion sets the two times on every upsert of a ticket (`store::pipeline::upsert_ticket`);
-- tickets stored before this migration have none and are left out of the figures. Reopens
-- come from the plugin's own history, its `ticket_updated` events (`prevStatus` DONE, `status`
-- anything else), counted by a trigger as each event is stored once, so a reopen that was done
-- again before ingestion read the ticket file still counts, and pruning old events loses none.

-- The plugin's `createdAt`, else when aiops first stored the ticket; kept from then on.
ALTER TABLE tickets ADD COLUMN opened_at TIMESTAMPTZ;
-- While the status is DONE: the plugin's `completedAt`, else when aiops first saw it DONE;
-- NULL while it is not done (a reopened ticket loses it until it is done again).
ALTER TABLE tickets ADD COLUMN done_at TIMESTAMPTZ;

-- The agents' tickets by the time they were opened (the figures' range).
CREATE INDEX tickets_agent_opened ON tickets (opened_at, assignee) WHERE assignee IS NOT NULL;

-- How often each ticket went from DONE back to an open status.
CREATE TABLE ticket_reopens (
    task_id    BIGINT  NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    ticket_id  TEXT    NOT NULL,                   -- the plugin's ticket id (tickets.ticket_id)
    reopened   INTEGER NOT NULL,                   -- times it went from DONE to another status
    PRIMARY KEY (task_id, ticket_id)
);

CREATE FUNCTION events_ticket_reopened() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_reopens AS r (task_id, ticket_id, reopened)
    VALUES (NEW.task_id, NEW.data -> 'data' ->> 'ticketId', 1)
    ON CONFLICT (task_id, ticket_id) DO UPDATE SET reopened = r.reopened + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_ticket_reopened AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.kind = 'ticket_updated' AND NEW.origin = 'party' AND NEW.task_id IS NOT NULL
        AND NEW.data -> 'data' ->> 'prevStatus' = 'DONE'
        AND COALESCE(NEW.data -> 'data' ->> 'status', '') <> 'DONE'
        AND NEW.data -> 'data' ->> 'ticketId' IS NOT NULL)
    EXECUTE FUNCTION events_ticket_reopened();

-- The reopens already in the stored events.
INSERT INTO ticket_reopens (task_id, ticket_id, reopened)
SELECT task_id, data -> 'data' ->> 'ticketId', COUNT(*)
FROM events
WHERE kind = 'ticket_updated' AND origin = 'party' AND task_id IS NOT NULL
    AND data -> 'data' ->> 'prevStatus' = 'DONE'
    AND COALESCE(data -> 'data' ->> 'status', '') <> 'DONE'
    AND data -> 'data' ->> 'ticketId' IS NOT NULL
GROUP BY task_id, data -> 'data' ->> 'ticketId';
