-- Live captions: each meeting's share token (NULL once its owner revoked the link). Meetings made
-- before this migration get a token here: two random UUIDs give 244 random bits.
ALTER TABLE meetings ADD COLUMN share_token TEXT;
UPDATE meetings SET share_token = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX meetings_share_token ON meetings (share_token);
