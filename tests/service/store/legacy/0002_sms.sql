-- Conversation messages, the outbox of messages we send, SMS opt-outs, satisfaction ratings.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    channel TEXT NOT NULL,
    external_id TEXT UNIQUE,
    body TEXT NOT NULL,
    media TEXT NOT NULL DEFAULT '[]',
    at TEXT NOT NULL
) STRICT;

CREATE INDEX messages_case ON messages (case_id, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    purpose_key TEXT NOT NULL UNIQUE,
    case_id INTEGER REFERENCES cases(id),
    member_id TEXT REFERENCES members(id),
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    provider_sid TEXT UNIQUE,
    error_code INTEGER,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX outbox_status ON outbox (status, updated_at);
CREATE INDEX outbox_case ON outbox (case_id, id);

CREATE TABLE sms_optouts (
    number TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

ALTER TABLE cases ADD COLUMN rating INTEGER;
ALTER TABLE cases ADD COLUMN rating_requested_at TEXT;
ALTER TABLE cases ADD COLUMN rated_at TEXT;

CREATE INDEX cases_phone ON cases (submitter_phone, received_at);
