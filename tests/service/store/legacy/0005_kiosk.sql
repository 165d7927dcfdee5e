-- Kiosk devices (only the SHA-256 of their token is kept) and QR-poster source tags.
CREATE TABLE kiosk_devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_by TEXT,
    revoked_at TEXT
) STRICT;

CREATE TABLE source_tags (
    tag TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- A walk-in request taken by a member at the kiosk on a visitor's behalf.
ALTER TABLE cases ADD COLUMN taken_by TEXT;
