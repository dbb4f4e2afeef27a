-- An invitation (or a calendar attendee entry) shows a meeting to an account only once the
-- account's address is verified: otherwise anyone could register an invited address.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
-- A disabled account cannot log in, and its sessions are gone.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- Single-use mailed links: address verification and password reset. Only a SHA-256 of each
-- token is kept, like sessions.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    expires_at BIGINT NOT NULL
);

-- Invitations linked before addresses were verified are undone; verifying an address links
-- its invitations again.
DELETE FROM user_meetings;
