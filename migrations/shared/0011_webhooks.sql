-- Webhooks: a user's endpoints, each with the events it wants, an optional metadata filter, its
-- address (sealed, with a redacted form to list) and its signing secret (sealed). Deliveries are
-- the queue that posts them and the log their owner reads: one row per (endpoint, event), so an
-- event applied twice is delivered once, claimed with a lease like jobs, in `seq` order per
-- (endpoint, meeting).
CREATE TABLE webhooks (
    webhook_id      TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    url_sealed      TEXT NOT NULL,
    events          TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    secret_sealed   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    disabled_reason TEXT
);
CREATE INDEX webhooks_user ON webhooks (user_id);

CREATE TABLE webhook_deliveries (
    delivery_id     TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    meeting_id      TEXT NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    event_key       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'running', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    queued_at       BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (webhook_id, event_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, meeting_id, seq);
