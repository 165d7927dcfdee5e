-- Members (mirrored from the point config), cases and their append-only event log.
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT,
    role TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    intake_key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    text TEXT NOT NULL,
    language TEXT NOT NULL,
    category TEXT,
    company TEXT,
    submitter_name TEXT,
    submitter_phone TEXT,
    source_tag TEXT,
    assignee_id TEXT REFERENCES members(id),
    received_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX cases_status ON cases (status, received_at);
CREATE INDEX cases_assignee ON cases (assignee_id, status);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    actor TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX events_case ON events (case_id, id);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
