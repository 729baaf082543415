-- ct-omnisend state store, initial schema (SQLite).
-- All timestamps are unix epoch milliseconds (INTEGER). Keep in step with
-- migrations/postgres/0001_initial.sql.

-- Per-record sync state, one row per (route, entity, commercetools id).
CREATE TABLE sync_records (
    route        TEXT    NOT NULL,
    entity       TEXT    NOT NULL,
    ct_id        TEXT    NOT NULL,
    ct_version   INTEGER NOT NULL,
    payload_hash TEXT    NOT NULL,
    omnisend_id  TEXT,
    status       TEXT    NOT NULL,
    batch_id     TEXT,
    last_error   TEXT,
    synced_at    INTEGER,
    seen_run     INTEGER,
    PRIMARY KEY (route, entity, ct_id)
);
CREATE INDEX sync_records_batch ON sync_records (route, entity, batch_id);
CREATE INDEX sync_records_seen_run ON sync_records (route, entity, seen_run);

-- Incremental sync cursors per (entity, route).
CREATE TABLE sync_cursors (
    entity              TEXT    NOT NULL,
    route               TEXT    NOT NULL,
    last_modified_at    INTEGER,
    last_id             TEXT,
    mapping_fingerprint TEXT,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (entity, route)
);

-- One row per sync run with its statistics.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity      TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    mode        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    error       TEXT,
    seen        INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    requests    INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sync_runs_started ON sync_runs (started_at, id);

-- Dead letters: records Omnisend (or the mapping) rejected.
CREATE TABLE rejected_records (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    route       TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    ct_id       TEXT    NOT NULL,
    field       TEXT,
    reason      TEXT    NOT NULL,
    payload     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
-- At most one open rejection per record; add_rejected upserts against it.
CREATE UNIQUE INDEX rejected_records_open
    ON rejected_records (route, entity, ct_id) WHERE resolved_at IS NULL;
CREATE INDEX rejected_records_updated ON rejected_records (updated_at, id);

-- Small key/value store (e.g. mapping fingerprint per route).
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
