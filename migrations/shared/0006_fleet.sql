-- The bot fleet's size, as an admin sets it (one row; absent until first set, when the
-- server's flags apply).
CREATE TABLE fleet_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    min_idle   INTEGER NOT NULL,
    max_bots   INTEGER NOT NULL,
    per_user   INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

-- When the scheduler queued the meeting's bot, for join latency.
ALTER TABLE meetings ADD COLUMN dispatched_at BIGINT;
