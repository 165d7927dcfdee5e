-- Console edits to the point's directory (members, departments, categories). The config
-- file is the base; each row here overrides one entry of it: `record` is the entry as the
-- file would write it (JSON), or NULL when the entry is removed. `seq` orders them (kept
-- when the edit is edited again); `in_file` says whether the file had the entry then.
CREATE TABLE directory_overrides (
    kind TEXT NOT NULL CHECK (kind IN ('members', 'departments', 'categories')),
    key TEXT NOT NULL,
    record TEXT,
    seq INTEGER NOT NULL,
    in_file INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT;

-- Every directory change, with who made it and when; never updated or deleted.
CREATE TABLE directory_log (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    action TEXT NOT NULL,
    record TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
) STRICT;

CREATE TRIGGER directory_log_append_only_update BEFORE UPDATE ON directory_log
BEGIN
    SELECT RAISE(ABORT, 'the directory log is append-only');
END;

CREATE TRIGGER directory_log_append_only_delete BEFORE DELETE ON directory_log
BEGIN
    SELECT RAISE(ABORT, 'the directory log is append-only');
END;
