-- After a meeting: the summary's open questions and why an LLM summary was not used, and the
-- jobs that write the summary and mail it. A job is claimed with a lease, so one whose worker died
-- runs again once the lease is over; (kind, meeting, recipient) makes each job happen once.
ALTER TABLE summaries ADD COLUMN open_questions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE summaries ADD COLUMN fallback_reason TEXT;

CREATE TABLE jobs (
    job_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('summary', 'email')),
    meeting_id   TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    recipient    TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_at       BIGINT NOT NULL,
    locked_until BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    UNIQUE (kind, meeting_id, recipient)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
