-- Contact sync state (SQLite): which commercetools members (customers or guests) are
-- merged into which Omnisend contact, per brand, and the contacts that were retired.
-- Timestamps are unix epoch milliseconds (INTEGER). Keep in step with
-- migrations/postgres/0003_contacts.sql.
--
-- Text compares with SQLite's default BINARY collation (bytes, like Rust's `str`
-- ordering); the Postgres schema uses COLLATE "C" to match.
--
-- `facts` (and possibly `body`) hold personal data; erasing a member deletes its row.

-- One row per member per brand.
CREATE TABLE contact_members (
    brand       TEXT    NOT NULL, -- brand (Omnisend account) the member is synced to
    member_id   TEXT    NOT NULL, -- commercetools customer id, or "guest:…" for a guest
    contact_key TEXT    NOT NULL, -- key of the Omnisend contact the member is merged into
    secondary   TEXT,             -- secondary identifier (e.g. phone) held by one contact; NULL = none
    created_at  INTEGER NOT NULL, -- member creation time (earliest member owns a secondary value)
    modified_at INTEGER NOT NULL, -- member last-modified time
    facts       TEXT    NOT NULL, -- JSON: what the member contributes to the contact (personal data)
    seen_run    INTEGER,          -- last full run that saw the member upstream; NULL = none yet
    PRIMARY KEY (brand, member_id)
);
-- Members of a contact (members_by_keys, member_keys).
CREATE INDEX contact_members_key ON contact_members (brand, contact_key);
-- Holders of a secondary value (secondary_owners).
CREATE INDEX contact_members_secondary ON contact_members (brand, secondary);

-- Contacts (by key) that were retired, per brand, with the reason and a JSON body.
CREATE TABLE contact_retired (
    brand       TEXT    NOT NULL, -- brand (Omnisend account) of the contact
    contact_key TEXT    NOT NULL, -- key of the retired contact
    reason      TEXT    NOT NULL, -- why it was retired
    body        TEXT    NOT NULL, -- JSON detail recorded with the retirement (may hold personal data)
    created_at  INTEGER NOT NULL, -- when it was retired
    PRIMARY KEY (brand, contact_key)
);
