-- Since when a meeting's bot has heard nothing from a platform that should be sending audio
-- (its last status was capture_stalled); cleared when audio comes back.
ALTER TABLE meetings ADD COLUMN capture_stalled_at BIGINT;
