-- Real-time events (issue 4): the outbox of Omnisend events (its `sent` rows are the ledger),
-- the facts each event covers, and the last applied state of each resource.
-- Keep in step with migrations/postgres/0005_events.sql.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    brand        TEXT    NOT NULL, -- the brand's API key variable (as in contact_members)
    event_id     TEXT    NOT NULL, -- deterministic UUIDv5: one fact, one id
    event_name   TEXT    NOT NULL, -- e.g. 'placed order'
    ordering_key TEXT    NOT NULL, -- e.g. 'order:<id>': rows of one key go out in id order
    lane         INTEGER NOT NULL, -- 0 real time, 1 backfill (historical orders)
    body         TEXT    NOT NULL, -- the EventRequest (JSON)
    status       TEXT    NOT NULL DEFAULT 'pending', -- pending | submitted | sent | rejected
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       INTEGER NOT NULL, -- unix ms: not sent before
    lease_owner  TEXT,             -- the worker holding the row
    lease_until  INTEGER,          -- unix ms: the lease ends (a dead worker's rows come back)
    created_at   INTEGER NOT NULL, -- unix ms
    sent_at      INTEGER,          -- unix ms: Omnisend answered 2xx
    last_error   TEXT,
    batch_id     TEXT              -- status submitted: the /batches request carrying it
);
-- Once per event (the once-only rule: a redelivery, replay or restart finds the row).
CREATE UNIQUE INDEX outbox_event ON outbox (brand, event_id);
CREATE INDEX outbox_due ON outbox (status, lane, due_at, id);
-- Rows still on their way (pending, or in a batch whose item results are not read yet) hold back
-- later rows of their key.
CREATE INDEX outbox_key ON outbox (ordering_key, id) WHERE status IN ('pending', 'submitted');
CREATE INDEX outbox_batch ON outbox (batch_id) WHERE status = 'submitted';

-- The facts already turned into events, e.g. 'order:<id>:placed' (an event may cover several,
-- e.g. the return items of one refund).
CREATE TABLE event_facts (
    brand    TEXT NOT NULL,
    fact     TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (brand, fact)
);

-- Per resource: the newest version applied (older notifications are stale) and, for carts,
-- the snapshot the next change is compared with.
CREATE TABLE resource_state (
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    snapshot      TEXT,             -- JSON
    updated_at    INTEGER NOT NULL, -- unix ms
    PRIMARY KEY (resource_type, resource_id)
);

-- A failed processing attempt waits before the next one (backoff), instead of being retried
-- every round.
ALTER TABLE inbox ADD COLUMN next_attempt_at INTEGER; -- unix ms; NULL = now
