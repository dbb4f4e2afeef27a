-- When a calendar was last read without error, so its owner sees that it is being read.
ALTER TABLE calendars ADD COLUMN last_read_at BIGINT;
