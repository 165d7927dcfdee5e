-- Changes to the duty rotation made in the console: overrides (a swap is two overrides
-- sharing swap_id) and unavailability. Removing one keeps the row (removed_at/by): audited.
CREATE TABLE duty_changes (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('cover', 'away')),
    member_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    swap_id INTEGER,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    removed_by TEXT,
    removed_at TEXT,
    CHECK (ends_at > starts_at)
) STRICT;

CREATE INDEX duty_changes_time ON duty_changes (kind, ends_at);

-- Time-driven steps done so far (e.g. the last shift handed off), shared by all workers.
CREATE TABLE scheduler_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Escalations of unacknowledged cases: how many reminders went out, and when the last did.
ALTER TABLE cases ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN escalated_at TEXT;
ALTER TABLE cases ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
-- Since when an unacknowledged case has waited for someone to take it up (for escalation).
ALTER TABLE cases ADD COLUMN waiting_since TEXT;
