-- The dashboard: each person's language and time zone, and how a project's approval links
-- decide.

-- A user's language for the pages (`en`, `ko`; NULL: the browser's Accept-Language) and time
-- zone (an IANA name such as `Asia/Seoul`; NULL: UTC).
ALTER TABLE principals ADD COLUMN language TEXT CHECK (language IN ('en', 'ko'));
ALTER TABLE principals ADD COLUMN time_zone TEXT;

-- What a signed approval link does: `link` (the link alone decides, recorded as "via link sent
-- to <channel>") or `sign_in` (the link opens the page; deciding needs a signed-in person with
-- the decide permission on the project).
ALTER TABLE projects ADD COLUMN approval_links TEXT NOT NULL DEFAULT 'sign_in'
    CHECK (approval_links IN ('link', 'sign_in'));
