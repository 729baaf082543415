-- Scheduled jobs and the shared request budget (issue 5). Keep in step with the other backend's
-- 0006_jobs.sql. All timestamps are unix epoch milliseconds.

-- One row per scheduled job (e.g. 'catalog.delta.default'). The lease makes a job run on one
-- instance at a time; last_started/requested_at tell every instance when it is next due.
CREATE TABLE jobs (
    name          TEXT   PRIMARY KEY,
    lease_owner   TEXT,            -- instance running it now; NULL = idle
    lease_until   BIGINT,          -- the lease runs out then unless renewed
    last_started  BIGINT,          -- when the last run started (any instance)
    last_full     BIGINT,          -- when the last full run started
    last_finished BIGINT,
    last_outcome  TEXT,            -- 'ok' or 'failed: <reason>'
    requested_at  BIGINT,          -- a change notification asked for a run at this time
    runs          BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Omnisend requests granted per brand and wall-clock second, shared by every instance on this
-- database so that together they stay under the brand's requests_per_minute (PostgreSQL).
CREATE TABLE rate_budget (
    brand  TEXT   NOT NULL,
    second BIGINT NOT NULL,
    used   BIGINT NOT NULL,
    PRIMARY KEY (brand, second)
);

-- Inbox claims: an instance processes the entries it claimed; entries of a resource another
-- instance holds wait, so several instances split the inbox instead of each doing it all.
ALTER TABLE inbox ADD COLUMN lease_owner TEXT;
ALTER TABLE inbox ADD COLUMN lease_until BIGINT;
CREATE INDEX inbox_resource ON inbox (resource_type, resource_id) WHERE processed_at IS NULL;
