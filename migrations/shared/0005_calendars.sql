-- Calendars users add (an ICS feed or a CalDAV collection, the password sealed at rest), polled
-- for meetings. A calendar instance becomes one meeting whatever calendar it is on: its
-- calendar_key is the event's UID and its original start.
CREATE TABLE calendars (
    calendar_id     TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    username        TEXT,
    password_sealed TEXT,
    etag            TEXT,
    last_modified   TEXT,
    next_poll_at    BIGINT NOT NULL,
    locked_until    BIGINT,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX calendars_user ON calendars (user_id);
CREATE INDEX calendars_due ON calendars (next_poll_at);

ALTER TABLE meetings ADD COLUMN calendar_key TEXT;
CREATE UNIQUE INDEX meetings_calendar_key ON meetings (calendar_key);

-- Which instances each calendar showed at its last poll, so one that disappears is cancelled.
CREATE TABLE calendar_instances (
    calendar_id  TEXT NOT NULL REFERENCES calendars (calendar_id) ON DELETE CASCADE,
    calendar_key TEXT NOT NULL,
    start_time   BIGINT NOT NULL,
    PRIMARY KEY (calendar_id, calendar_key)
);
CREATE INDEX calendar_instances_key ON calendar_instances (calendar_key);
