-- Live captions: each meeting's share token (NULL once its owner revoked the link). Meetings made
-- before this migration get 256 random bits here.
ALTER TABLE meetings ADD COLUMN share_token TEXT;
UPDATE meetings SET share_token = lower(hex(randomblob(32)));
CREATE UNIQUE INDEX meetings_share_token ON meetings (share_token);
