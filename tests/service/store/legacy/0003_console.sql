-- Console: member passwords; case work (referrals, presidium, outcome, clocks).
ALTER TABLE members ADD COLUMN password_hash TEXT;
ALTER TABLE members ADD COLUMN password_changed_at TEXT;

ALTER TABLE cases ADD COLUMN department_id TEXT;
ALTER TABLE cases ADD COLUMN referral_due TEXT;
ALTER TABLE cases ADD COLUMN presidium INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN outcome TEXT;
ALTER TABLE cases ADD COLUMN first_response_at TEXT;
ALTER TABLE cases ADD COLUMN resolved_at TEXT;

-- Replies and notices to the submitter appear with the message they were sent as.
ALTER TABLE messages ADD COLUMN outbox_id INTEGER REFERENCES outbox(id);
ALTER TABLE messages ADD COLUMN actor TEXT;

CREATE INDEX cases_updated ON cases (updated_at);
CREATE INDEX cases_category ON cases (category, status);

-- A request held outside duty hours waits for this time (UTC) before it is worked.
ALTER TABLE cases ADD COLUMN held_until TEXT;

-- Canned replies heads keep for common answers; they fill the console's reply box.
CREATE TABLE canned_replies (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
