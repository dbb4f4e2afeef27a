-- Deleted meetings leave a tombstone of ids and times only: events a bot publishes after the
-- deletion are dropped (not set aside with their text as "unknown"), a calendar does not make the
-- meeting again, and data outside the database (recordings, Redis streams) is purged until
-- `purged_at` is set, by whichever replica gets to it. A meeting may keep its own retention.
CREATE TABLE deleted_meetings (
    meeting_id   TEXT PRIMARY KEY,
    calendar_key TEXT,
    deleted_at   BIGINT NOT NULL,
    purged_at    BIGINT
);
CREATE INDEX deleted_meetings_calendar ON deleted_meetings (calendar_key);
CREATE INDEX deleted_meetings_unpurged ON deleted_meetings (purged_at);
ALTER TABLE meetings ADD COLUMN retention_days BIGINT;
