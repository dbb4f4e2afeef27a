-- A meeting's metadata: the integrator's own map of strings (JSON text), shown to the owner and
-- usable as a filter.
ALTER TABLE meetings ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
