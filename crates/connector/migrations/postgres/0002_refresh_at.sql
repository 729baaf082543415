-- When a record must be mapped again although commercetools did not change it: the next
-- instant a price of the record starts or stops being valid (unix ms; NULL = never).
-- Keep in step with migrations/sqlite/0002_refresh_at.sql.
ALTER TABLE sync_records ADD COLUMN refresh_at BIGINT;
CREATE INDEX sync_records_refresh_at ON sync_records (route, entity, refresh_at);
