-- Contact sync state (PostgreSQL): which commercetools members (customers or guests) are
-- merged into which Omnisend contact, per brand, and the contacts that were retired.
-- Timestamps are unix epoch milliseconds (BIGINT). Keep in step with
-- migrations/sqlite/0003_contacts.sql.
--
-- Key columns use COLLATE "C" so ORDER BY compares bytes, like SQLite's default BINARY
-- collation and Rust's `str` ordering: "smallest (created_at, member_id)" and "sorted keys"
-- mean the same on both backends.
--
-- `facts` (and possibly `body`) hold personal data; erasing a member deletes its row.

-- One row per member per brand.
CREATE TABLE contact_members (
    brand       TEXT   COLLATE "C" NOT NULL, -- brand (Omnisend account) the member is synced to
    member_id   TEXT   COLLATE "C" NOT NULL, -- commercetools customer id, or "guest:…" for a guest
    contact_key TEXT   COLLATE "C" NOT NULL, -- key of the Omnisend contact the member is merged into
    secondary   TEXT   COLLATE "C",          -- secondary identifier (e.g. phone) held by one contact; NULL = none
    created_at  BIGINT NOT NULL,             -- member creation time (earliest member owns a secondary value)
    modified_at BIGINT NOT NULL,             -- member last-modified time
    facts       JSONB  NOT NULL,             -- what the member contributes to the contact (personal data)
    seen_run    BIGINT,                      -- last full run that saw the member upstream; NULL = none yet
    PRIMARY KEY (brand, member_id)
);
-- Members of a contact (members_by_keys, member_keys).
CREATE INDEX contact_members_key ON contact_members (brand, contact_key);
-- Holders of a secondary value (secondary_owners).
CREATE INDEX contact_members_secondary ON contact_members (brand, secondary);

-- Contacts (by key) that were retired, per brand, with the reason and a JSON body.
CREATE TABLE contact_retired (
    brand       TEXT   COLLATE "C" NOT NULL, -- brand (Omnisend account) of the contact
    contact_key TEXT   COLLATE "C" NOT NULL, -- key of the retired contact
    reason      TEXT   NOT NULL,             -- why it was retired
    body        JSONB  NOT NULL,             -- JSON detail recorded with the retirement (may hold personal data)
    created_at  BIGINT NOT NULL,             -- when it was retired
    PRIMARY KEY (brand, contact_key)
);
