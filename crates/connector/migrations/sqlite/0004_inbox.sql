-- Durable inbox of change notifications (issue 4): a webhook is acknowledged only after its
-- notification is stored here. Keep in step with migrations/postgres/0004_inbox.sql.
CREATE TABLE inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT    NOT NULL, -- Pub/Sub messageId, CloudEvents id, or derived (ingest)
    source           TEXT    NOT NULL, -- 'commercetools' or 'storefront'
    resource_type    TEXT    NOT NULL, -- commercetools typeId, e.g. 'order'
    resource_id      TEXT    NOT NULL, -- commercetools id
    kind             TEXT    NOT NULL, -- message type or notification type, e.g. 'OrderCreated'
    sequence_number  INTEGER,          -- the message's per-resource sequence number, if any
    resource_version INTEGER,          -- the resource version the notification describes
    payload          TEXT    NOT NULL, -- the notification as received (JSON)
    received_at      INTEGER NOT NULL, -- unix ms
    processed_at     INTEGER,          -- unix ms; NULL = still to process
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
-- Once per delivery id (a redelivered webhook) ...
CREATE UNIQUE INDEX inbox_delivery ON inbox (delivery_id);
-- ... and once per (resource, message type, sequence number) (one change under two ids).
CREATE UNIQUE INDEX inbox_sequence ON inbox (resource_type, resource_id, kind, sequence_number)
    WHERE sequence_number IS NOT NULL;
CREATE INDEX inbox_pending ON inbox (processed_at, id);
