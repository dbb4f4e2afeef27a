-- Recording can be turned off per meeting.
ALTER TABLE meetings ADD COLUMN record BOOLEAN NOT NULL DEFAULT TRUE;
