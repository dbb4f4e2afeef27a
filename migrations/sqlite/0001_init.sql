-- Users, sessions, meetings, participants and transcripts. Ids are UUID text and times are
-- milliseconds since the Unix epoch, in both backends, so one set of queries serves both.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE meetings (
    meeting_id TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    url        TEXT NOT NULL,
    platform   TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('scheduled', 'joining', 'in_progress', 'ended', 'failed')),
    status_reason TEXT,
    owner_id   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    start_time INTEGER,
    end_time   INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX meetings_owner ON meetings (owner_id, created_at);
CREATE INDEX meetings_due ON meetings (status, start_time);

CREATE TABLE user_meetings (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    meeting_id TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    joined_at  INTEGER NOT NULL,
    UNIQUE (user_id, meeting_id)
);
CREATE INDEX user_meetings_meeting ON user_meetings (meeting_id);

-- Participant emails given at creation: the summary goes to them, and a person who registers
-- later with one of them sees the meeting.
CREATE TABLE meeting_invitees (
    meeting_id TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    PRIMARY KEY (meeting_id, email)
);
CREATE INDEX meeting_invitees_email ON meeting_invitees (email);

-- The speakers a bot heard: one row per platform participant key.
CREATE TABLE participants (
    meeting_id   TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    speaker_key  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    user_id      TEXT REFERENCES users (user_id) ON DELETE SET NULL,
    joined_ms    INTEGER,
    left_ms      INTEGER,
    PRIMARY KEY (meeting_id, speaker_key)
);

CREATE TABLE transcriptions (
    transcription_id TEXT PRIMARY KEY,
    meeting_id       TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    segment_id       TEXT NOT NULL,
    speaker          TEXT NOT NULL,
    speaker_name     TEXT NOT NULL,
    speaker_user_id  TEXT REFERENCES users (user_id) ON DELETE SET NULL,
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    transcribed_text TEXT NOT NULL,
    is_final         BOOLEAN NOT NULL,
    seq              INTEGER NOT NULL,
    "timestamp"      INTEGER NOT NULL,
    UNIQUE (meeting_id, segment_id)
);
CREATE INDEX transcriptions_timeline ON transcriptions (meeting_id, start_ms);

CREATE TABLE summaries (
    summary_id   TEXT PRIMARY KEY,
    meeting_id   TEXT NOT NULL UNIQUE REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    generated_at INTEGER NOT NULL,
    summary_text TEXT NOT NULL,
    highlights   TEXT NOT NULL,
    action_items TEXT NOT NULL,
    model        TEXT NOT NULL
);
